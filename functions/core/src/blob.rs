//! The object store, spoken as S3 with SigV4: presigned URLs for devices, and the few signed
//! requests core sends itself (create, complete and abort a multipart upload, head, delete).
//! Pure: every signature takes the time from the caller (wasm32-unknown-unknown has no clock),
//! and requests go out through the host's `Http` port.

use std::time::Duration;

use http::StatusCode;
use rusty_s3::actions::{CompleteMultipartUploadResponse, CreateMultipartUpload};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::config::Storage;
use crate::error::{ApiError, ApiResult};

/// How long a URL core signs for its own request stays valid: just long enough to send it.
const OWN_REQUEST_TTL: Duration = Duration::from_secs(60);

pub struct BlobStore {
    bucket: Bucket,
    credentials: Credentials,
}

/// A request for the `Http` port, already signed (the signature is in the query string).
pub type SignedRequest = http::Request<Vec<u8>>;

fn timestamp(now_ms: i64) -> ApiResult<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(now_ms).map_err(|e| ApiError::internal(e.to_string()))
}

fn request(method: http::Method, url: url::Url, body: Vec<u8>) -> ApiResult<SignedRequest> {
    http::Request::builder()
        .method(method)
        .uri(url.as_str())
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The store answered, but not with success: the status and (for the log) the body.
fn store_error(action: &str, resp: &http::Response<Vec<u8>>) -> ApiError {
    if resp.status() == StatusCode::INSUFFICIENT_STORAGE {
        return ApiError::storage_full(format!("{action}: the object store is full"));
    }
    ApiError {
        internal: Some(format!(
            "{action}: store answered {}: {}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
                .chars()
                .take(500)
                .collect::<String>()
        )),
        ..ApiError::new(
            StatusCode::BAD_GATEWAY,
            "storage_error",
            format!("the object store refused to {action}"),
        )
    }
}

/// The `<Code>` of an S3 XML error body, if there is one.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_owned())
}

impl BlobStore {
    pub fn new(storage: &Storage) -> ApiResult<BlobStore> {
        let bucket = Bucket::new(
            storage.endpoint.clone(),
            UrlStyle::Path,
            storage.bucket.clone(),
            storage.region.clone(),
        )
        .map_err(|e| ApiError::internal(format!("storage settings: {e}")))?;
        Ok(BlobStore {
            bucket,
            credentials: Credentials::new(
                storage.access_key_id.clone(),
                storage.secret_access_key.clone(),
            ),
        })
    }

