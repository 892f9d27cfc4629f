//! Files sent between a user's devices. Bytes never pass through here (docs/ARCHITECTURE.md,
//! "Bytes never pass through a function"): core signs URLs, asks the store to start and finish
//! multipart uploads, and records what the devices report. Every query is scoped by the
//! caller's account; another account's file is simply not found.

use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use udc_hub::NewEvent;

use crate::auth::Caller;
use crate::blob::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Clock, Http, Ports, Row, Sql, Stmt};
use crate::web::{json_body, query_param, Reply};
use crate::{rows, validate, Core, Rq};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitiateBody {
    name: String,
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

#[derive(Deserialize)]
struct ShareBody {
    device_id: String,
}

#[derive(Deserialize)]
struct ConfirmBody {
    sha256: String,
}

/// A file row with what access checks need.
/// Where a file is in its life; `files.state` holds `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum FileState {
    /// Initiated: parts may be uploaded until the upload completes.
    Uploading,
    /// Completed at the store: it may be downloaded.
    Available,
}

impl FileState {
    fn as_str(self) -> &'static str {
        match self {
            FileState::Uploading => "uploading",
            FileState::Available => "available",
        }
    }

    fn parse(raw: &str) -> ApiResult<FileState> {
        match raw {
            "uploading" => Ok(FileState::Uploading),
            "available" => Ok(FileState::Available),
            other => Err(ApiError::internal(format!("a file in state {other:?}"))),
        }
    }
}

#[derive(Clone)]
struct FileRecord {
    id: String,
    name: String,
    mime: String,
    size: u64,
    sha256: String,
    state: FileState,
    sender_device_id: String,
    part_size: u64,
    part_count: u64,
    created_at: i64,
    completed_at: Option<i64>,
    deleted_at: Option<i64>,
    object_key: String,
    upload_id: Option<String>,
    shared_with: Vec<String>,
    /// Whether the sender trusts the calling device.
    trusted: bool,
}

/// Every column `record` reads, in order; the one parameter is the calling device (for `trusted`).
macro_rules! select_files {
    ($tail:literal) => {
        concat!(
            "SELECT f.id, f.name, f.mime, f.size, f.sha256, f.state, f.sender_device_id, ",
            "f.part_size, f.part_count, f.created_at, f.completed_at, f.deleted_at, f.object_key, ",
            "f.upload_id, (SELECT group_concat(s.device_id) FROM file_shares s WHERE s.file_id = f.id), ",
            "EXISTS (SELECT 1 FROM trust_links t WHERE t.device_id = f.sender_device_id AND t.target_device_id = ?) ",
            "FROM files f ",
            $tail
        )
    };
}

fn unsigned(row: &Row, i: usize) -> ApiResult<u64> {
    u64::try_from(rows::int(row, i)?).map_err(|e| ApiError::internal(e.to_string()))
}

fn record(row: &Row) -> ApiResult<FileRecord> {
    let mut shared_with: Vec<String> = rows::opt_text(row, 14)?
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    shared_with.sort();
    Ok(FileRecord {
        id: rows::text(row, 0)?,
        name: rows::text(row, 1)?,
        mime: rows::text(row, 2)?,
        size: unsigned(row, 3)?,
        sha256: rows::text(row, 4)?,
        state: FileState::parse(&rows::text(row, 5)?)?,
        sender_device_id: rows::text(row, 6)?,
        part_size: unsigned(row, 7)?,
        part_count: unsigned(row, 8)?,
        created_at: rows::int(row, 9)?,
        completed_at: rows::opt_int(row, 10)?,
        deleted_at: rows::opt_int(row, 11)?,
        object_key: rows::text(row, 12)?,
        upload_id: rows::opt_text(row, 13)?,
        shared_with,
        trusted: rows::int(row, 15)? != 0,
    })
}

#[derive(Serialize)]
pub struct FileView {
    id: String,
    name: String,
    mime: String,
    size: u64,
    sha256: String,
    state: FileState,
    sender_device_id: String,
    shared_with: Vec<String>,
    created_at: String,
    completed_at: Option<String>,
    deleted_at: Option<String>,
    restorable_until: Option<String>,
}

