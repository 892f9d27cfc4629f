//! The embedded object store: an S3-compatible endpoint (s3s with its file-system backend)
//! served on udc-server's own port under `/<bucket>/`, so a local udc needs no other service
//! and devices reach the store at the address they already use. It checks SigV4 signatures and
//! expiry like any S3.

use std::path::Path;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::{Request, Response};
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};

pub const BUCKET: &str = "udc-files";

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
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| anyhow::anyhow!("opening the store at {}: {e:?}", root.display()))?;
        let mut builder = S3ServiceBuilder::new(fs);
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
        let req = req.map(s3s::Body::http_body_unsync);
        match self.service.call(req).await {
            Ok(resp) => resp.map(Body::new),
            Err(e) => {
                eprintln!("udc-server: store: {e:?}");
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                resp
            }
        }
    }
}
