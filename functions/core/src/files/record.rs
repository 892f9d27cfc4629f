//! A file as core reads it: its row, its state, what a device may do with it, and the lookups
//! every file route starts with (scoped to the caller's account).

use serde::Serialize;

use super::RESTORE_WINDOW_MS;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Ports, Row, Stmt};
use crate::{rows, validate, Core, Rq};

/// Where a file is in its life; `files.state` holds `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum FileState {
    /// Initiated: parts may be uploaded until the upload completes.
    Uploading,
    /// Completed at the store: it may be downloaded.
    Available,
}

impl FileState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            FileState::Uploading => "uploading",
            FileState::Available => "available",
        }
    }

    pub(super) fn parse(raw: &str) -> ApiResult<FileState> {
        match raw {
            "uploading" => Ok(FileState::Uploading),
            "available" => Ok(FileState::Available),
            other => Err(ApiError::internal(format!("a file in state {other:?}"))),
        }
    }
}

/// A file row with what access checks need.
#[derive(Clone)]
pub(super) struct FileRecord {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) mime: String,
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) state: FileState,
    pub(super) sender_device_id: String,
    pub(super) part_size: u64,
    pub(super) part_count: u64,
    pub(super) created_at: i64,
    pub(super) completed_at: Option<i64>,
    pub(super) deleted_at: Option<i64>,
    pub(super) object_key: String,
    pub(super) upload_id: Option<String>,
    pub(super) shared_with: Vec<String>,
    /// Whether the sender trusts the calling device.
    pub(super) trusted: bool,
    /// The description sealed on the device (base64); None for a file stored in the clear.
    pub(super) sealed: Option<String>,
}

/// Every column `record` reads, in order; the one parameter is the calling device (for `trusted`).
macro_rules! select_files {
    ($tail:literal) => {
        concat!(
            "SELECT f.id, f.name, f.mime, f.size, f.sha256, f.state, f.sender_device_id, ",
            "f.part_size, f.part_count, f.created_at, f.completed_at, f.deleted_at, f.object_key, ",
            "f.upload_id, (SELECT group_concat(s.device_id) FROM file_shares s WHERE s.file_id = f.id), ",
            "EXISTS (SELECT 1 FROM trust_links t WHERE t.device_id = f.sender_device_id AND t.target_device_id = ?), ",
            "f.sealed ",
            "FROM files f ",
            $tail
        )
    };
}

pub(super) fn unsigned(row: &Row, i: usize) -> ApiResult<u64> {
    u64::try_from(rows::int(row, i)?).map_err(|e| ApiError::internal(e.to_string()))
}

pub(super) fn record(row: &Row) -> ApiResult<FileRecord> {
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
        sealed: rows::opt_text(row, 16)?,
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
    sealed: Option<String>,
}

impl FileRecord {
    pub(super) fn view(&self) -> FileView {
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
            sealed: self.sealed.clone(),
        }
    }

    /// Bytes of part `n` (1-based): every part is `part_size` but the last.
    pub(super) fn part_len(&self, n: u64) -> u64 {
        if n == self.part_count {
            self.size - self.part_size * (self.part_count - 1)
        } else {
            self.part_size
        }
    }

    /// The sender reads its own files; another device of the account only if the sender trusts
    /// it and the file was sent to it (or to no device in particular).
    pub(super) fn may_download(&self, device: &str) -> bool {
        device == self.sender_device_id
            || (self.trusted
                && (self.shared_with.is_empty() || self.shared_with.iter().any(|d| d == device)))
    }

    pub(super) fn require_sender(&self, device: &str) -> ApiResult<()> {
        if device == self.sender_device_id {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only the sending device can upload this file",
            ))
        }
    }

    pub(super) fn require_uploading(&self) -> ApiResult<()> {
        if self.state == FileState::Uploading {
            Ok(())
        } else {
            Err(ApiError::conflict(
                "upload_completed",
                "this file's upload is already complete",
            ))
        }
    }

    pub(super) fn require_available(&self) -> ApiResult<()> {
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

impl<P: Ports> Core<P> {
    /// The caller (a registered device) and the account's file `id`, in one round trip.
    pub(super) async fn caller_and_file(
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
    pub(super) async fn caller_and_upload(
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
}

/// The calling device and the one file a `caller_with` read found (else `what` is not found).
pub(super) fn the_one(
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
