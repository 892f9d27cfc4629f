//! A file's end: delete (soft for a finished file, at once for an upload), restore within the
//! window, the purge that removes what the window let go and aborts abandoned uploads, and a
//! deleted account's objects.

use udc_hub::names;
use udc_hub::NewEvent;

use super::record::FileState;
use super::{ABANDONED_UPLOAD_MS, RESTORE_WINDOW_MS};
use crate::blob::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::events::{Change, When};
use crate::ports::{Ports, Sql, Stmt};
use crate::web::Reply;
use crate::{rows, Core, Rq};

impl<P: Ports> Core<P> {
    /// An unfinished upload is aborted at the store and forgotten; a finished file is deleted
    /// softly and can be restored for 30 days.
    pub(crate) async fn delete_file(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (caller, device, file) = self.caller_and_file(rq, id, false).await?;
        if file.state == FileState::Uploading {
            file.require_sender(&device)?;
            let store = self.blob_store()?;
            let upload_id = file.upload_id.as_deref().unwrap_or_default();
            let resp = self
                .send(store.abort_multipart(&file.object_key, upload_id, self.store_clock())?)
                .await?;
            BlobStore::gone("abort the upload", &resp)?;
            self.ports.sql().batch(delete_file_rows(&file.id)).await?;
            return Reply::no_content();
        }
        let done = self
            .commit(
                Change::new(vec![Stmt::new(
                    "UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
                    vec![rq.now_ms.into(), rq.now_ms.into(), file.id.as_str().into()],
                )])
                .with_event(
                    &caller.user_id,
                    NewEvent::to_all(names::FILE_DELETED, serde_json::json!({"file_id": file.id})),
                    When::Changed,
                ),
            )
            .await?;
        if !done.one(0) {
            return Err(ApiError::not_found("file"));
        }
        Ok(Reply::no_content()?.warn(done.warning))
    }

    pub(crate) async fn restore_file(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (caller, _, mut file) = self.caller_and_file(rq, id, true).await?;
        file.deleted_at = None;
        let done = self
            .commit(
                Change::new(vec![Stmt::new(
                    "UPDATE files SET deleted_at = NULL, updated_at = ? WHERE id = ? AND deleted_at > ?",
                    vec![rq.now_ms.into(), file.id.as_str().into(), (rq.now_ms - RESTORE_WINDOW_MS).into()],
                )])
                .with_event(
                    &caller.user_id,
                    NewEvent::to_all(names::FILE_RESTORED, serde_json::json!({"file": file.view()})),
                    When::Changed,
                ),
            )
            .await?;
        if !done.one(0) {
            return Err(ApiError::not_found("file"));
        }
        Ok(Reply::ok(file.view())?.warn(done.warning))
    }

    /// The scheduled purge: files deleted longer ago than the restore window, and uploads
    /// abandoned for a week (of one account, or all). An object goes only when no remaining
    /// file uses it; rows go only after the store confirmed, so a failed run is simply
    /// repeated next time.
    pub(crate) async fn purge_files(
        &self,
        now_ms: i64,
        user: Option<&str>,
    ) -> ApiResult<(u64, u64)> {
        let expired_before = now_ms - RESTORE_WINDOW_MS;
        let found = self
            .ports
            .sql()
            .query_many(vec![
                Stmt::new(
                    "SELECT f.id, f.object_key, EXISTS (SELECT 1 FROM files o WHERE o.object_key = f.object_key \
                     AND o.id != f.id AND (o.deleted_at IS NULL OR o.deleted_at > ?)) \
                     FROM files f WHERE f.deleted_at IS NOT NULL AND f.deleted_at <= ? \
                     AND (? IS NULL OR f.user_id = ?) LIMIT 100",
                    vec![expired_before.into(), expired_before.into(), user.into(), user.into()],
                ),
                Stmt::new(
                    "SELECT id, object_key, upload_id FROM files WHERE state = 'uploading' AND updated_at <= ? \
                     AND (? IS NULL OR user_id = ?) LIMIT 100",
                    vec![(now_ms - ABANDONED_UPLOAD_MS).into(), user.into(), user.into()],
                ),
            ])
            .await?;
        if found.iter().all(Vec::is_empty) {
            return Ok((0, 0));
        }
        let store = self.blob_store()?;
        let mut purged = 0;
        for row in found.first().map(Vec::as_slice).unwrap_or_default() {
            let (id, key) = (rows::text(row, 0)?, rows::text(row, 1)?);
            if rows::int(row, 2)? == 0 {
                self.drop_object(&store, &key, None).await?;
            }
            self.ports.sql().batch(delete_file_rows(&id)).await?;
            purged += 1;
        }
        let mut aborted = 0;
        for row in found.get(1).map(Vec::as_slice).unwrap_or_default() {
            let (id, key) = (rows::text(row, 0)?, rows::text(row, 1)?);
            let upload_id = rows::opt_text(row, 2)?.unwrap_or_default();
            self.drop_object(&store, &key, Some(&upload_id)).await?;
            self.ports.sql().batch(delete_file_rows(&id)).await?;
            aborted += 1;
        }
        Ok((purged, aborted))
    }
}