impl FileRecord {
    fn view(&self) -> FileView {
        FileView {
            id: self.id.clone(),
            name: self.name.clone(),
            mime: self.mime.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
            state: self.state,
            sender_device_id: self.sender_device_id.clone(),
            shared_with: self.shared_with.clone(),
            created_at: rows::timestamp(self.created_at),
            completed_at: self.completed_at.map(rows::timestamp),
            deleted_at: self.deleted_at.map(rows::timestamp),
            restorable_until: self
                .deleted_at
                .map(|d| rows::timestamp(d + RESTORE_WINDOW_MS)),
        }
    }

    /// Bytes of part `n` (1-based): every part is `part_size` but the last.
    fn part_len(&self, n: u64) -> u64 {
        if n == self.part_count {
            self.size - self.part_size * (self.part_count - 1)
        } else {
            self.part_size
        }
    }

    /// The sender reads its own files; another device of the account only if the sender trusts
    /// it and the file was sent to it (or to no device in particular).
    fn may_download(&self, device: &str) -> bool {
        device == self.sender_device_id
            || (self.trusted
                && (self.shared_with.is_empty() || self.shared_with.iter().any(|d| d == device)))
    }

    fn require_sender(&self, device: &str) -> ApiResult<()> {
        if device == self.sender_device_id {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only the sending device can upload this file",
            ))
        }
    }

    fn require_uploading(&self) -> ApiResult<()> {
        if self.state == FileState::Uploading {
            Ok(())
        } else {
            Err(ApiError::conflict(
                "upload_completed",
                "this file's upload is already complete",
            ))
        }
    }

    fn require_available(&self) -> ApiResult<()> {
        if self.state == FileState::Available {
            Ok(())
        } else {
            Err(ApiError::conflict(
                "upload_incomplete",
                "this file has not finished uploading",
            ))
        }
    }
}

/// Part size and count for a file: S3 wants at most 10,000 parts, all but the last of one size
/// (R2 insists), none but the last under 5 MiB.
pub fn part_plan(size: u64, requested: Option<u64>) -> ApiResult<(u64, u64)> {
    let mut part_size = match requested {
        None => DEFAULT_PART_SIZE,
        Some(p) if (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p) => p,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "part_size: must be {MIN_PART_SIZE} to {MAX_PART_SIZE} bytes"
            )))
        }
    };
    if size.div_ceil(part_size) > MAX_PARTS {
        part_size = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    }
    Ok((part_size, size.div_ceil(part_size).max(1)))
}

fn sha256_hex(field: &str, raw: &str) -> ApiResult<String> {
    let v = raw.trim().to_ascii_lowercase();
    if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(v)
    } else {
        Err(ApiError::invalid(format!(
            "{field}: must be 64 hex digits (SHA-256)"
        )))
    }
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

/// A file name as the receiver will save it: no path, nothing a file system would trip on.
fn file_name(raw: &str) -> ApiResult<String> {
    let name = validate::label("name", raw, 255)?;
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ApiError::invalid(
            "name: must be a file name without a path",
        ));
    }
    Ok(name)
}

