//! The embedded object store: an S3-compatible endpoint (s3s with its file-system backend)
//! served on udc-server's own port under `/<bucket>/`, so a local udc needs no other service
//! and devices reach the store at the address they already use. It checks SigV4 signatures and
//! expiry like any S3.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::{Request, Response};
use base64::Engine;
use md5::{Digest, Md5};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

pub const BUCKET: &str = "udc-files";

/// Reads of a download: s3s-fs streams in 4 KiB reads, which caps a download near 50 MiB/s here.
const READ_CAPACITY: usize = 1024 * 1024;

/// s3s-fs, with downloads served in large reads. Only the operations udc uses are passed on;
/// every other one answers NotImplemented.
struct Objects {
    fs: FileSystem,
    root: PathBuf,
}

impl Objects {
    /// Object keys are `<user id>/<file id>` (UUIDs): anything else names no object.
    fn path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let valid = bucket == BUCKET
            && !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if valid {
            Ok(self.root.join(bucket).join(key))
        } else {
            Err(s3_error!(NoSuchKey))
        }
    }
}

#[async_trait::async_trait]
impl S3 for Objects {
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let path = self.path(&input.bucket, &input.key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| s3_error!(NoSuchKey))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| s3_error!(e, InternalError))?;
        let len = meta.len();
        let range = match &input.range {
            None => 0..len,
            Some(r) => r.check(len)?,
        };
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(|e| s3_error!(e, InternalError))?;
        let body = tokio_util::io::ReaderStream::with_capacity(
            file.take(range.end - range.start),
            READ_CAPACITY,
        );
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: i64::try_from(range.end - range.start).ok(),
            content_range: input.range.map(|_| {
                format!(
                    "bytes {}-{}/{len}",
                    range.start,
                    range.end.saturating_sub(1)
                )
            }),
            last_modified: meta.modified().ok().map(Timestamp::from),
            ..Default::default()
        }))
    }

    /// Size and time from the file system. s3s-fs would hash the whole object for its ETag
    /// when it has none recorded (objects this store completes itself): seconds per GiB.
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let path = self.path(&req.input.bucket, &req.input.key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| s3_error!(NoSuchKey))?;
        if !meta.is_file() {
            return Err(s3_error!(NoSuchKey));
        }
        Ok(S3Response::new(HeadObjectOutput {
            content_length: i64::try_from(meta.len()).ok(),
            last_modified: meta.modified().ok().map(Timestamp::from),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs
            .create_multipart_upload(req)
            .await
            .map_err(out_of_space)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await.map_err(out_of_space)
    }

    /// Crash-safe, unlike s3s-fs's own (it forgets the upload first, then assembles the object
    /// in place: a kill in between loses the upload and its parts). Here the parts are joined
    /// into a temporary file beside the object and renamed into place, and only then are the
    /// upload and its parts forgotten: a kill at any point leaves either the upload as it was
    /// (complete it again) or the finished object (HEAD finds it). s3s-fs's layout under the
    /// root, which this reads: `.upload-<id>.json` (the access key that started the upload) and
    /// `.upload_id-<id>.part-<n>`.
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let object = self.path(&input.bucket, &input.key)?;
        let upload = Uuid::parse_str(&input.upload_id).map_err(|_| s3_error!(NoSuchUpload))?;
        let info = self.root.join(format!(".upload-{upload}.json"));
        let started_by: Option<String> = match tokio::fs::read(&info).await {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|e| s3_error!(e, InternalError))?,
            Err(_) => return Err(s3_error!(NoSuchUpload)),
        };
        if started_by.as_deref() != req.credentials.as_ref().map(|c| c.access_key.as_str()) {
            return Err(s3_error!(AccessDenied));
        }
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if parts.is_empty() {
            return Err(s3_error!(InvalidPart, "You must specify at least one part"));
        }
        let mut paths = Vec::with_capacity(parts.len());
        let mut tag = Md5::new();
        for (i, part) in parts.iter().enumerate() {
            if part.part_number != i32::try_from(i + 1).ok() {
                return Err(s3_error!(InvalidPartOrder));
            }
            // The multipart ETag: MD5 of the parts' MD5s (their ETags), as S3 computes it. The
            // given ETags are not checked against the stored parts (s3s-fs did not either): the
            // receiver checks the whole file's SHA-256.
            let etag = part
                .e_tag
                .as_ref()
                .and_then(|t| hex::decode(t.value()).ok())
                .ok_or_else(|| s3_error!(InvalidPart))?;
            tag.update(&etag);
            paths.push(
                self.root
                    .join(format!(".upload_id-{upload}.part-{}", i + 1)),
            );
        }
        let e_tag = format!("{}-{}", hex::encode(tag.finalize()), parts.len());
        let joined = object.clone();
        tokio::task::spawn_blocking(move || join_parts(&paths, &joined))
            .await
            .map_err(|e| s3_error!(e, InternalError))?
            .map_err(out_of_space)?;
        // The object is in place: forgetting the upload is tidying (a leftover is only garbage).
        let _ = tokio::fs::remove_file(&info).await;
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let _ = tokio::fs::remove_file(self.root.join(format!(
            ".bucket-{}.object-{}.upload-{upload}.metadata.json",
            encode(&input.bucket),
            encode(&input.key)
        )))
        .await;
        for n in 1..=parts.len() {
            let _ = tokio::fs::remove_file(self.root.join(format!(".upload_id-{upload}.part-{n}")))
                .await;
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(e_tag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }
}

/// A full disk is 507 with a code of its own, not the 500 (InternalError) s3s-fs answers: a
/// client (and core, which answers its own 507) can tell it from a bug.
fn out_of_space(e: s3s::S3Error) -> s3s::S3Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match e.source() {
        Some(s) => Some(s),
        None => return e,
    };
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
        {
            let mut full = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("InsufficientStorage".into()),
                "the store's disk is full",
            );
            full.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
            return full;
        }
        cause = c.source();
    }
    e
}

