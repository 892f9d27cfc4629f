//! The object store, spoken as S3 with SigV4: presigned URLs for devices, and the few signed
//! requests core sends itself (create, complete and abort a multipart upload, head, delete).
//! Pure: every signature takes the time from the caller (wasm32-unknown-unknown has no clock),
//! and requests go out through the host's `Http` port.

use std::time::Duration;

use http::StatusCode;

use crate::config::Storage;
use crate::error::{ApiError, ApiResult};
use crate::sigv4::{encode_path, Signer, Unsigned};

/// How long a URL core signs for its own request stays valid: just long enough to send it.
const OWN_REQUEST_TTL: Duration = Duration::from_secs(60);

pub struct BlobStore {
    /// The endpoint with the bucket's path (path-style addressing: every S3 speaks it).
    bucket: url::Url,
    signer: Signer,
}

/// A request for the `Http` port, already signed (the signature is in the query string).
pub type SignedRequest = http::Request<Vec<u8>>;

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
    element(std::str::from_utf8(body).ok()?, "Code")
}

/// The text of the first `<tag>` element in `body`, its entities undone (an S3 answer's
/// fields are plain text).
fn element(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(
        body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `text` made safe inside an XML element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl BlobStore {
    /// The store of `storage`, whose endpoint `Config` took only as an http(s) URL with a host.
    pub fn new(storage: &Storage) -> BlobStore {
        let mut bucket = storage.endpoint.clone();
        let base = bucket.path().trim_end_matches('/').to_owned();
        bucket.set_path(&format!("{base}{}", encode_path(&[&storage.bucket])));
        bucket.set_query(None);
        BlobStore {
            bucket,
            signer: Signer {
                access_key_id: storage.access_key_id.clone(),
                secret_access_key: storage.secret_access_key.clone(),
                region: storage.region.clone(),
            },
        }
    }

    /// The object's URL with `query`.
    fn object(&self, key: &str, query: &[(&str, &str)]) -> url::Url {
        let mut url = self.bucket.clone();
        let path = format!("{}{}", url.path(), encode_path(&[key]));
        url.set_path(&path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn sign(
        &self,
        method: &http::Method,
        url: url::Url,
        headers: &[(&str, String)],
        now_ms: i64,
        ttl: Duration,
    ) -> ApiResult<url::Url> {
        self.signer.presign(
            Unsigned {
                method: method.as_str(),
                url,
                headers,
            },
            now_ms,
            ttl,
        )
    }

    /// A request core sends itself, signed for a minute.
    fn own(
        &self,
        method: http::Method,
        key: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
        now_ms: i64,
    ) -> ApiResult<SignedRequest> {
        let url = self.sign(
            &method,
            self.object(key, query),
            &[],
            now_ms,
            OWN_REQUEST_TTL,
        )?;
        request(method, url, body)
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
        let part = part_number.to_string();
        let url = self.object(key, &[("partNumber", &part), ("uploadId", upload_id)]);
        self.sign(
            &http::Method::PUT,
            url,
            &[("content-length", size.to_string())],
            now_ms,
            ttl,
        )
    }

    /// A URL a device GETs the whole object (or ranges of it) from.
    pub fn presign_get(&self, key: &str, now_ms: i64, ttl: Duration) -> ApiResult<url::Url> {
        self.sign(&http::Method::GET, self.object(key, &[]), &[], now_ms, ttl)
    }

    pub fn create_multipart(&self, key: &str, now_ms: i64) -> ApiResult<SignedRequest> {
        self.own(
            http::Method::POST,
            key,
            &[("uploads", "1")],
            Vec::new(),
            now_ms,
        )
    }

    pub fn created_upload_id(resp: &http::Response<Vec<u8>>) -> ApiResult<String> {
        if !resp.status().is_success() {
            return Err(store_error("start an upload", resp));
        }
        std::str::from_utf8(resp.body())
            .ok()
            .and_then(|text| element(text, "UploadId"))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ApiError::internal("CreateMultipartUpload answer without an UploadId"))
    }

    /// Completes the upload from the parts' ETags, in part-number order.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        now_ms: i64,
    ) -> ApiResult<SignedRequest> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (n, etag) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                n + 1,
                escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        self.own(
            http::Method::POST,
            key,
            &[("uploadId", upload_id)],
            body.into_bytes(),
            now_ms,
        )
    }

    /// `Ok(Err(code))` when the store refused the parts (a wrong ETag, a part too small): the
    /// sender's fault, not the store's. S3 may answer 200 with an error body, so the body decides.
    pub fn completed(resp: &http::Response<Vec<u8>>) -> ApiResult<Result<(), String>> {
        let done = std::str::from_utf8(resp.body())
            .is_ok_and(|text| text.contains("<CompleteMultipartUploadResult"));
        if resp.status().is_success() && done {
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
        self.own(
            http::Method::DELETE,
            key,
            &[("uploadId", upload_id)],
            Vec::new(),
            now_ms,
        )
    }

    pub fn head(&self, key: &str, now_ms: i64) -> ApiResult<SignedRequest> {
        self.own(http::Method::HEAD, key, &[], Vec::new(), now_ms)
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
        self.own(http::Method::DELETE, key, &[], Vec::new(), now_ms)
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