fn mime(raw: Option<&str>) -> ApiResult<String> {
    let Some(raw) = raw.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok("application/octet-stream".to_owned());
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    match raw.split_once('/') {
        Some((t, sub)) if raw.len() <= 127 && token(t) && token(sub) => {
            Ok(raw.to_ascii_lowercase())
        }
        _ => Err(ApiError::invalid(
            "mime: must be a media type like image/jpeg",
        )),
    }
}

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
            .ok_or_else(store_unavailable)
            .and_then(BlobStore::new)
    }

    /// The time core signs its own store requests with: always the real clock, since the store
    /// refuses a request dated far from its own time (the test clock only moves what devices see).
    fn store_clock(&self) -> i64 {
        self.ports.clock().now_ms()
    }

    async fn send(&self, req: http::Request<Vec<u8>>) -> ApiResult<http::Response<Vec<u8>>> {
        Ok(self.ports.http().send(req).await?)
    }

    /// The caller (a registered device) and the account's file `id`, in one round trip.
    async fn caller_and_file(
        &self,
        rq: &Rq<'_>,
        id: &str,
        deleted: bool,
    ) -> ApiResult<(Caller, String, FileRecord)> {
        let id = validate::id(id, "file")?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    if deleted {
                        select_files!(
                            "WHERE f.id = ? AND f.user_id = ? AND f.deleted_at IS NOT NULL"
                        )
                    } else {
                        select_files!("WHERE f.id = ? AND f.user_id = ? AND f.deleted_at IS NULL")
                    },
                    vec![
                        c.device_id.as_deref().into(),
                        id.as_str().into(),
                        c.user_id.as_str().into(),
                    ],
                )]
            })
            .await?;
        the_one(caller, found, "file")
    }

    /// The caller and the account's file whose store upload is `upload_id`.
    async fn caller_and_upload(
        &self,
        rq: &Rq<'_>,
        upload_id: &str,
    ) -> ApiResult<(Caller, String, FileRecord)> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    select_files!(
                        "WHERE f.user_id = ? AND f.upload_id = ? AND f.deleted_at IS NULL"
                    ),
                    vec![
                        c.device_id.as_deref().into(),
                        c.user_id.as_str().into(),
                        upload_id.into(),
                    ],
                )]
            })
            .await?;
        the_one(caller, found, "upload")
    }

    pub(crate) async fn initiate_upload(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: InitiateBody = json_body(rq.headers, rq.body)?;
        let name = file_name(&body.name)?;
        let sha256 = sha256_hex("sha256", &body.sha256)?;
        let mime = mime(body.mime.as_deref())?;
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
            name,
            mime,
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
        };
        self.initiate(rq, &caller, &store, &mut file).await
    }

    async fn initiate(
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
                Stmt::new(
                    "SELECT object_key FROM files WHERE user_id = ? AND sender_device_id = ? \
                     AND sha256 = ? AND size = ? AND state = 'available' AND deleted_at IS NULL \
                     AND object_key = user_id || '/' || id LIMIT 1",
                    vec![
                        user.into(),
                        caller.device_id.as_deref().into(),
                        file.sha256.as_str().into(),
                        (file.size as i64).into(),
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
            let changes = self.ports.sql().batch(self.insert_file(user, file)).await?;
            // Zero when the source file went away meanwhile: then upload after all.
            if changes.first() == Some(&1) {
                let warning = self.announce_available(user, file).await;
                return Ok(Reply::json(
                    StatusCode::CREATED,
                    serde_json::json!({"status": "already_present", "file": file.view()}),
                )?
                .warn(warning));
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
        if let Err(e) = self.ports.sql().batch(self.insert_file(user, file)).await {
            // Leave nothing behind at the store either (best effort: the purge aborts leftovers).
            if let Ok(abort) =
                store.abort_multipart(&file.object_key, &upload_id, self.store_clock())
            {
                let _ = self.ports.http().send(abort).await;
            }
            return Err(e.into());
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

    /// The file row and its share, as one batch. A deduplicated file is inserted only while a
    /// live file still holds its object.
    fn insert_file(&self, user: &str, f: &FileRecord) -> Vec<Stmt> {
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
        ];
        let mut stmts = vec![if f.state == FileState::Available {
            let mut p = params;
            p.extend([user.into(), f.object_key.as_str().into()]);
            Stmt::new(
                "INSERT INTO files (id, user_id, sender_device_id, name, mime, size, sha256, object_key, \
                 upload_id, part_size, part_count, state, created_at, updated_at, completed_at) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM files \
                 WHERE user_id = ? AND object_key = ? AND state = 'available' AND deleted_at IS NULL)",
                p,
            )
        } else {
            Stmt::new(
                "INSERT INTO files (id, user_id, sender_device_id, name, mime, size, sha256, object_key, \
                 upload_id, part_size, part_count, state, created_at, updated_at, completed_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            )
        }];
        for device in &f.shared_with {
            stmts.push(Stmt::new(
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
        stmts
    }

    /// `file.available` to the devices the file was sent to: one event naming them all.
    async fn announce_available(&self, user: &str, file: &FileRecord) -> Option<String> {
        let event = NewEvent::to_devices(
            "file.available",
            file.shared_with.clone(),
            serde_json::json!({"file": file.view()}),
        );
        self.announce(user, event).await
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
        let mut found = self
            .ports
            .sql()
            .batch(vec![
                Stmt::new(
                    "INSERT INTO file_parts (file_id, part_number, etag, recorded_at) \
                     SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM files WHERE id = ? AND state = 'uploading') \
                     ON CONFLICT (file_id, part_number) DO UPDATE SET etag = excluded.etag, recorded_at = excluded.recorded_at",
                    vec![file.id.as_str().into(), n.into(), etag.into(), rq.now_ms.into(), file.id.as_str().into()],
                ),
                Stmt::new(
                    "UPDATE files SET updated_at = ? WHERE id = ?",
                    vec![rq.now_ms.into(), file.id.as_str().into()],
                ),
            ])
            .await?;
        if found.first() != Some(&1) {
            return Err(ApiError::conflict(
                "upload_completed",
                "this file's upload is no longer open",
            ));
        }
        found.clear();
        let done = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT count(*), coalesce(max(part_number = ?), 0) FROM file_parts WHERE file_id = ?",
                vec![(file.part_count as i64).into(), file.id.as_str().into()],
            ))
            .await?;
        let row = done
            .first()
            .ok_or_else(|| ApiError::internal("count returned no row"))?;
        let parts_done = unsigned(row, 0)?;
        let bytes_done = if rows::int(row, 1)? == 1 {
            (parts_done - 1) * file.part_size + file.part_len(file.part_count)
        } else {
            parts_done * file.part_size
        };
        let progress = serde_json::json!({
            "file_id": file.id,
            "parts_done": parts_done,
            "part_count": file.part_count,
            "bytes_done": bytes_done,
            "size": file.size,
        });
        let warning = self
            .announce(
                &caller.user_id,
                NewEvent::to_all("file.transfer.progress", progress.clone()),
            )
            .await;
        Ok(Reply::ok(progress)?.warn(warning))
    }

    pub(crate) async fn upload_status(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (_, _, file) = self.caller_and_file(rq, id, false).await?;
        let parts = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT part_number, etag FROM file_parts WHERE file_id = ? ORDER BY part_number",
                vec![file.id.as_str().into()],
            ))
            .await?;
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

    async fn complete(
        &self,
        rq: &Rq<'_>,
        caller: &Caller,
        store: &BlobStore,
        mut file: FileRecord,
    ) -> ApiResult<Reply> {
        // Completing twice is harmless: the second time there is nothing left to do.
        if file.state == FileState::Available {
            return Reply::ok(serde_json::json!({"file": file.view()}));
        }
        let upload_id = file.upload_id.clone().unwrap_or_default();
        let parts = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT part_number, etag FROM file_parts WHERE file_id = ? ORDER BY part_number",
                vec![file.id.as_str().into()],
            ))
            .await?;
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
        let marked = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE files SET state = 'available', completed_at = ?, updated_at = ? WHERE id = ? AND state = 'uploading'",
                vec![rq.now_ms.into(), rq.now_ms.into(), file.id.as_str().into()],
            )])
            .await?;
        if marked.first() != Some(&1) {
            // Another run recorded it first (and announced it): answer the file as it is.
            let (_, _, now) = self.caller_and_file(rq, &file.id, false).await?;
            return Reply::ok(serde_json::json!({"file": now.view()}));
        }
        file.state = FileState::Available;
        file.completed_at = Some(rq.now_ms);
        let user = caller.user_id.as_str();
        let warning = self
            .announce(
                user,
                NewEvent::to_all(
                    "file.transfer.completed",
                    serde_json::json!({"file": file.view()}),
                ),
            )
            .await;
        let warning = warning.or(self.announce_available(user, &file).await);
        Ok(Reply::ok(serde_json::json!({"file": file.view()}))?.warn(warning))
    }

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
        self.ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE file_shares SET downloaded_at = ? WHERE file_id = ? AND device_id = ? AND downloaded_at IS NULL",
                vec![rq.now_ms.into(), file.id.as_str().into(), device.as_str().into()],
            )])
            .await?;
        let event = NewEvent::to_devices(
            "file.downloaded",
            vec![file.sender_device_id.clone()],
            serde_json::json!({"file_id": file.id, "device_id": device}),
        );
        let warning = self.announce(&caller.user_id, event).await;
        Ok(Reply::no_content()?.warn(warning))
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
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "INSERT INTO file_shares (file_id, device_id, shared_at) SELECT ?, d.id, ? FROM devices d \
                 WHERE d.id = ? AND d.user_id = ? AND d.removed_at IS NULL ON CONFLICT DO NOTHING",
                vec![
                    file.id.as_str().into(),
                    rq.now_ms.into(),
                    target.as_str().into(),
                    caller.user_id.as_str().into(),
                ],
            )])
            .await?;
        let mut warning = None;
        if changes.first() == Some(&1) {
            file.shared_with.push(target.clone());
            file.shared_with.sort();
            if file.state == FileState::Available {
                let only = FileRecord {
                    shared_with: vec![target.clone()],
                    ..file.clone()
                };
                warning = self.announce_available(&caller.user_id, &only).await;
            }
        } else if !file.shared_with.contains(&target) {
            return Err(ApiError::not_found("device"));
        }
        Ok(Reply::ok(file.view())?.warn(warning))
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
            None => (i64::MAX, String::new()),
            Some(c) => c
                .split_once('_')
                .and_then(|(at, id)| {
                    Some((
                        at.parse::<i64>().ok()?,
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
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
                vec![rq.now_ms.into(), rq.now_ms.into(), file.id.as_str().into()],
            )])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::not_found("file"));
        }
        let warning = self
            .announce(
                &caller.user_id,
                NewEvent::to_all("file.deleted", serde_json::json!({"file_id": file.id})),
            )
            .await;
        Ok(Reply::no_content()?.warn(warning))
    }

    pub(crate) async fn restore_file(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (caller, _, mut file) = self.caller_and_file(rq, id, true).await?;
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE files SET deleted_at = NULL, updated_at = ? WHERE id = ? AND deleted_at > ?",
                vec![rq.now_ms.into(), file.id.as_str().into(), (rq.now_ms - RESTORE_WINDOW_MS).into()],
            )])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::not_found("file"));
        }
        file.deleted_at = None;
        let warning = self
            .announce(
                &caller.user_id,
                NewEvent::to_all("file.restored", serde_json::json!({"file": file.view()})),
            )
            .await;
        Ok(Reply::ok(file.view())?.warn(warning))
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
                let resp = self.send(store.delete(&key, self.store_clock())?).await?;
                BlobStore::gone("delete an object", &resp)?;
            }
            self.ports.sql().batch(delete_file_rows(&id)).await?;
            purged += 1;
        }
        let mut aborted = 0;
        for row in found.get(1).map(Vec::as_slice).unwrap_or_default() {
            let (id, key) = (rows::text(row, 0)?, rows::text(row, 1)?);
            let upload_id = rows::opt_text(row, 2)?.unwrap_or_default();
            let resp = self
                .send(store.abort_multipart(&key, &upload_id, self.store_clock())?)
                .await?;
            BlobStore::gone("abort an upload", &resp)?;
            self.ports.sql().batch(delete_file_rows(&id)).await?;
            aborted += 1;
        }
        Ok((purged, aborted))
    }
}

