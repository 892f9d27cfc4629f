//! The sync API, typed: the shared clipboard, sign-in approvals and handoff. Sealing happens
//! in `seal`; what goes over the wire here is already ciphertext.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::{Client, Result, SignedIn, TokenPair};
use crate::seal;

pub use udc_client::events::ClipboardItem;
use udc_client::events::ClipboardSync;

/// The item's plaintext, when it carries its ciphertext.
pub fn open_item(item: &ClipboardItem, account_key: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(c) = &item.ciphertext else {
        return Ok(None);
    };
    let sealed = B64
        .decode(c)
        .map_err(|_| anyhow::anyhow!("clipboard item {} is not base64", item.id))?;
    seal::open(
        account_key,
        &seal::clipboard_aad(&item.content_type),
        &sealed,
    )
    .map(Some)
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClipboardPrefs {
    pub device_id: String,
    pub send: bool,
    pub receive: bool,
    pub history_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApprovalTicket {
    pub request_id: String,
    pub poll_secret: String,
    pub fingerprint_phrase: String,
    pub expires_in: i64,
}

/// An approved sign-in, collected.
#[derive(Debug, Clone, Deserialize)]
pub struct Approved {
    pub user: crate::client::User,
    pub tokens: TokenPair,
    pub sealed_key: String,
    pub approver_device_id: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ApprovalState {
    Pending { expires_in: i64 },
    Approved(Box<Approved>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct PendingLogin {
    pub id: String,
    pub device_name: String,
    pub public_key: String,
    pub fingerprint_phrase: String,
    pub client_ip: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

impl Approved {
    /// What a password sign-in would have given.
    pub fn signed_in(&self) -> SignedIn {
        SignedIn {
            user: self.user.clone(),
            tokens: self.tokens.clone(),
            device_cookie: None,
            wrapped_key: None,
        }
    }
}

impl Client {
    /// Seals `plaintext` with the account key and posts it.
    pub async fn post_clipboard(
        &self,
        token: &str,
        account_key: &[u8; 32],
        content_type: &str,
        plaintext: &[u8],
    ) -> anyhow::Result<ClipboardItem> {
        let sealed = seal::seal(account_key, &seal::clipboard_aad(content_type), plaintext)?;
        let body = json!({
            "content_type": content_type,
            "size": plaintext.len(),
            "ciphertext": B64.encode(sealed),
        });
        Ok(self.post_item(token, &body).await?)
    }

    async fn post_item(&self, token: &str, body: &Value) -> Result<ClipboardItem> {
        let b: ClipboardSync = self
            .call_with(
                Method::POST,
                "/sync/clipboard",
                Some(token),
                Some(body),
                &[],
            )
            .await?;
        Ok(b.item)
    }

    /// Posts an item that travels as an encrypted file this device already sent.
    pub async fn post_clipboard_file(
        &self,
        token: &str,
        content_type: &str,
        size: usize,
        file_id: &str,
    ) -> Result<ClipboardItem> {
        let body = json!({ "content_type": content_type, "size": size, "file_id": file_id });
        self.post_item(token, &body).await
    }

    pub async fn clipboard_item(&self, token: &str, id: &str) -> Result<ClipboardItem> {
        let b: ClipboardSync = self
            .call_with(
                Method::GET,
                &format!("/sync/clipboard/items/{id}"),
                Some(token),
                None,
                &[],
            )
            .await?;
        Ok(b.item)
    }

    pub async fn clipboard_history(&self, token: &str) -> Result<Vec<ClipboardItem>> {
        #[derive(Deserialize)]
        struct History {
            items: Vec<ClipboardItem>,
        }
        let h: History = self
            .call_with(
                Method::GET,
                "/sync/clipboard/history",
                Some(token),
                None,
                &[],
            )
            .await?;
        Ok(h.items)
    }

    /// Reads (`changes` null) or changes this device's clipboard preferences.
    pub async fn clipboard_prefs(
        &self,
        token: &str,
        changes: Option<&Value>,
    ) -> Result<ClipboardPrefs> {
        let method = if changes.is_some() {
            Method::PUT
        } else {
            Method::GET
        };
        self.call_with(
            method,
            "/sync/clipboard/preferences",
            Some(token),
            changes,
            &[],
        )
        .await
    }

    pub async fn request_approval(
        &self,
        email: &str,
        device_name: &str,
        public_key_b64: &str,
    ) -> Result<ApprovalTicket> {
        let body =
            json!({ "email": email, "device_name": device_name, "public_key": public_key_b64 });
        self.call_with(
            Method::POST,
            "/auth/approval/request",
            None,
            Some(&body),
            &[],
        )
        .await
    }

    pub async fn poll_approval(&self, ticket: &ApprovalTicket) -> Result<ApprovalState> {
        let v: Value = self
            .call_with(
                Method::GET,
                &format!("/auth/approval/{}", ticket.request_id),
                None,
                None,
                &[("x-udc-approval-secret", &ticket.poll_secret)],
            )
            .await?;
        if v["state"] == "approved" {
            let approved: Approved = serde_json::from_value(v)
                .map_err(|e| crate::Error::Local(format!("unexpected approval answer: {e}")))?;
            return Ok(ApprovalState::Approved(Box::new(approved)));
        }
        Ok(ApprovalState::Pending {
            expires_in: v["expires_in"].as_i64().unwrap_or(0),
        })
    }

    pub async fn pending_approvals(&self, token: &str) -> Result<Vec<PendingLogin>> {
        #[derive(Deserialize)]
        struct Pending {
            requests: Vec<PendingLogin>,
        }
        let p: Pending = self
            .call_with(
                Method::GET,
                "/auth/approval/pending",
                Some(token),
                None,
                &[],
            )
            .await?;
        Ok(p.requests)
    }

    /// Answers a sign-in request; approving seals the account key to the requester.
    pub async fn respond_approval(
        &self,
        token: &str,
        request: &PendingLogin,
        approved: bool,
        biometric_verified: bool,
        account_key: &[u8; 32],
    ) -> anyhow::Result<()> {
        let sealed = if approved {
            Some(seal::seal_account_key(&request.public_key, account_key)?)
        } else {
            None
        };
        let body = json!({
            "request_id": request.id,
            "approved": approved,
            "biometric_verified": biometric_verified,
            "sealed_key": sealed,
        });
        let _: Value = self
            .call_with(
                Method::POST,
                "/auth/biometric/respond",
                Some(token),
                Some(&body),
                &[],
            )
            .await?;
        Ok(())
    }
}
