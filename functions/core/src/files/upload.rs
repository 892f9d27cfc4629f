//! A send's upload, start to finish: initiate (dedupe, plan, open the store's upload), sign part
//! URLs, record parts as the device reports them, report progress, and complete at the store.

use http::StatusCode;
use serde::Deserialize;
use udc_hub::names;
use udc_hub::NewEvent;

use super::record::{unsigned, FileRecord, FileState};
use super::retention::delete_file_rows;
use super::rules::{description, part_plan, sha256_hex};
use super::{MAX_PART_URLS, PART_URL_TTL};
use crate::auth::Caller;
use crate::blob::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::events::{Change, SelectedSql, When};
use crate::ports::{Http, Ports, Row, Sql, Stmt, Value};
use crate::web::{json_body, Reply};
use crate::{rows, validate, Core, Rq};

/// A file's upload progress as JSON — parts and bytes recorded of its whole — from its row and
/// its recorded parts, after `$head` (a SELECT, or `log_event_select!`) and before `$tail`.
/// Parameters: the file's id three times.
macro_rules! progress_sql {
    ($head:expr, $tail:literal) => {
        concat!(
            $head,
            "json_object('file_id', f.id, 'parts_done', c.n, 'part_count', f.part_count, ",
            "'bytes_done', CASE WHEN c.has_last = 1 ",
            "THEN (c.n - 1) * f.part_size + f.size - f.part_size * (f.part_count - 1) ",
            "ELSE c.n * f.part_size END, 'size', f.size) ",
            "FROM files f, (SELECT count(*) AS n, ",
            "coalesce(max(part_number = (SELECT part_count FROM files WHERE id = ?)), 0) AS has_last ",
            "FROM file_parts WHERE file_id = ?) c WHERE f.id = ?",
            $tail
        )
    };
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitiateBody {
    name: Option<String>,
    sealed: Option<String>,
    size: u64,
    sha256: String,
    mime: Option<String>,
    target_device_id: Option<String>,
    part_size: Option<u64>,
}

#[derive(Deserialize)]
struct PartsBody {
    part_numbers: Vec<u64>,
}

#[derive(Deserialize)]
struct PartDoneBody {
    upload_id: String,
    part_number: u64,
    etag: String,
}

#[derive(Deserialize)]
struct CompleteBody {
    upload_id: String,
}

/// Why the store refused to complete, in the sender's words: the parts it holds are not the
/// recorded ones, or it has no open upload (completed by another request a moment ago, or lost
/// with the store's data).
fn refused_completion(file_id: &str, code: &str) -> ApiError {
    if code == "NoSuchUpload" {
        return ApiError::conflict(
            "upload_not_open",
            format!(
                "the store has no open upload for file {file_id}: if another request just \
                 completed it, ask again; otherwise send the file again"
            ),
        );
    }
    ApiError::conflict(
        "parts_rejected",
        format!("the store refused the recorded parts ({code}); upload them again"),
    )
}

impl<P: Ports> Core<P> {
    pub(crate) async fn initiate_upload(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: InitiateBody = json_body(rq.headers, rq.body)?;
        let described = description(
            body.name.as_deref(),
            body.mime.as_deref(),
            body.sealed.as_deref(),
        )?;
        let sha256 = sha256_hex("sha256", &body.sha256)?;
        if body.size > self.config.files_max_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!(
                    "size: this server accepts files up to {} bytes",
                    self.config.files_max_bytes
                ),
            ));
        }
        let (part_size, part_count) = part_plan(body.size, body.part_size)?;
        let target = body
            .target_device_id
            .as_deref()
            .map(|t| validate::body_id("target_device_id", t))
            .transpose()?;
        let store = self.blob_store()?;
        let caller = self.caller(rq).await?;
        let sender = caller.device()?.to_owned();
        if target.as_deref() == Some(sender.as_str()) {
            return Err(ApiError::unprocessable(
                "target_device_id: send to another device, not this one",
            ));
        }
        let mut file = FileRecord {
            id: self.new_id()?,
            name: described.name,
            mime: described.mime,
            size: body.size,
            sha256,
            state: FileState::Uploading,
            sender_device_id: sender,
            part_size,
            part_count,
            created_at: rq.now_ms,
            completed_at: None,
            deleted_at: None,
            object_key: String::new(),
            upload_id: None,
            shared_with: target.into_iter().collect(),
            trusted: false,
            sealed: described.sealed,
        };
        self.initiate(rq, &caller, &store, &mut file).await
    }

    pub(super) async fn initiate(
        &self,
        rq: &Rq<'_>,
        caller: &Caller,
        store: &BlobStore,
        file: &mut FileRecord,
    ) -> ApiResult<Reply> {
        let user = caller.user_id.as_str();
        let target = file.shared_with.first().cloned();
        let found = self
            .ports
            .sql()
            .query_many(vec![
                Stmt::new(
                    "SELECT id FROM devices WHERE id = ? AND user_id = ? AND removed_at IS NULL",
                    vec![target.as_deref().into(), user.into()],
                ),
                // Dedupe only from a live file (so the purge never deletes an object a new file
                // was just attached to) that the calling device itself uploaded. Its own: knowing
                // a file's hash and size (`GET /files` shows them) must never be a way to another
                // device's bytes. Uploaded by it: the store does not check bytes against the
                // declared SHA-256, so a device that lied about its content can only ever serve
                // that content back to itself, never to an honest device of the account. And the
                // file's own object: not a copy attached before this rule from another device's.
                // And of its kind: a sealed file's bytes only for a sealed file.
                Stmt::new(
                    "SELECT object_key FROM files WHERE user_id = ? AND sender_device_id = ? \
                     AND sha256 = ? AND size = ? AND state = 'available' AND deleted_at IS NULL \
                     AND object_key = user_id || '/' || id AND (sealed IS NULL) = ? LIMIT 1",
                    vec![
                        user.into(),
                        caller.device_id.as_deref().into(),
                        file.sha256.as_str().into(),
                        (file.size as i64).into(),
                        i64::from(file.sealed.is_none()).into(),
                    ],
                ),
            ])
            .await?;
        if target.is_some() && found.first().is_none_or(Vec::is_empty) {
            return Err(ApiError::not_found("target device"));
        }
        if let Some(key) = found
            .get(1)
            .and_then(|r| r.first())
            .map(|r| rows::text(r, 0))
            .transpose()?
        {
            file.object_key = key;
            file.state = FileState::Available;
            file.completed_at = Some(rq.now_ms);
            let done = self.commit(self.insert_file(user, file)).await?;
            // Zero when the source file went away meanwhile: then upload after all.
            if done.one(0) {
                return Ok(Reply::json(
                    StatusCode::CREATED,
                    serde_json::json!({"status": "already_present", "file": file.view()}),
                )?
                .warn(done.warning));
            }
            file.state = FileState::Uploading;
            file.completed_at = None;
        }
        file.object_key = format!("{user}/{}", file.id);
        let resp = self
            .send(store.create_multipart(&file.object_key, self.store_clock())?)
            .await?;
        let upload_id = BlobStore::created_upload_id(&resp)?;
        file.upload_id = Some(upload_id.clone());
        if let Err(e) = self.commit(self.insert_file(user, file)).await {
            // Leave nothing behind at the store either (best effort: the purge aborts leftovers).
            if let Ok(abort) =
                store.abort_multipart(&file.object_key, &upload_id, self.store_clock())
            {
                let _ = self.ports.http().send(abort).await;
            }
            return Err(e);
        }
        Reply::json(
            StatusCode::CREATED,
            serde_json::json!({
                "status": "upload_required",
                "file": file.view(),
                "upload": {
                    "upload_id": upload_id,
                    "part_size": file.part_size,
                    "part_count": file.part_count,
                },
            }),
        )
    }

    /// A file's row and its shares, as one change. A deduplicated file (already available) is
    /// inserted only while a live file still holds its object, and says so to the devices it
    /// is for in the same batch.
    pub(super) fn insert_file(&self, user: &str, f: &FileRecord) -> Change {
        let params = vec![
            f.id.as_str().into(),
            user.into(),
            f.sender_device_id.as_str().into(),
            f.name.as_str().into(),
            f.mime.as_str().into(),
            (f.size as i64).into(),
            f.sha256.as_str().into(),
            f.object_key.as_str().into(),
            f.upload_id.as_deref().into(),
            (f.part_size as i64).into(),
            (f.part_count as i64).into(),
            f.state.as_str().into(),
            f.created_at.into(),
            f.created_at.into(),
            f.completed_at.into(),
            f.sealed.as_deref().into(),
        ];
        let mut change = Change::new(vec![if f.state == FileState::Available {
            let mut p = params;
            p.extend([user.into(), f.object_key.as_str().into()]);
            Stmt::new(
                "INSERT INTO files (id, user_id, sender_device_id, name, mime, size, sha256, object_key, \
                 upload_id, part_size, part_count, state, created_at, updated_at, completed_at, sealed) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM files \
                 WHERE user_id = ? AND object_key = ? AND state = 'available' AND deleted_at IS NULL)",
                p,
            )
        } else {
            Stmt::new(
                "INSERT INTO files (id, user_id, sender_device_id, name, mime, size, sha256, object_key, \
                 upload_id, part_size, part_count, state, created_at, updated_at, completed_at, sealed) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            )
        }]);
        if f.state == FileState::Available {
            change.event(user, available(f), When::Changed);
        }
        for device in &f.shared_with {
            change.push(Stmt::new(
                "INSERT INTO file_shares (file_id, device_id, shared_at) \
                 SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM files WHERE id = ?)",
                vec![
                    f.id.as_str().into(),
                    device.as_str().into(),
                    f.created_at.into(),
                    f.id.as_str().into(),
                ],
            ));
        }
        change
    }

    pub(crate) async fn presign_parts(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let body: PartsBody = json_body(rq.headers, rq.body)?;
        let store = self.blob_store()?;
        let (_, device, file) = self.caller_and_file(rq, id, false).await?;
        file.require_sender(&device)?;
        file.require_uploading()?;
        if body.part_numbers.is_empty() || body.part_numbers.len() > MAX_PART_URLS {
            return Err(ApiError::invalid(format!(
                "part_numbers: ask for 1 to {MAX_PART_URLS} parts at a time"
            )));
        }
        let upload_id = file.upload_id.as_deref().unwrap_or_default();
        let mut numbers = body.part_numbers.clone();
        numbers.sort_unstable();
        numbers.dedup();
        let parts = numbers
            .into_iter()
            .map(|n| {
                let number = u16::try_from(n)
                    .ok()
                    .filter(|n| (1..=file.part_count).contains(&u64::from(*n)))
                    .ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "part_numbers: {n} is not a part of this file (1 to {})",
                            file.part_count
                        ))
                    })?;
                let url = store.presign_upload_part(
                    &file.object_key,
                    upload_id,
                    number,
                    file.part_len(n),
                    rq.now_ms,
                    PART_URL_TTL,
                )?;
                Ok(serde_json::json!({
                    "part_number": n,
                    "size": file.part_len(n),
                    "url": url.as_str(),
                }))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({
            "parts": parts,
            "expires_at": rows::timestamp(rq.now_ms + PART_URL_TTL.as_millis() as i64),
        }))
    }

    pub(crate) async fn record_part(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: PartDoneBody = json_body(rq.headers, rq.body)?;
        let etag = body.etag.trim();
        if etag.is_empty() || etag.len() > 128 || !etag.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ApiError::invalid(
                "etag: must be the ETag the store answered (1 to 128 characters)",
            ));
        }
        let (caller, device, file) = self.caller_and_upload(rq, &body.upload_id).await?;
        file.require_sender(&device)?;
        file.require_uploading()?;
        if !(1..=file.part_count).contains(&body.part_number) {
            return Err(ApiError::unprocessable(format!(
                "part_number: must be 1 to {}",
                file.part_count
            )));
        }
        let n = body.part_number as i64;
        let user = caller.user_id.as_str();
        // The event's progress is counted in the batch, after this part: concurrent parts
        // each count the others committed before them, and the last one counts them all.
        let id = || -> Vec<Value> { vec![file.id.as_str().into(); 3] };
        let mut change = Change::new(vec![Stmt::new(
            "INSERT INTO file_parts (file_id, part_number, etag, recorded_at) \
             SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM files WHERE id = ? AND state = 'uploading') \
             ON CONFLICT (file_id, part_number) DO UPDATE SET etag = excluded.etag, recorded_at = excluded.recorded_at",
            vec![file.id.as_str().into(), n.into(), etag.into(), rq.now_ms.into(), file.id.as_str().into()],
        )]);
        change.event_selected(
            user,
            NewEvent::to_all(names::FILE_PROGRESS, serde_json::Value::Null),
            SelectedSql {
                log: progress_sql!(udc_hub::log_event_select!(), " AND changes() > 0"),
                outbox: progress_sql!(udc_hub::outbox_event_select!(), " AND changes() > 0"),
            },
            id(),
        );
        change.push(Stmt::new(
            "UPDATE files SET updated_at = ? WHERE id = ?",
            vec![rq.now_ms.into(), file.id.as_str().into()],
        ));
        let done = self.commit(change).await?;
        if !done.one(0) {
            return Err(ApiError::conflict(
                "upload_completed",
                "this file's upload is no longer open",
            ));
        }
        let read = self
            .ports
            .sql()
            .query(Stmt::new(progress_sql!("SELECT ", ""), id()))
            .await?;
        let progress: serde_json::Value = read
            .first()
            .map(|r| rows::text(r, 0))
            .transpose()?
            .and_then(|t| serde_json::from_str(&t).ok())
            // Gone only if the file was deleted since the batch.
            .ok_or_else(|| ApiError::not_found("file"))?;
        Ok(Reply::ok(progress)?.warn(done.warning))
    }

    /// The parts recorded for a file, `(part_number, etag)` in order.
    async fn recorded_parts(&self, file_id: &str) -> ApiResult<Vec<Row>> {
        Ok(self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT part_number, etag FROM file_parts WHERE file_id = ? ORDER BY part_number",
                vec![file_id.into()],
            ))
            .await?)
    }

    pub(crate) async fn upload_status(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (_, _, file) = self.caller_and_file(rq, id, false).await?;
        let parts = self.recorded_parts(&file.id).await?;
        let mut done = Vec::with_capacity(parts.len());
        let mut recorded = Vec::with_capacity(parts.len());
        for row in &parts {
            let n = unsigned(row, 0)?;
            recorded.push(n);
            done.push(serde_json::json!({"part_number": n, "etag": rows::text(row, 1)?}));
        }
        let missing: Vec<u64> = if file.state == FileState::Available {
            Vec::new()
        } else {
            (1..=file.part_count)
                .filter(|n| recorded.binary_search(n).is_err())
                .collect()
        };
        Reply::ok(serde_json::json!({
            "file_id": file.id,
            "state": file.state,
            "upload_id": file.upload_id,
            "part_size": file.part_size,
            "part_count": file.part_count,
            "parts": done,
            "missing": missing,
        }))
    }

    pub(crate) async fn complete_upload(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: CompleteBody = json_body(rq.headers, rq.body)?;
        let store = self.blob_store()?;
        let (caller, device, file) = self.caller_and_upload(rq, &body.upload_id).await?;
        file.require_sender(&device)?;
        self.complete(rq, &caller, &store, file).await
    }

    pub(super) async fn complete(
        &self,
        rq: &Rq<'_>,
        caller: &Caller,
        store: &BlobStore,
        file: FileRecord,
    ) -> ApiResult<Reply> {
        // Completing twice is harmless: the second time there is nothing left to do.
        if file.state == FileState::Available {
            return Reply::ok(serde_json::json!({"file": file.view()}));
        }
        let upload_id = file.upload_id.clone().unwrap_or_default();
        let parts = self.recorded_parts(&file.id).await?;
        let mut etags = Vec::with_capacity(parts.len());
        for (i, row) in parts.iter().enumerate() {
            if unsigned(row, 0)? == i as u64 + 1 {
                etags.push(rows::text(row, 1)?);
            }
        }
        if (etags.len() as u64) < file.part_count {
            let missing: Vec<String> = (etags.len() as u64 + 1..=file.part_count)
                .filter(|n| !parts.iter().any(|r| unsigned(r, 0).ok() == Some(*n)))
                .map(|n| n.to_string())
                .collect();
            return Err(ApiError::conflict(
                "parts_missing",
                format!("upload these parts first: {}", missing.join(", ")),
            ));
        }
        let resp = self
            .send(store.complete_multipart(
                &file.object_key,
                &upload_id,
                &etags,
                self.store_clock(),
            )?)
            .await?;
        let refused = BlobStore::completed(&resp)?.err();
        let stored = BlobStore::head_size(
            &self
                .send(store.head(&file.object_key, self.store_clock())?)
                .await?,
        )?;
        if let Some(code) = refused {
            // The store has no open upload when an earlier run completed it there: a request
            // running beside this one, or one whose host died before it recorded the file. The
            // finished object says so; then this run records it, once.
            if stored != Some(file.size) {
                return Err(refused_completion(&file.id, &code));
            }
        } else if stored != Some(file.size) {
            // The declared size was wrong: the object is useless, so it and the record go.
            let _ = self
                .send(store.delete(&file.object_key, self.store_clock())?)
                .await;
            self.ports.sql().batch(delete_file_rows(&file.id)).await?;
            return Err(ApiError::conflict(
                "size_mismatch",
                format!(
                    "the uploaded parts hold {} bytes, not the declared {}; start the upload again",
                    stored.unwrap_or(0),
                    file.size
                ),
            ));
        }
        let user = caller.user_id.as_str();
        let mut done_file = file.clone();
        done_file.state = FileState::Available;
        done_file.completed_at = Some(rq.now_ms);
        let mut change = Change::new(vec![Stmt::new(
            "UPDATE files SET state = 'available', completed_at = ?, updated_at = ? WHERE id = ? AND state = 'uploading'",
            vec![rq.now_ms.into(), rq.now_ms.into(), file.id.as_str().into()],
        )]);
        change.event(
            user,
            NewEvent::to_all(
                names::FILE_COMPLETED,
                serde_json::json!({"file": done_file.view()}),
            ),
            When::Changed,
        );
        change.event(user, available(&done_file), When::Changed);
        let marked = self.commit(change).await?;
        if !marked.one(0) {
            // Another run recorded it first (and announced it): answer the file as it is.
            let (_, _, now) = self.caller_and_file(rq, &file.id, false).await?;
            return Reply::ok(serde_json::json!({"file": now.view()}));
        }
        Ok(Reply::ok(serde_json::json!({"file": done_file.view()}))?.warn(marked.warning))
    }
}

/// `file.available` to the devices the file was sent to: one event naming them all.
pub(super) fn available(file: &FileRecord) -> NewEvent {
    NewEvent::to_devices(
        names::FILE_AVAILABLE,
        file.shared_with.clone(),
        serde_json::json!({"file": file.view()}),
    )
}