impl<P: Ports> Core<P> {
    /// A deleted account's files: each one's object deleted at the store (an unfinished
    /// upload aborted), then its rows, at most `ERASE_FILES_PER_RUN` per call (a Worker
    /// request may only make so many subrequests). Repeatable: an object or upload already gone
    /// counts as done, and a later call goes on with the files left. Errs while files remain.
    pub(crate) async fn erase_files(&self, user: &str) -> ApiResult<()> {
        let found = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT id, object_key, upload_id, state = 'uploading' FROM files WHERE user_id = ? \
                 ORDER BY id LIMIT ?",
                vec![user.into(), (ERASE_FILES_PER_RUN + 1).into()],
            ))
            .await?;
        if found.is_empty() {
            return Ok(());
        }
        let store = self.blob_store()?;
        for row in found.iter().take(ERASE_FILES_PER_RUN as usize) {
            let (id, key) = (rows::text(row, 0)?, rows::text(row, 1)?);
            match (rows::opt_text(row, 2)?, rows::int(row, 3)? == 1) {
                // A file deduplicated onto another's object shares its key: the first to go
                // deletes the object, the rest find it gone.
                (_, false) if !key.is_empty() => self.drop_object(&store, &key, None).await?,
                (Some(upload_id), true) => self.drop_object(&store, &key, Some(&upload_id)).await?,
                _ => {}
            }
            self.ports.sql().batch(delete_file_rows(&id)).await?;
        }
        if found.len() as i64 > ERASE_FILES_PER_RUN {
            return Err(ApiError::internal(
                "more stored files than one run erases; the scheduled run goes on",
            ));
        }
        Ok(())
    }
}

impl<P: Ports> Core<P> {
    /// Deletes an object at the store, or aborts its unfinished upload; one already gone
    /// counts as done.
    async fn drop_object(
        &self,
        store: &BlobStore,
        key: &str,
        upload_id: Option<&str>,
    ) -> ApiResult<()> {
        let (req, action) = match upload_id {
            Some(id) => (
                store.abort_multipart(key, id, self.store_clock())?,
                "abort an upload",
            ),
            None => (store.delete(key, self.store_clock())?, "delete an object"),
        };
        BlobStore::gone(action, &self.send(req).await?)
    }
}

/// A deleted account's files erased per request: two subrequests each (the store, the
/// database), within the 50 a Worker on the free plan may make.
const ERASE_FILES_PER_RUN: i64 = 20;

pub(super) fn delete_file_rows(id: &str) -> Vec<Stmt> {
    vec![
        // A clipboard item sent as this file refers to it; without the file it is nothing.
        Stmt::new(
            "DELETE FROM clipboard_items WHERE file_id = ?",
            vec![id.into()],
        ),
        Stmt::new("DELETE FROM file_parts WHERE file_id = ?", vec![id.into()]),
        Stmt::new("DELETE FROM file_shares WHERE file_id = ?", vec![id.into()]),
        Stmt::new("DELETE FROM files WHERE id = ?", vec![id.into()]),
    ]
}