    /// A URL a device PUTs one part's bytes to: exactly `size` bytes, since the length is one
    /// of the signed headers (the store refuses any other with a signature mismatch).
    pub fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        size: u64,
        now_ms: i64,
        ttl: Duration,
    ) -> ApiResult<url::Url> {
        let mut action =
            self.bucket
                .upload_part(Some(&self.credentials), key, part_number, upload_id);
        action
            .headers_mut()
            .insert("content-length", size.to_string());
        Ok(action.sign_with_time(ttl, &timestamp(now_ms)?))
    }

    /// A URL a device GETs the whole object (or ranges of it) from.
    pub fn presign_get(&self, key: &str, now_ms: i64, ttl: Duration) -> ApiResult<url::Url> {
        let action = self.bucket.get_object(Some(&self.credentials), key);
        Ok(action.sign_with_time(ttl, &timestamp(now_ms)?))
    }

    pub fn create_multipart(&self, key: &str, now_ms: i64) -> ApiResult<SignedRequest> {
        let action = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key);
        request(
            http::Method::POST,
            action.sign_with_time(OWN_REQUEST_TTL, &timestamp(now_ms)?),
            Vec::new(),
        )
    }

    pub fn created_upload_id(resp: &http::Response<Vec<u8>>) -> ApiResult<String> {
        if !resp.status().is_success() {
            return Err(store_error("start an upload", resp));
        }
        let text =
            std::str::from_utf8(resp.body()).map_err(|e| ApiError::internal(e.to_string()))?;
        CreateMultipartUpload::parse_response(text)
            .map(|r| r.upload_id().to_owned())
            .map_err(|e| ApiError::internal(format!("CreateMultipartUpload answer: {e}")))
    }

    /// Completes the upload from the parts' ETags, in part-number order.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        now_ms: i64,
    ) -> ApiResult<SignedRequest> {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign_with_time(OWN_REQUEST_TTL, &timestamp(now_ms)?);
        request(http::Method::POST, url, action.body().into_bytes())
    }

    /// `Ok(Err(code))` when the store refused the parts (a wrong ETag, a part too small): the
    /// sender's fault, not the store's. S3 may answer 200 with an error body, so the body decides.
    pub fn completed(resp: &http::Response<Vec<u8>>) -> ApiResult<Result<(), String>> {
        let parsed = std::str::from_utf8(resp.body())
            .ok()
            .map(CompleteMultipartUploadResponse::parse);
        if resp.status().is_success() && matches!(parsed, Some(Ok(_))) {
            return Ok(Ok(()));
        }
        match error_code(resp.body()) {
            Some(code) if resp.status().is_client_error() || resp.status().is_success() => {
                Ok(Err(code))
            }
            _ => Err(store_error("complete the upload", resp)),
        }
    }

    pub fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
        now_ms: i64,
    ) -> ApiResult<SignedRequest> {
        let action = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), key, upload_id);
        request(
            http::Method::DELETE,
            action.sign_with_time(OWN_REQUEST_TTL, &timestamp(now_ms)?),
            Vec::new(),
        )
    }

    pub fn head(&self, key: &str, now_ms: i64) -> ApiResult<SignedRequest> {
        let action = self.bucket.head_object(Some(&self.credentials), key);
        request(
            http::Method::HEAD,
            action.sign_with_time(OWN_REQUEST_TTL, &timestamp(now_ms)?),
            Vec::new(),
        )
    }

    /// The object's size from a HEAD answer; `None` if it does not exist.
    pub fn head_size(resp: &http::Response<Vec<u8>>) -> ApiResult<Option<u64>> {
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(store_error("look up an object", resp));
        }
        resp.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::internal("HEAD answer without Content-Length"))
    }

    pub fn delete(&self, key: &str, now_ms: i64) -> ApiResult<SignedRequest> {
        let action = self.bucket.delete_object(Some(&self.credentials), key);
        request(
            http::Method::DELETE,
            action.sign_with_time(OWN_REQUEST_TTL, &timestamp(now_ms)?),
            Vec::new(),
        )
    }

    /// Deleting (an object, an upload) succeeded or there was nothing to delete.
    pub fn gone(action: &str, resp: &http::Response<Vec<u8>>) -> ApiResult<()> {
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(store_error(action, resp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> BlobStore {
        BlobStore::new(&Storage {
            endpoint: url::Url::parse("http://127.0.0.1:9000").unwrap(),
            region: "auto".into(),
            bucket: "udc".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
        })
        .unwrap()
    }

    #[test]
    fn presigned_urls_carry_the_given_time_and_expiry() {
        // 2026-01-01T00:00:00Z
        let url = store()
            .presign_upload_part(
                "u/f",
                "up1",
                3,
                5 << 20,
                1_767_225_600_000,
                Duration::from_secs(900),
            )
            .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(url.path(), "/udc/u/f");
        assert_eq!(q["X-Amz-Date"], "20260101T000000Z");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["partNumber"], "3");
        assert_eq!(q["uploadId"], "up1");
        assert!(q["X-Amz-Credential"].starts_with("AKID/20260101/auto/s3/"));
        assert_eq!(q["X-Amz-SignedHeaders"], "content-length;host");
    }

    #[test]
    fn complete_reads_errors_hidden_in_a_200() {
        let ok_body = "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>l</Location><Bucket>b</Bucket><Key>k</Key><ETag>\"e\"</ETag></CompleteMultipartUploadResult>";
        let resp = http::Response::new(ok_body.as_bytes().to_vec());
        assert_eq!(BlobStore::completed(&resp).unwrap(), Ok(()));
        let err = "<Error><Code>InvalidPart</Code><Message>m</Message></Error>";
        let resp = http::Response::new(err.as_bytes().to_vec());
        assert_eq!(
            BlobStore::completed(&resp).unwrap(),
            Err("InvalidPart".into())
        );
        let mut resp = http::Response::new(b"<Error><Code>InternalError</Code></Error>".to_vec());
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        assert!(BlobStore::completed(&resp).is_err());
    }
}