/// The calling device and the one file a `caller_with` read found (else `what` is not found).
fn the_one(
    caller: Caller,
    found: Vec<Vec<Row>>,
    what: &str,
) -> ApiResult<(Caller, String, FileRecord)> {
    let device = caller.device()?.to_owned();
    let row = found
        .first()
        .and_then(|rows| rows.first())
        .ok_or_else(|| ApiError::not_found(what))?;
    Ok((caller, device, record(row)?))
}

fn delete_file_rows(id: &str) -> Vec<Stmt> {
    vec![
        Stmt::new("DELETE FROM file_parts WHERE file_id = ?", vec![id.into()]),
        Stmt::new("DELETE FROM file_shares WHERE file_id = ?", vec![id.into()]),
        Stmt::new("DELETE FROM files WHERE id = ?", vec![id.into()]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_equal_but_the_last_and_never_too_many() {
        assert_eq!(part_plan(0, None).unwrap(), (DEFAULT_PART_SIZE, 1));
        assert_eq!(part_plan(50 * MIB, None).unwrap(), (DEFAULT_PART_SIZE, 7));
        assert_eq!(
            part_plan(5 * 1024 * MIB, None).unwrap(),
            (DEFAULT_PART_SIZE, 640)
        );
        let (size, count) = part_plan(100 * 1024 * MIB, None).unwrap();
        assert!(count <= MAX_PARTS && size % MIB == 0 && size * count >= 100 * 1024 * MIB);
        assert!(part_plan(10, Some(MIB)).is_err());
        assert_eq!(part_plan(12 * MIB, Some(6 * MIB)).unwrap(), (6 * MIB, 2));
    }

    #[test]
    fn names_are_file_names() {
        assert!(file_name("photo.jpg").is_ok());
        for bad in ["", "..", "a/b", "a\\b", "x\u{7}"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(mime(None).unwrap(), "application/octet-stream");
        assert_eq!(mime(Some("Image/PNG")).unwrap(), "image/png");
        assert!(mime(Some("no-slash")).is_err());
    }
}
