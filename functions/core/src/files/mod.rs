//! Files sent between a user's devices. Bytes never pass through here (docs/ARCHITECTURE.md,
//! "Bytes never pass through a function"): core signs URLs, asks the store to start and finish
//! multipart uploads, and records what the devices report. Every query is scoped by the
//! caller's account; another account's file is simply not found.
//!
//! `record` holds the file row and its access checks, `rules` what a description must be,
//! `upload` a send from initiate to complete, `read` downloads, shares and lists, `retention`
//! delete, restore and purge.

#[macro_use]
mod record;
mod read;
mod retention;
mod rules;
mod upload;

use std::time::Duration;

use http::StatusCode;

pub use record::FileView;
pub use rules::part_plan;

use crate::blob::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Clock, Http, Ports};
use crate::Core;

const MIB: u64 = 1024 * 1024;
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// S3's floor for every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's ceiling on parts per upload.
pub const MAX_PARTS: u64 = 10_000;
/// Part URLs per request: enough for a 5 GiB file at 8 MiB in two asks.
const MAX_PART_URLS: usize = 500;
pub const PART_URL_TTL: Duration = Duration::from_secs(15 * 60);
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// A deleted file can be restored this long; then the purge removes it.
pub const RESTORE_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// An upload nobody touched for this long is aborted by the purge.
pub const ABANDONED_UPLOAD_MS: i64 = 7 * 24 * 3600 * 1000;
const MAX_PAGE: i64 = 200;

fn store_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_not_configured",
        "this server has no object storage configured for files",
    )
}

impl<P: Ports> Core<P> {
    fn blob_store(&self) -> ApiResult<BlobStore> {
        self.config
            .storage
            .as_ref()
            .map(BlobStore::new)
            .ok_or_else(store_unavailable)
    }

    /// The time core signs its own store requests with: always the real clock, since the store
    /// refuses a request dated far from its own time (the test clock only moves what devices see).
    fn store_clock(&self) -> i64 {
        self.ports.clock().now_ms()
    }

    async fn send(&self, req: http::Request<Vec<u8>>) -> ApiResult<http::Response<Vec<u8>>> {
        Ok(self.ports.http().send(req).await?)
    }
}
