//! Handoff: a device saves a small sealed snapshot of what it is doing under a key; another
//! device of the account lists and takes it, and the first is told. One snapshot per key per
//! account (the latest save wins); snapshots last a day.

use serde::Deserialize;
use udc_hub::names;
use udc_hub::NewEvent;

use crate::clipboard::{CONTENT_TYPES, SEAL_OVERHEAD};
use crate::error::{ApiError, ApiResult};
use crate::events::{Change, When};
use crate::ports::{Ports, Row, Sql, Stmt};
use crate::web::{json_body, Reply};
use crate::{rows, validate, Core, Rq};

pub const MAX_SNAPSHOT_BYTES: usize = 32 * 1024;
pub const KEEP_MS: i64 = 24 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    content_type: String,
    ciphertext: String,
}

fn view(row: &Row) -> ApiResult<serde_json::Value> {
    Ok(serde_json::json!({
        "key": rows::text(row, 0)?,
        "device_id": rows::text(row, 1)?,
        "content_type": rows::text(row, 2)?,
        "size": rows::int(row, 3)?,
        "ciphertext": rows::text(row, 4)?,
        "created_at": rows::timestamp(rows::int(row, 5)?),
    }))
}

impl<P: Ports> Core<P> {
    pub(crate) async fn save_handoff(&self, rq: &Rq<'_>, key: &str) -> ApiResult<Reply> {
        let key = validate::token("key", key, 64)?;
        let caller = self.caller(rq).await?;
        let device = caller.device()?.to_owned();
        let body: SaveBody = json_body(rq.headers, rq.body)?;
        if !CONTENT_TYPES.contains(&body.content_type.as_str())
            && body.content_type != "application/json"
        {
            return Err(ApiError::invalid(
                "content_type: must be application/json, text/plain, text/html or image/png",
            ));
        }
        let len = validate::sealed(
            "ciphertext",
            &body.ciphertext,
            SEAL_OVERHEAD,
            MAX_SNAPSHOT_BYTES + SEAL_OVERHEAD,
        )?;
        let size = (len - SEAL_OVERHEAD) as i64;
        let available = NewEvent::to_all(
            names::HANDOFF_AVAILABLE,
            serde_json::json!({ "key": key, "device_id": device }),
        );
        let done = self
            .commit(Change::new(vec![Stmt::new(
                "INSERT INTO handoffs (user_id, key, device_id, content_type, size, ciphertext, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, key) DO UPDATE SET device_id = excluded.device_id, \
                 content_type = excluded.content_type, size = excluded.size, ciphertext = excluded.ciphertext, \
                 created_at = excluded.created_at",
                vec![
                    caller.user_id.as_str().into(),
                    key.as_str().into(),
                    device.as_str().into(),
                    body.content_type.as_str().into(),
                    size.into(),
                    body.ciphertext.as_str().into(),
                    rq.now_ms.into(),
                ],
            )])
            .with_event(&caller.user_id, available, When::Always))
            .await?;
        Ok(Reply::ok(serde_json::json!({
            "handoff": {
                "key": key,
                "device_id": device,
                "content_type": body.content_type,
                "size": size,
                "ciphertext": body.ciphertext,
                "created_at": rows::timestamp(rq.now_ms),
            }
        }))?
        .warn(done.warning))
    }

    pub(crate) async fn list_handoffs(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT key, device_id, content_type, size, ciphertext, created_at FROM handoffs \
                     WHERE user_id = ? AND created_at > ? ORDER BY created_at DESC",
                    vec![c.user_id.as_str().into(), (rq.now_ms - KEEP_MS).into()],
                )]
            })
            .await?;
        let list = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(view)
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({ "handoffs": list }))
    }

    /// Takes a snapshot: it is answered to this device once and gone for the others.
    pub(crate) async fn take_handoff(&self, rq: &Rq<'_>, key: &str) -> ApiResult<Reply> {
        let key = validate::token("key", key, 64).map_err(|_| ApiError::not_found("handoff"))?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT key, device_id, content_type, size, ciphertext, created_at FROM handoffs \
                     WHERE user_id = ? AND key = ? AND created_at > ?",
                    vec![c.user_id.as_str().into(), key.as_str().into(), (rq.now_ms - KEEP_MS).into()],
                )]
            })
            .await?;
        let taker = caller.device()?.to_owned();
        let row = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("handoff"))?;
        let origin = rows::text(row, 1)?;
        let taken = NewEvent::to_devices(
            names::HANDOFF_TAKEN,
            vec![origin.clone()],
            serde_json::json!({ "key": key, "by_device_id": taker }),
        );
        // Only the snapshot read is taken: a newer save under the same key stays.
        let done = self
            .commit(Change::new(vec![Stmt::new(
                "DELETE FROM handoffs WHERE user_id = ? AND key = ? AND device_id = ? AND created_at = ?",
                vec![
                    caller.user_id.as_str().into(),
                    key.as_str().into(),
                    origin.as_str().into(),
                    rows::int(row, 5)?.into(),
                ],
            )])
            .with_event(&caller.user_id, taken, When::Changed))
            .await?;
        if !done.one(0) {
            return Err(ApiError::not_found("handoff"));
        }
        Ok(Reply::ok(serde_json::json!({ "handoff": view(row)? }))?.warn(done.warning))
    }

    pub(crate) async fn delete_handoff(&self, rq: &Rq<'_>, key: &str) -> ApiResult<Reply> {
        let key = validate::token("key", key, 64).map_err(|_| ApiError::not_found("handoff"))?;
        let caller = self.caller(rq).await?;
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "DELETE FROM handoffs WHERE user_id = ? AND key = ?",
                vec![caller.user_id.as_str().into(), key.as_str().into()],
            )])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::not_found("handoff"));
        }
        Reply::no_content()
    }
}
