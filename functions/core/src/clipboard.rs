//! The shared clipboard. Devices seal each item with the account key before it leaves
//! them; the server keeps and relays ciphertext with its content type and size, never the
//! content. Every query is scoped by the caller's account.

use http::StatusCode;
use serde::Deserialize;
use udc_client::events::{ClipboardItem, ClipboardSync};
use udc_hub::names;
use udc_hub::NewEvent;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::events::{payload, Change, When};
use crate::ports::{Ports, Row, Sql, Stmt};
use crate::web::{json_body, json_body_max, limit_param, Reply};
use crate::{rows, validate, Core, Rq};

pub const CONTENT_TYPES: [&str; 3] = ["text/plain", "text/html", "image/png"];
/// Largest plaintext that travels inline; bigger items go through the files path.
pub const INLINE_MAX: usize = 256 * 1024;
/// What sealing adds: a 24-byte nonce and a 16-byte tag.
pub const SEAL_OVERHEAD: usize = 40;
/// Items up to this much ciphertext ride inside the `clipboard.sync` event; bigger ones are
/// fetched by id, so the event log stays small.
pub const EVENT_INLINE_MAX: usize = 16 * 1024;
pub const DEFAULT_HISTORY: i64 = 20;
pub const MAX_HISTORY: i64 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    content_type: String,
    /// Plaintext bytes.
    size: u64,
    ciphertext: Option<String>,
    file_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefsBody {
    send: Option<bool>,
    receive: Option<bool>,
    history_size: Option<i64>,
}

fn item(row: &Row) -> ApiResult<ClipboardItem> {
    Ok(ClipboardItem {
        id: rows::text(row, 0)?,
        device_id: rows::text(row, 1)?,
        content_type: rows::text(row, 2)?,
        // Stored from a u64 the server checked fits.
        size: rows::int(row, 3)?.max(0) as u64,
        ciphertext: rows::opt_text(row, 4)?,
        file_id: rows::opt_text(row, 5)?,
        created_at: rows::timestamp(rows::int(row, 6)?),
    })
}

/// The one item a caller's read found, or 404.
fn the_item(found: &[Vec<Row>]) -> ApiResult<Reply> {
    let row = found
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| ApiError::not_found("clipboard item"))?;
    Reply::ok(ClipboardSync { item: item(row)? })
}

