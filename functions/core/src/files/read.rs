//! Reading and sharing a file: its description, a download URL, the receiver's confirmation,
//! sharing with another device, and the lists.

use serde::Deserialize;
use udc_hub::names;
use udc_hub::NewEvent;

use super::record::{record, FileRecord, FileState, FileView};
use super::rules::sha256_hex;
use super::upload::available;
use super::{DOWNLOAD_URL_TTL, MAX_PAGE};
use crate::error::{ApiError, ApiResult};
use crate::events::{Change, When};
use crate::ports::{Ports, Stmt};
use crate::web::{json_body, query_param, Reply, MAX_EXACT};
use crate::{rows, validate, Core, Rq};
#[derive(Deserialize)]
struct ShareBody {
    device_id: String,
}

#[derive(Deserialize)]
struct ConfirmBody {
    sha256: String,
}

impl<P: Ports> Core<P> {
    pub(crate) async fn file_metadata(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (_, _, file) = self.caller_and_file(rq, id, false).await?;
        Reply::ok(file.view())
    }

    pub(crate) async fn download_file(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let store = self.blob_store()?;
        let (_, device, file) = self.caller_and_file(rq, id, false).await?;
        file.require_available()?;
        if !file.may_download(&device) {
            return Err(ApiError::forbidden(
                "this device may not download the file: it was not sent here, or the sender does not trust this device",
            ));
        }
        let url = store.presign_get(&file.object_key, rq.now_ms, DOWNLOAD_URL_TTL)?;
        Reply::ok(serde_json::json!({
            "url": url.as_str(),
            "expires_at": rows::timestamp(rq.now_ms + DOWNLOAD_URL_TTL.as_millis() as i64),
            "file": file.view(),
        }))
    }

    pub(crate) async fn confirm_download(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let body: ConfirmBody = json_body(rq.headers, rq.body)?;
        let sha256 = sha256_hex("sha256", &body.sha256)?;
        let (caller, device, file) = self.caller_and_file(rq, id, false).await?;
        file.require_available()?;
        if !file.may_download(&device) {
            return Err(ApiError::forbidden("this device may not download the file"));
        }
        if sha256 != file.sha256 {
            return Err(ApiError::conflict(
                "checksum_mismatch",
                "the downloaded bytes are not the file that was sent; download it again",
            ));
        }
        let event = NewEvent::to_devices(
            names::FILE_DOWNLOADED,
            vec![file.sender_device_id.clone()],
            serde_json::json!({"file_id": file.id, "device_id": device}),
        );
        // Every confirmation is told to the sender, the first and any after it.
        let done = self
            .commit(
                Change::new(vec![Stmt::new(
                    "UPDATE file_shares SET downloaded_at = ? WHERE file_id = ? AND device_id = ? AND downloaded_at IS NULL",
                    vec![rq.now_ms.into(), file.id.as_str().into(), device.as_str().into()],
                )])
                .with_event(&caller.user_id, event, When::Always),
            )
            .await?;
        Ok(Reply::no_content()?.warn(done.warning))
    }

    pub(crate) async fn share_file(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let body: ShareBody = json_body(rq.headers, rq.body)?;
        let target = validate::body_id("device_id", &body.device_id)?;
        let (caller, device, mut file) = self.caller_and_file(rq, id, false).await?;
        if !file.may_download(&device) {
            return Err(ApiError::forbidden(
                "only a device that may read this file can share it",
            ));
        }
        if target == file.sender_device_id {
            return Err(ApiError::unprocessable(
                "device_id: the sending device already has this file",
            ));
        }
        let mut change = Change::new(vec![Stmt::new(
                "INSERT INTO file_shares (file_id, device_id, shared_at) SELECT ?, d.id, ? FROM devices d \
                 WHERE d.id = ? AND d.user_id = ? AND d.removed_at IS NULL ON CONFLICT DO NOTHING",
                vec![
                    file.id.as_str().into(),
                    rq.now_ms.into(),
                    target.as_str().into(),
                    caller.user_id.as_str().into(),
                ],
            )]);
        if file.state == FileState::Available {
            // The new receiver alone hears of it.
            let only = FileRecord {
                shared_with: vec![target.clone()],
                ..file.clone()
            };
            change.event(&caller.user_id, available(&only), When::Changed);
        }
        let done = self.commit(change).await?;
        if done.one(0) {
            file.shared_with.push(target.clone());
            file.shared_with.sort();
        } else if !file.shared_with.contains(&target) {
            return Err(ApiError::not_found("device"));
        }
        Ok(Reply::ok(file.view())?.warn(done.warning))
    }

    pub(crate) async fn shared_files(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    select_files!(
                        "JOIN file_shares w ON w.file_id = f.id AND w.device_id = ? \
                         WHERE f.user_id = ? AND f.state = 'available' AND f.deleted_at IS NULL \
                         AND w.downloaded_at IS NULL ORDER BY f.completed_at, f.id LIMIT 200"
                    ),
                    vec![
                        c.device_id.as_deref().into(),
                        c.device_id.as_deref().into(),
                        c.user_id.as_str().into(),
                    ],
                )]
            })
            .await?;
        caller.device()?;
        let files = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| record(r).map(|f| f.view()))
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({"files": files}))
    }

    /// `GET /files?limit=&cursor=&deleted=true`, newest first. `deleted=true` lists what can
    /// still be restored.
    pub(crate) async fn list_files(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let limit = match query_param(rq.query, "limit") {
            None => 50,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| ApiError::invalid(format!("limit: must be 1 to {MAX_PAGE}")))?,
        };
        let deleted = match query_param(rq.query, "deleted") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ApiError::invalid("deleted: must be true or false")),
        };
        let (before_at, before_id) = match query_param(rq.query, "cursor") {
            // No file is made at the largest exact time.
            None => (MAX_EXACT, String::new()),
            Some(c) => c
                .split_once('_')
                .and_then(|(at, id)| {
                    Some((
                        at.parse::<i64>()
                            .ok()
                            .filter(|at| (0..=MAX_EXACT).contains(at))?,
                        validate::body_id("cursor", id).ok()?,
                    ))
                })
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "cursor: pass back the next_cursor of the previous page",
                    )
                })?,
        };
        let (_, found) = self
            .caller_with(rq, |c| {
                let params = vec![
                    c.device_id.as_deref().into(),
                    c.user_id.as_str().into(),
                    before_at.into(),
                    before_at.into(),
                    before_id.as_str().into(),
                    (limit + 1).into(),
                ];
                vec![Stmt::new(
                    if deleted {
                        select_files!("WHERE f.user_id = ? AND f.deleted_at IS NOT NULL AND (f.created_at < ? OR (f.created_at = ? AND f.id < ?)) ORDER BY f.created_at DESC, f.id DESC LIMIT ?")
                    } else {
                        select_files!("WHERE f.user_id = ? AND f.deleted_at IS NULL AND (f.created_at < ? OR (f.created_at = ? AND f.id < ?)) ORDER BY f.created_at DESC, f.id DESC LIMIT ?")
                    },
                    params,
                )]
            })
            .await?;
        let mut files = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(record)
            .collect::<ApiResult<Vec<_>>>()?;
        let next_cursor = if files.len() as i64 > limit {
            files.truncate(limit as usize);
            files.last().map(|f| format!("{}_{}", f.created_at, f.id))
        } else {
            None
        };
        let views: Vec<FileView> = files.iter().map(FileRecord::view).collect();
        Reply::ok(serde_json::json!({"files": views, "next_cursor": next_cursor}))
    }
}
