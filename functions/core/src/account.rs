//! The owner's view of where the account is signed in: every session that can still be used,
//! with its device, client, address and times; ending one, or every other. Ending a session is
//! what logging out does, from elsewhere: its tokens stop working at once and its sockets close
//! (4001). Ending another session than one's own needs standing (`devices::standing_stmt`), so
//! a device nobody vouches for cannot sign the owner out of the devices that could.

use udc_client::wire::AccountSession;

use crate::devices::{has_standing, no_standing, standing_stmt};
use crate::error::{ApiError, ApiResult};
use crate::ports::{Ports, Row, Sql, Stmt};
use crate::web::Reply;
use crate::{rows, validate, Core, Rq};

/// At most this many sessions are listed, the most recently used first.
const LIST_MAX: i64 = 200;

fn view(row: &Row, current: &str) -> ApiResult<AccountSession> {
    let id = rows::text(row, 0)?;
    let created = rows::int(row, 5)?;
    Ok(AccountSession {
        is_current: id == current,
        id,
        device_id: rows::opt_text(row, 1)?,
        device_name: rows::opt_text(row, 2)?,
        client: rows::opt_text(row, 3)?,
        client_ip: rows::opt_text(row, 4)?,
        created_at: rows::timestamp(created),
        last_used_at: rows::timestamp(rows::opt_int(row, 6)?.unwrap_or(created)),
    })
}

impl<P: Ports> Core<P> {
    /// `GET /account/sessions`: the sessions that can still be used (live, their device not
    /// removed, an unspent refresh token left).
    pub(crate) async fn list_sessions(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let now = rq.now_ms;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT s.id, s.device_id, d.name, s.client, s.client_ip, s.created_at, s.last_used_at \
                     FROM sessions s LEFT JOIN devices d ON d.id = s.device_id \
                     WHERE s.user_id = ? AND s.revoked_at IS NULL AND d.removed_at IS NULL \
                     AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id \
                                 AND t.used_at IS NULL AND t.expires_at > ?) \
                     ORDER BY coalesce(s.last_used_at, s.created_at) DESC, s.id LIMIT ?",
                    vec![c.user_id.as_str().into(), now.into(), LIST_MAX.into()],
                )]
            })
            .await?;
        let sessions = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| view(r, &caller.session_id))
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({ "sessions": sessions }))
    }

    /// `DELETE /account/sessions/{id}`: ends one session of the account.
    pub(crate) async fn end_session(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (caller, found) = self.caller_with(rq, |c| vec![standing_stmt(c)]).await?;
        let id = validate::id(id, "session")?;
        if id != caller.session_id && !has_standing(&caller, found.first())? {
            return Err(no_standing("ending another session"));
        }
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'signed_out' \
                 WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                vec![
                    rq.now_ms.into(),
                    id.as_str().into(),
                    caller.user_id.as_str().into(),
                ],
            )])
            .await?;
        // Another account's session, or one already over: the same answer.
        if changes.first() != Some(&1) {
            return Err(ApiError::not_found("session"));
        }
        let closed = self.end_sockets(&caller.user_id, &id).await.err();
        Ok(Reply::no_content()?.warn(closed))
    }

    /// `DELETE /account/sessions`: ends every session of the account but the caller's.
    pub(crate) async fn end_other_sessions(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (caller, found) = self.caller_with(rq, |c| vec![standing_stmt(c)]).await?;
        if !has_standing(&caller, found.first())? {
            return Err(no_standing("signing out everywhere else"));
        }
        let user = caller.user_id.as_str();
        let now = rq.now_ms;
        let sql = self.ports.sql();
        sql.batch(vec![Stmt::new(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = 'signed_out_elsewhere' \
             WHERE user_id = ? AND revoked_at IS NULL AND id != ?",
            vec![now.into(), user.into(), caller.session_id.as_str().into()],
        )])
        .await?;
        // The sessions this request ended (read after, so none ended escapes its sockets'
        // closing; another request ending the same at the same millisecond closes them twice).
        let ended = sql
            .query(Stmt::new(
                "SELECT id FROM sessions WHERE user_id = ? AND revoked_at = ? \
                 AND revoked_reason = 'signed_out_elsewhere'",
                vec![user.into(), now.into()],
            ))
            .await?;
        let mut warning = None;
        for row in &ended {
            if let Err(e) = self.end_sockets(user, &rows::text(row, 0)?).await {
                warning = Some(e);
            }
        }
        Ok(Reply::ok(serde_json::json!({ "ended": ended.len() }))?.warn(warning))
    }
}