impl<P: Ports> Core<P> {
    pub(crate) async fn post_clipboard(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                let device = c.device_id.clone().unwrap_or_default();
                vec![
                    Stmt::new(
                        "SELECT send FROM clipboard_prefs WHERE device_id = ?",
                        vec![device.as_str().into()],
                    ),
                    // Who receives: the account's other devices that have not opted out.
                    Stmt::new(
                        "SELECT d.id FROM devices d LEFT JOIN clipboard_prefs p ON p.device_id = d.id \
                         WHERE d.user_id = ? AND d.removed_at IS NULL AND d.id != ? AND COALESCE(p.receive, 1) = 1",
                        vec![c.user_id.as_str().into(), device.as_str().into()],
                    ),
                ]
            })
            .await?;
        let device = caller.device()?.to_owned();
        if found
            .first()
            .and_then(|r| r.first())
            .map(|r| rows::int(r, 0))
            .transpose()?
            == Some(0)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "clipboard_send_disabled",
                "this device does not send its clipboard; turn sending on in its preferences",
            ));
        }
        // Inline items are bigger than the usual small document.
        let body: NewItem = json_body_max(
            rq.headers,
            rq.body,
            (INLINE_MAX + SEAL_OVERHEAD) * 4 / 3 + 4096,
        )?;
        if !CONTENT_TYPES.contains(&body.content_type.as_str()) {
            return Err(ApiError::invalid(format!(
                "content_type: must be one of {}",
                CONTENT_TYPES.join(", ")
            )));
        }
        let size = i64::try_from(body.size)
            .ok()
            .filter(|s| *s as u64 <= self.config.files_max_bytes)
            .ok_or_else(|| ApiError::too_large("size: larger than this server's files may be"))?;
        let file_id = match (&body.ciphertext, &body.file_id) {
            (Some(sealed), None) => {
                if body.size as usize > INLINE_MAX {
                    return Err(ApiError::too_large(format!(
                        "items over {INLINE_MAX} bytes travel as an encrypted file: send file_id"
                    )));
                }
                let len = validate::sealed(
                    "ciphertext",
                    sealed,
                    SEAL_OVERHEAD,
                    INLINE_MAX + SEAL_OVERHEAD,
                )?;
                if len != body.size as usize + SEAL_OVERHEAD {
                    return Err(ApiError::unprocessable(format!(
                        "size: the ciphertext holds {} plaintext bytes, not {}",
                        len.saturating_sub(SEAL_OVERHEAD),
                        body.size
                    )));
                }
                None
            }
            (None, Some(id)) => Some(validate::body_id("file_id", id)?),
            _ => return Err(ApiError::invalid(
                "send exactly one of ciphertext (inline) and file_id (an uploaded encrypted file)",
            )),
        };
        if let Some(file_id) = &file_id {
            let sender = self
                .ports
                .sql()
                .query(Stmt::new(
                    "SELECT sender_device_id FROM files WHERE id = ? AND user_id = ? AND state = 'available' AND deleted_at IS NULL",
                    vec![file_id.as_str().into(), caller.user_id.as_str().into()],
                ))
                .await?;
            match sender.first() {
                Some(row) if rows::text(row, 0)? == device => {}
                Some(_) => return Err(ApiError::forbidden(
                    "file_id: only the device that sent the file can post it as a clipboard item",
                )),
                None => return Err(ApiError::not_found("file")),
            }
        }

        self.insert_clipboard(rq, &caller, &device, &body, size, file_id, &found)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_clipboard(
        &self,
        rq: &Rq<'_>,
        caller: &Caller,
        device: &str,
        body: &NewItem,
        size: i64,
        file_id: Option<String>,
        found: &[Vec<Row>],
    ) -> ApiResult<Reply> {
        let id = self.new_id()?;
        let user = caller.user_id.as_str();
        let item = ClipboardItem {
            id: id.clone(),
            device_id: device.to_owned(),
            content_type: body.content_type.clone(),
            size: body.size,
            ciphertext: body.ciphertext.clone(),
            file_id: file_id.clone(),
            created_at: rows::timestamp(rq.now_ms),
        };
        let mut in_event = item.clone();
        if in_event
            .ciphertext
            .as_ref()
            .is_some_and(|c| c.len() > EVENT_INLINE_MAX)
        {
            in_event.ciphertext = None;
        }
        let targets = found
            .get(1)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|row| rows::text(row, 0))
            .collect::<ApiResult<Vec<String>>>()?;
        let data = payload(&ClipboardSync { item: in_event })?;
        let mut change = Change::new(vec![
                Stmt::new(
                    "INSERT INTO clipboard_items (id, user_id, device_id, content_type, size, ciphertext, file_id, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        id.as_str().into(),
                        user.into(),
                        device.into(),
                        body.content_type.as_str().into(),
                        size.into(),
                        body.ciphertext.clone().into(),
                        file_id.clone().into(),
                        rq.now_ms.into(),
                    ],
                ),
        ]);
        change.event(
            user,
            NewEvent::to_devices(names::CLIPBOARD_SYNC, targets, data),
            When::Always,
        );
        change.push(
                // Keep only the account's newest N.
                Stmt::new(
                    "DELETE FROM clipboard_items WHERE user_id = ? AND id NOT IN \
                     (SELECT id FROM clipboard_items WHERE user_id = ? ORDER BY created_at DESC, rowid DESC \
                      LIMIT COALESCE((SELECT history_size FROM clipboard_accounts WHERE user_id = ?), 20))",
                    vec![user.into(), user.into(), user.into()],
                )
        );
        let done = self.commit(change).await?;
        Ok(Reply::json(StatusCode::CREATED, ClipboardSync { item })?.warn(done.warning))
    }

    pub(crate) async fn latest_clipboard(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, device_id, content_type, size, ciphertext, file_id, created_at FROM clipboard_items \
                     WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    vec![c.user_id.as_str().into()],
                )]
            })
            .await?;
        the_item(&found)
    }

    pub(crate) async fn clipboard_history(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let limit = limit_param(rq.query, MAX_HISTORY, MAX_HISTORY)?;
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![
                    Stmt::new(
                        "SELECT id, device_id, content_type, size, ciphertext, file_id, created_at FROM clipboard_items \
                         WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                        vec![c.user_id.as_str().into(), limit.into()],
                    ),
                    Stmt::new(
                        "SELECT COALESCE((SELECT history_size FROM clipboard_accounts WHERE user_id = ?), 20)",
                        vec![c.user_id.as_str().into()],
                    ),
                ]
            })
            .await?;
        let items = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(item)
            .collect::<ApiResult<Vec<_>>>()?;
        let kept = match found.get(1).and_then(|r| r.first()) {
            Some(row) => rows::int(row, 0)?,
            None => DEFAULT_HISTORY,
        };
        Reply::ok(serde_json::json!({ "items": items, "history_size": kept }))
    }

    pub(crate) async fn clipboard_item(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "clipboard item")?;
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, device_id, content_type, size, ciphertext, file_id, created_at FROM clipboard_items \
                     WHERE id = ? AND user_id = ?",
                    vec![id.as_str().into(), c.user_id.as_str().into()],
                )]
            })
            .await?;
        the_item(&found)
    }

    pub(crate) async fn delete_clipboard_item(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "clipboard item")?;
        let caller = self.caller(rq).await?;
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "DELETE FROM clipboard_items WHERE id = ? AND user_id = ?",
                vec![id.as_str().into(), caller.user_id.as_str().into()],
            )])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::not_found("clipboard item"));
        }
        Reply::no_content()
    }

    pub(crate) async fn clear_clipboard(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let cleared = NewEvent::to_all(
            names::CLIPBOARD_CLEARED,
            serde_json::json!({ "device_id": caller.device_id }),
        );
        let done = self
            .commit(
                Change::new(vec![Stmt::new(
                    "DELETE FROM clipboard_items WHERE user_id = ?",
                    vec![caller.user_id.as_str().into()],
                )])
                .with_event(&caller.user_id, cleared, When::Counting("deleted")),
            )
            .await?;
        Ok(Reply::no_content()?.warn(done.warning))
    }

    pub(crate) async fn clipboard_prefs(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let device = caller.device()?.to_owned();
        if *rq.method == http::Method::PUT {
            let body: PrefsBody = json_body(rq.headers, rq.body)?;
            if body.send.is_none() && body.receive.is_none() && body.history_size.is_none() {
                return Err(ApiError::invalid("send one of send, receive, history_size"));
            }
            let mut stmts = Vec::new();
            if body.send.is_some() || body.receive.is_some() {
                let flag = |v: Option<bool>| -> crate::ports::Value { v.map(i64::from).into() };
                stmts.push(Stmt::new(
                    "INSERT INTO clipboard_prefs (device_id, user_id, send, receive, updated_at) \
                     VALUES (?, ?, COALESCE(?, 1), COALESCE(?, 1), ?) \
                     ON CONFLICT(device_id) DO UPDATE SET send = COALESCE(?, send), receive = COALESCE(?, receive), \
                     updated_at = excluded.updated_at",
                    vec![
                        device.as_str().into(),
                        caller.user_id.as_str().into(),
                        flag(body.send),
                        flag(body.receive),
                        rq.now_ms.into(),
                        flag(body.send),
                        flag(body.receive),
                    ],
                ));
            }
            if let Some(n) = body.history_size {
                if !(1..=MAX_HISTORY).contains(&n) {
                    return Err(ApiError::invalid(format!(
                        "history_size: must be 1 to {MAX_HISTORY}"
                    )));
                }
                let user = caller.user_id.as_str();
                stmts.push(Stmt::new(
                    "INSERT INTO clipboard_accounts (user_id, history_size, updated_at) VALUES (?, ?, ?) \
                     ON CONFLICT(user_id) DO UPDATE SET history_size = excluded.history_size, updated_at = excluded.updated_at",
                    vec![user.into(), n.into(), rq.now_ms.into()],
                ));
                stmts.push(Stmt::new(
                    "DELETE FROM clipboard_items WHERE user_id = ? AND id NOT IN \
                     (SELECT id FROM clipboard_items WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                    vec![user.into(), user.into(), n.into()],
                ));
            }
            self.ports.sql().batch(stmts).await?;
        }
        let found = self
            .ports
            .sql()
            .query_many(vec![
                Stmt::new(
                    "SELECT send, receive FROM clipboard_prefs WHERE device_id = ?",
                    vec![device.as_str().into()],
                ),
                Stmt::new(
                    "SELECT COALESCE((SELECT history_size FROM clipboard_accounts WHERE user_id = ?), 20)",
                    vec![caller.user_id.as_str().into()],
                ),
            ])
            .await?;
        let (send, receive) = match found.first().and_then(|r| r.first()) {
            Some(row) => (rows::int(row, 0)? != 0, rows::int(row, 1)? != 0),
            None => (true, true),
        };
        let history_size = match found.get(1).and_then(|r| r.first()) {
            Some(row) => rows::int(row, 0)?,
            None => DEFAULT_HISTORY,
        };
        Reply::ok(serde_json::json!({
            "device_id": device,
            "send": send,
            "receive": receive,
            "history_size": history_size,
        }))
    }
}