/// Joins `parts` into `object` through a temporary file renamed into place (so a reader, or a
/// kill, never sees half an object). Every part but the last must be at least 5 MiB, as in S3.
fn join_parts(parts: &[PathBuf], object: &Path) -> S3Result<()> {
    const MIN_PART: u64 = 5 * 1024 * 1024;
    let dir = object.parent().ok_or_else(|| s3_error!(InternalError))?;
    std::fs::create_dir_all(dir).map_err(|e| s3_error!(e, InternalError))?;
    // A name no object key can have (keys hold no '.'), unique per attempt.
    let tmp = dir.join(format!(".joining.{}", Uuid::new_v4().simple()));
    let result = (|| {
        let mut out = std::fs::File::create(&tmp).map_err(|e| s3_error!(e, InternalError))?;
        for (i, part) in parts.iter().enumerate() {
            let mut input = std::fs::File::open(part).map_err(|_| s3_error!(InvalidPart))?;
            // Linux copies file to file in the kernel (copy_file_range).
            let n = std::io::copy(&mut input, &mut out).map_err(|e| s3_error!(e, InternalError))?;
            if i + 1 < parts.len() && n < MIN_PART {
                return Err(s3_error!(EntityTooSmall));
            }
        }
        std::fs::rename(&tmp, object).map_err(|e| s3_error!(e, InternalError))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[derive(Clone)]
pub struct EmbeddedStore {
    service: S3Service,
}

impl EmbeddedStore {
    /// Objects live under `<root>/<bucket>/`.
    pub fn open(root: &Path, access_key: &str, secret_key: &str) -> Result<EmbeddedStore> {
        let bucket = root.join(BUCKET);
        std::fs::create_dir_all(&bucket)
            .with_context(|| format!("creating {}", bucket.display()))?;
        let fs = FileSystem::new(root)
            .map_err(|e| anyhow::anyhow!("opening the store at {}: {e:?}", root.display()))?;
        let mut builder = S3ServiceBuilder::new(Objects {
            fs,
            root: root.to_owned(),
        });
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        Ok(EmbeddedStore {
            service: builder.build(),
        })
    }

    pub fn serves(path: &str) -> bool {
        path.strip_prefix('/')
            .and_then(|p| p.strip_prefix(BUCKET))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        if req.method() == http::Method::OPTIONS {
            if let Some(origin) = origin {
                return cors(Response::new(Body::empty()), origin, true);
            }
        }
        let req = req.map(s3s::Body::http_body_unsync);
        let resp = match self.service.call(req).await {
            Ok(resp) => resp.map(Body::new),
            Err(e) => {
                tracing::error!(error = ?e, "embedded store failed");
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                resp
            }
        };
        let resp = inert(resp);
        match origin {
            Some(origin) => cors(resp, origin, false),
            None => resp,
        }
    }
}

/// The store shares the web app's origin here: a stored file opened in a tab must never run
/// as the app (an uploaded HTML page or SVG would otherwise have the app's storage and keys).
fn inert(mut resp: Response<Body>) -> Response<Body> {
    use http::header::{CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS};
    let headers = resp.headers_mut();
    let sandbox = http::HeaderValue::from_static("sandbox; default-src 'none'");
    headers.insert(CONTENT_SECURITY_POLICY, sandbox);
    headers.insert(
        X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        CONTENT_DISPOSITION,
        http::HeaderValue::from_static("attachment"),
    );
    resp
}

/// Browsers PUT parts and GET files here straight from the web app, which may be on another
/// origin than the URLs were signed for (`localhost` against `127.0.0.1`, a proxy). Any origin
/// may: these requests carry no cookie or credential, and each is valid only with its own
/// signature. The part's ETag must be readable, so the page can record the part.
fn cors(mut resp: Response<Body>, origin: http::HeaderValue, preflight: bool) -> Response<Body> {
    use http::header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
    };
    let headers = resp.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(VARY, http::HeaderValue::from_static("origin"));
    if preflight {
        let allow = http::HeaderValue::from_static("GET, PUT, HEAD");
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, allow);
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            http::HeaderValue::from_static("content-type, range"),
        );
        headers.insert(
            ACCESS_CONTROL_MAX_AGE,
            http::HeaderValue::from_static("600"),
        );
    } else {
        let expose = http::HeaderValue::from_static("etag, content-length, content-range");
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose);
    }
    resp
}
