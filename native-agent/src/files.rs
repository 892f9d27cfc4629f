//! The files API, typed: what `transfer` drives and what tests call directly.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use udc_client::file_seal::{Description, FileKeys};

use crate::client::{Client, Result};

/// A file as the server describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
    pub state: String,
    pub sender_device_id: String,
    pub shared_with: Vec<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub deleted_at: Option<String>,
    pub restorable_until: Option<String>,
    /// The description sealed on the sending device; None for a file stored in the clear.
    #[serde(default)]
    pub sealed: Option<String>,
}

impl FileInfo {
    /// The sealed description, opened with the account's keys (None for a clear file).
    pub fn description(&self, keys: &FileKeys) -> anyhow::Result<Option<Description>> {
        self.sealed
            .as_deref()
            .map(|s| keys.open_description(s))
            .transpose()
            .map_err(|e| anyhow::anyhow!("file {}: {e:#}", self.id))
    }

    /// The file as its owner knows it: a sealed file's own name, type, size and SHA-256 in
    /// place of what the server holds. One this device cannot open keeps the server's view,
    /// named as such.
    pub fn opened(mut self, keys: &FileKeys) -> FileInfo {
        match self.description(keys) {
            Ok(Some(d)) => {
                self.name = d.name;
                self.mime = d.mime;
                self.size = d.size;
                self.sha256 = d.sha256;
            }
            Ok(None) => {}
            Err(_) => self.name = "(sealed with a key this device does not have)".to_owned(),
        }
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NewUpload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed: Option<&'a str>,
    pub size: u64,
    pub sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UploadPlan {
    pub upload_id: String,
    pub part_size: u64,
    pub part_count: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Initiated {
    /// `upload_required` or `already_present` (deduplicated: nothing to send).
    pub status: String,
    pub file: FileInfo,
    pub upload: Option<UploadPlan>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PartUrl {
    pub part_number: u64,
    pub size: u64,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecordedPart {
    pub part_number: u64,
    pub etag: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UploadStatus {
    pub file_id: String,
    pub state: String,
    pub upload_id: Option<String>,
    pub part_size: u64,
    pub part_count: u64,
    pub parts: Vec<RecordedPart>,
    pub missing: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Download {
    pub url: String,
    pub expires_at: String,
    pub file: FileInfo,
}

#[derive(Deserialize)]
struct FileAnswer {
    file: FileInfo,
}

#[derive(Deserialize)]
struct Files {
    files: Vec<FileInfo>,
}

impl Client {
    pub async fn initiate_upload(
        &self,
        token: &str,
        upload: &NewUpload<'_>,
        idempotency_key: &str,
    ) -> Result<Initiated> {
        let body = json!(upload);
        self.call_with(
            Method::POST,
            "/files/upload/initiate",
            Some(token),
            Some(&body),
            &[("idempotency-key", idempotency_key)],
        )
        .await
    }

    pub async fn part_urls(
        &self,
        token: &str,
        file_id: &str,
        parts: &[u64],
    ) -> Result<Vec<PartUrl>> {
        #[derive(Deserialize)]
        struct Parts {
            parts: Vec<PartUrl>,
        }
        let p: Parts = self
            .call_with(
                Method::POST,
                &format!("/files/{file_id}/parts"),
                Some(token),
                Some(&json!({ "part_numbers": parts })),
                &[],
            )
            .await?;
        Ok(p.parts)
    }

    pub async fn record_part(
        &self,
        token: &str,
        upload_id: &str,
        part_number: u64,
        etag: &str,
    ) -> Result<Value> {
        let body = json!({ "upload_id": upload_id, "part_number": part_number, "etag": etag });
        self.call_with(
            Method::POST,
            "/files/upload/part",
            Some(token),
            Some(&body),
            &[],
        )
        .await
    }

    pub async fn upload_status(&self, token: &str, file_id: &str) -> Result<UploadStatus> {
        self.call_with(
            Method::GET,
            &format!("/files/{file_id}/upload"),
            Some(token),
            None,
            &[],
        )
        .await
    }

    pub async fn complete_upload(
        &self,
        token: &str,
        upload_id: &str,
        idempotency_key: &str,
    ) -> Result<FileInfo> {
        let a: FileAnswer = self
            .call_with(
                Method::POST,
                "/files/upload/complete",
                Some(token),
                Some(&json!({ "upload_id": upload_id })),
                &[("idempotency-key", idempotency_key)],
            )
            .await?;
        Ok(a.file)
    }

    pub async fn file(&self, token: &str, file_id: &str) -> Result<FileInfo> {
        self.call_with(
            Method::GET,
            &format!("/files/{file_id}/metadata"),
            Some(token),
            None,
            &[],
        )
        .await
    }

    pub async fn download(&self, token: &str, file_id: &str) -> Result<Download> {
        self.call_with(
            Method::GET,
            &format!("/files/{file_id}/download"),
            Some(token),
            None,
            &[],
        )
        .await
    }

    pub async fn confirm_download(&self, token: &str, file_id: &str, sha256: &str) -> Result<()> {
        self.call_with::<Value>(
            Method::POST,
            &format!("/files/{file_id}/confirm-download"),
            Some(token),
            Some(&json!({ "sha256": sha256 })),
            &[],
        )
        .await?;
        Ok(())
    }

    /// Files sent to this device and not yet confirmed.
    pub async fn shared_files(&self, token: &str) -> Result<Vec<FileInfo>> {
        let f: Files = self
            .call_with(Method::GET, "/files/shared", Some(token), None, &[])
            .await?;
        Ok(f.files)
    }

    /// The newest files (`deleted`: those that can still be restored).
    pub async fn files(&self, token: &str, deleted: bool) -> Result<Vec<FileInfo>> {
        let f: Files = self
            .call_with(
                Method::GET,
                &format!("/files?limit=200&deleted={deleted}"),
                Some(token),
                None,
                &[],
            )
            .await?;
        Ok(f.files)
    }

    pub async fn delete_file(&self, token: &str, file_id: &str) -> Result<()> {
        self.call_with::<Value>(
            Method::DELETE,
            &format!("/files/{file_id}"),
            Some(token),
            None,
            &[],
        )
        .await?;
        Ok(())
    }

    pub async fn restore_file(&self, token: &str, file_id: &str) -> Result<FileInfo> {
        self.call_with(
            Method::POST,
            &format!("/files/{file_id}/restore"),
            Some(token),
            None,
            &[],
        )
        .await
    }

    pub async fn share_file(
        &self,
        token: &str,
        file_id: &str,
        device_id: &str,
    ) -> Result<FileInfo> {
        self.call_with(
            Method::POST,
            &format!("/files/{file_id}/share"),
            Some(token),
            Some(&json!({ "device_id": device_id })),
            &[],
        )
        .await
    }
}
