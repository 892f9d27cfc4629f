//! The account itself. Its sessions: every one that can still be used, with its device, client,
//! address and times; ending one, or every other. Ending a session is what logging out does,
//! from elsewhere: its tokens stop working at once and its sockets close (4001). Ending another
//! session than one's own needs standing (`devices::standing_stmt`), so a device nobody vouches
//! for cannot sign the owner out of the devices that could. What takes the password again
//! (`with_password`): keeping a wrapped account key, changing the password (the same key
//! wrapped anew, a new recovery code, the other sessions ended), and deleting the account: it
//! ends at once, then everything it left is erased.

use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use udc_client::wire::{AccountSession, Recovery};

use crate::activity::{Actor, Entry, If, Kind};
use crate::auth::{decode_auth_key, validate_kdf, wrapped_key, Caller, KdfParams, AUTH_KEY_BYTES};
use crate::devices::{has_standing, no_standing, standing_stmt};
use crate::error::{ApiError, ApiResult};
use crate::ports::{Hub, Ports, Row, Sql, Stmt};
use crate::throttle::Keys;
use crate::web::{json_body, Reply};
use crate::{directory, rows, validate, Core, Rq};

/// What a new password ended: the other sessions, every passkey.
pub(crate) struct PasswordSet {
    pub ended: u64,
    pub passkeys_removed: u64,
    pub warning: Option<String>,
}

/// A request that proves the password again (`Core::with_password`).
pub(crate) trait Proof: DeserializeOwned {
    /// The password's proof, as at sign-in.
    fn auth_key(&self) -> &str;
    /// The rest of the body, checked before the proof is (a malformed request is no guess).
    fn check(&self) -> ApiResult<()> {
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    auth_key: String,
}

impl Proof for DeleteBody {
    fn auth_key(&self) -> &str {
        &self.auth_key
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    auth_key: String,
    wrapped_key: String,
}

impl Proof for KeyBody {
    fn auth_key(&self) -> &str {
        &self.auth_key
    }
    fn check(&self) -> ApiResult<()> {
        wrapped_key(&self.wrapped_key, "wrapped_key").map(drop)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    /// The current password's proof.
    auth_key: String,
    /// The new password's: its `auth_key`, its KDF parameters (a fresh salt), and the same
    /// account key wrapped by its `enc_key`.
    new_auth_key: String,
    kdf: KdfParams,
    wrapped_key: String,
    /// A new recovery code: the last one stops working with the password it was made under.
    recovery: Recovery,
}

impl Proof for PasswordBody {
    fn auth_key(&self) -> &str {
        &self.auth_key
    }
    fn check(&self) -> ApiResult<()> {
        self.new_password().check()
    }
}

impl PasswordBody {
    fn new_password(&self) -> NewPassword<'_> {
        NewPassword {
            auth_key: &self.new_auth_key,
            kdf: &self.kdf,
            wrapped_key: &self.wrapped_key,
            recovery: &self.recovery,
        }
    }
}

/// A new password as a client sends it, to change or reset one: its proof, its KDF parameters
/// (a fresh salt), and the account key wrapped by its `enc_key`.
/// With it a new recovery code: whoever knew the old password could have made the last one.
pub(crate) struct NewPassword<'a> {
    pub auth_key: &'a str,
    pub kdf: &'a KdfParams,
    pub wrapped_key: &'a str,
    pub recovery: &'a Recovery,
}

impl NewPassword<'_> {
    pub(crate) fn check(&self) -> ApiResult<()> {
        decode_auth_key(self.auth_key).map_err(|_| {
            ApiError::invalid(format!(
                "new_auth_key: must be {AUTH_KEY_BYTES} bytes, base64"
            ))
        })?;
        validate_kdf(self.kdf)?;
        wrapped_key(self.wrapped_key, "wrapped_key")?;
        crate::recovery::check(self.recovery)
    }
}

/// What a new password is set on: the account still has the proof that was checked (a
/// change made meanwhile wins), the current password's or the recovery code's (hashes, hex).
pub(crate) enum Unchanged {
    Password(String),
    Recovery(String),
}

impl Unchanged {
    fn hash(&self) -> &str {
        match self {
            Unchanged::Password(h) | Unchanged::Recovery(h) => h,
        }
    }
}

const SET_PASSWORD_IF_PASSWORD: &str = "UPDATE users SET kdf_algorithm = ?, kdf_memory_kib = ?, \
    kdf_iterations = ?, kdf_parallelism = ?, kdf_salt = ?, auth_hash = ?, wrapped_key = ?, \
    recovery_hash = ?, recovery_wrapped_key = ?, recovery_set_at = ?, updated_at = ? \
    WHERE id = ? AND deleted_at IS NULL AND auth_hash = ?";
const SET_PASSWORD_IF_RECOVERY: &str = "UPDATE users SET kdf_algorithm = ?, kdf_memory_kib = ?, \
    kdf_iterations = ?, kdf_parallelism = ?, kdf_salt = ?, auth_hash = ?, wrapped_key = ?, \
    recovery_hash = ?, recovery_wrapped_key = ?, recovery_set_at = ?, updated_at = ? \
    WHERE id = ? AND deleted_at IS NULL AND recovery_hash = ?";

/// The caller, once the password's proof matched (its failed guesses taken back).
pub(crate) struct Proven {
    pub caller: Caller,
    /// The stored hash the proof matched (hex): a change made on it is guarded on it, so a
    /// password changed meanwhile wins.
    pub auth_hash: String,
}

/// Every row a deleted account left but its tombstone, children before what they refer to (its
/// files' rows go with their objects, `erase_files`); the parameter of each is the account's id.
const ERASE_ROWS: [&str; 24] = [
    "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?)",
    "DELETE FROM clipboard_items WHERE user_id = ?",
    "DELETE FROM clipboard_prefs WHERE user_id = ?",
    "DELETE FROM clipboard_accounts WHERE user_id = ?",
    "DELETE FROM sync_counters WHERE user_id = ?",
    "DELETE FROM settings_docs WHERE user_id = ?",
    "DELETE FROM settings_policies WHERE user_id = ?",
    "DELETE FROM settings_conflicts WHERE user_id = ?",
    "DELETE FROM settings_resolutions WHERE user_id = ?",
    "DELETE FROM pending_logins WHERE user_id = ?",
    "DELETE FROM handoffs WHERE user_id = ?",
    "DELETE FROM account_activity WHERE user_id = ?",
    "DELETE FROM remote_sessions WHERE user_id = ?",
    "DELETE FROM idempotency_keys WHERE user_id = ?",
    "DELETE FROM login_cookies WHERE user_id = ?",
    "DELETE FROM passkeys WHERE user_id = ?",
    "DELETE FROM trust_links WHERE user_id = ?",
    "DELETE FROM sessions WHERE user_id = ?",
    "DELETE FROM devices WHERE user_id = ?",
    // The hub's, where its log shares this database (elsewhere these hold nothing).
    "DELETE FROM hub_events WHERE user_id = ?",
    "DELETE FROM hub_seq WHERE user_id = ?",
    "DELETE FROM hub_presence WHERE user_id = ?",
    "DELETE FROM hub_outbox WHERE user_id = ?",
    "DELETE FROM event_outbox WHERE user_id = ?",
];

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
        let changed = sql
            .batch(vec![Stmt::new(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'signed_out_elsewhere' \
                 WHERE user_id = ? AND revoked_at IS NULL AND id != ?",
                vec![now.into(), user.into(), caller.session_id.as_str().into()],
            )])
            .await?;
        let warning = self.close_ended(user, now, "signed_out_elsewhere").await?;
        let count = changed.first().copied().unwrap_or(0);
        Ok(Reply::ok(serde_json::json!({ "ended": count }))?.warn(warning))
    }

    /// Closes the sockets of the sessions a request ended at `now` for `reason` (read after
    /// the change, so none ended escapes; another request ending the same at the same
    /// millisecond closes them twice). A failure is the answer's warning.
    async fn close_ended(&self, user: &str, now: i64, reason: &str) -> ApiResult<Option<String>> {
        let ended = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT id FROM sessions WHERE user_id = ? AND revoked_at = ? AND revoked_reason = ?",
                vec![user.into(), now.into(), reason.into()],
            ))
            .await?;
        let mut warning = None;
        for row in &ended {
            if let Err(e) = self.end_sockets(user, &rows::text(row, 0)?).await {
                warning = Some(e);
            }
        }
        Ok(warning)
    }

    /// The caller and its request, once the body is well formed and its password proof is
    /// the account's. A wrong proof is a guess through a session (perhaps a stolen one): it
    /// counts against the email's sign-ins (429 as there) and answers 403 `wrong_password`,
    /// saying `nothing` happened.
    pub(crate) async fn with_password<B: Proof>(
        &self,
        rq: &Rq<'_>,
        nothing: &str,
    ) -> ApiResult<(Proven, B)> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT email, auth_hash FROM users WHERE id = ? AND deleted_at IS NULL",
                    vec![c.user_id.as_str().into()],
                )]
            })
            .await?;
        let body: B = json_body(rq.headers, rq.body)?;
        body.check()?;
        let auth_key = decode_auth_key(body.auth_key())?;
        let row = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("account"))?;
        let keys = Keys::new(&rows::text(row, 0)?, rq.client_ip.as_deref());
        keys.admit(self.ports.directory(), rq.now_ms).await?;
        let auth_hash = rows::text(row, 1)?;
        let stored = hex::decode(&auth_hash).unwrap_or_default();
        let matches: bool = self.auth_hash(&auth_key)?.ct_eq(stored.as_slice()).into();
        if !matches {
            // The owner's activity shows a guess made through one of its sessions.
            self.ports
                .sql()
                .batch(vec![Entry::new(Kind::SignInFailed)
                    .with(serde_json::json!({ "method": "session_password" }))
                    .stmt(rq, &caller.user_id, Actor::from(&caller), If::Always)])
                .await?;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                format!("the password is not this account's: {nothing}"),
            ));
        }
        keys.succeed(self.ports.directory()).await?;
        Ok((Proven { caller, auth_hash }, body))
    }

    /// `PUT /account/key`: an account made before account keys gets its key wrapped, once (its
    /// key is the password's `enc_key`; the client wraps that). 409 when one is kept already:
    /// a key is never replaced but by a password change.
    pub(crate) async fn keep_wrapped_key(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (Proven { caller, auth_hash }, body) = self
            .with_password::<KeyBody>(rq, "nothing was changed")
            .await?;
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE users SET wrapped_key = ?, updated_at = ? \
                 WHERE id = ? AND wrapped_key IS NULL AND deleted_at IS NULL AND auth_hash = ?",
                vec![
                    body.wrapped_key.as_str().into(),
                    rq.now_ms.into(),
                    caller.user_id.as_str().into(),
                    auth_hash.into(),
                ],
            )])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::conflict(
                "key_exists",
                "the account already keeps a wrapped key: only a password change replaces it",
            ));
        }
        Reply::no_content()
    }

    /// `POST /account/password`: with the current password's proof, the account takes the new
    /// password's proof, KDF parameters and wrapped key (the same account key: nothing sealed
    /// is re-encrypted), and every other session ends (tokens at once, sockets 4001). The
    /// password itself and the unwrapped key never reach the server.
    pub(crate) async fn change_password(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (Proven { caller, auth_hash }, body) = self
            .with_password::<PasswordBody>(rq, "nothing was changed")
            .await?;
        let user = caller.user_id.as_str();
        let set = self
            .set_password(
                rq,
                user,
                &body.new_password(),
                Unchanged::Password(auth_hash),
                Actor::from(&caller),
            )
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "password_changed",
                    "the password was changed meanwhile: nothing was changed, sign in again",
                )
            })?;
        Ok(Reply::ok(serde_json::json!({
            "ended": set.ended,
            "passkeys_removed": set.passkeys_removed,
        }))?
        .warn(set.warning))
    }

    /// Gives `user` a new password when `only_if` still holds, in one batch: its
    /// KDF parameters, its proof's hash, the wrapped key and a new recovery code, an activity
    /// entry by `by`; every session but `by`'s ends (tokens at once, then sockets) and sign-ins
    /// approved but not collected are denied. `None` when the condition no longer held
    /// (nothing changed); else how many sessions ended, and a warning if some socket could not
    /// be closed.
    pub(crate) async fn set_password(
        &self,
        rq: &Rq<'_>,
        user: &str,
        new: &NewPassword<'_>,
        only_if: Unchanged,
        by: Actor<'_>,
    ) -> ApiResult<Option<PasswordSet>> {
        // A change keeps the session that made it; a reset (no session) keeps none.
        let keep = by.session_id;
        let now = rq.now_ms;
        let new_hash = hex::encode(self.auth_hash(&decode_auth_key(new.auth_key)?)?);
        let (recovery_hash, recovery_wrapped) = self.recovery_values(new.recovery)?;
        let kdf = new.kdf;
        let (reason, kind) = if keep.is_some() {
            ("password_changed", Kind::PasswordChanged)
        } else {
            ("password_reset", Kind::PasswordReset)
        };
        let changes = self
            .ports
            .sql()
            .batch(
                [

                        Stmt::new(
                            match only_if {
                                Unchanged::Password(_) => SET_PASSWORD_IF_PASSWORD,
                                Unchanged::Recovery(_) => SET_PASSWORD_IF_RECOVERY,
                            },
                            vec![
                                kdf.algorithm.as_str().into(),
                                i64::from(kdf.memory_kib).into(),
                                i64::from(kdf.iterations).into(),
                                i64::from(kdf.parallelism).into(),
                                kdf.salt.as_str().into(),
                                new_hash.as_str().into(),
                                new.wrapped_key.into(),
                                recovery_hash.into(),
                                recovery_wrapped.into(),
                                now.into(),
                                now.into(),
                                user.into(),
                                only_if.hash().into(),
                            ],
                        ),
                        Entry::new(kind).stmt(rq, user, by, If::Changed),
                        // Only when the change above took effect.
                        Stmt::new(
                            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? \
                             WHERE user_id = ? AND revoked_at IS NULL AND id != coalesce(?, '') \
                             AND EXISTS (SELECT 1 FROM users WHERE id = ? AND updated_at = ? AND auth_hash = ?)",
                            vec![
                                now.into(),
                                reason.into(),
                                user.into(),
                                keep.into(),
                                user.into(),
                                now.into(),
                                new_hash.as_str().into(),
                            ],
                        ),
                        // A sign-in approved and not yet collected must not start a session.
                        Stmt::new(
                            "UPDATE pending_logins SET state = 'denied', sealed_key = NULL \
                             WHERE user_id = ? AND state IN ('pending', 'approved') \
                             AND EXISTS (SELECT 1 FROM users WHERE id = ? AND updated_at = ? AND auth_hash = ?)",
                            vec![
                                user.into(),
                                user.into(),
                                now.into(),
                                new_hash.as_str().into(),
                            ],
                        ),
                        // Passkeys go too: one added by whoever knew the old password would
                        // still unwrap the same account key.
                        Stmt::new(
                            "DELETE FROM passkeys WHERE user_id = ? \
                             AND EXISTS (SELECT 1 FROM users WHERE id = ? AND updated_at = ? AND auth_hash = ?)",
                            vec![
                                user.into(),
                                user.into(),
                                now.into(),
                                new_hash.as_str().into(),
                            ],
                        ),
                ]
                .into(),
            )
            .await?;
        if changes.first() != Some(&1) {
            return Ok(None);
        }
        let warning = self.close_ended(user, now, reason).await?;
        Ok(Some(PasswordSet {
            ended: changes.get(2).copied().unwrap_or(0),
            passkeys_removed: changes.get(4).copied().unwrap_or(0),
            warning,
        }))
    }

    /// `DELETE /account`: with the password's proof, the account ends at once — every session
    /// (so every token and socket), its email free to register again — and then its sockets,
    /// log, stored files and rows are erased. 204 when all is gone; 202 with what remains
    /// when the store or the hub failed, which the scheduled run finishes.
    pub(crate) async fn delete_account(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (Proven { caller, auth_hash }, _) = self
            .with_password::<DeleteBody>(rq, "nothing was deleted")
            .await?;
        let sql = self.ports.sql();
        let user = caller.user_id.as_str();
        let now = rq.now_ms;
        let ended = sql
            .batch(
                [
                        Stmt::new(
                            "UPDATE users SET deleted_at = ?, email = 'deleted:' || id, auth_hash = '', wrapped_key = NULL, \
                             recovery_hash = NULL, recovery_wrapped_key = NULL \
                             WHERE id = ? AND deleted_at IS NULL AND auth_hash = ?",
                            vec![now.into(), user.into(), auth_hash.into()],
                        ),
                        Stmt::new(
                            "UPDATE sessions SET revoked_at = ?, revoked_reason = 'account_deleted' \
                             WHERE user_id = ? AND revoked_at IS NULL",
                            vec![now.into(), user.into()],
                        ),
                        // A sign-in approved and not yet collected must not start a session.
                        Stmt::new(
                            "UPDATE pending_logins SET state = 'denied', sealed_key = NULL \
                             WHERE user_id = ? AND state IN ('pending', 'approved')",
                            vec![user.into()],
                        ),
                ]
                .into(),
            )
            .await?;
        // Deleted meanwhile by another request.
        if ended.first() != Some(&1) {
            return Err(ApiError::not_found("account"));
        }
        // The email is free at once (its row renamed above); erasing the rest may take longer.
        // Should this fail, the erasure below (or the scheduled run's) frees it.
        let _ = directory::release(self.ports.directory(), user).await;
        match self.erase_account(user).await {
            Ok(()) => Reply::no_content(),
            Err(left) => Ok(Reply::json(
                StatusCode::ACCEPTED,
                serde_json::json!({ "erased": false, "remaining": left.what }),
            )?
            .warn(Some(left.why))),
        }
    }

    /// Erases what a deleted account left: its stored files (objects, then rows), every other
    /// row, the hub's sockets and log, and last its tombstone. Rows go before the hub, so nothing
    /// of the account is left to send it once it has forgotten the account. Each step can run
    /// again: the scheduled run repeats this for an account whose erasure stopped part-way (its
    /// tombstone stays until the last step).
    pub(crate) async fn erase_account(&self, user: &str) -> Result<(), Unerased> {
        let left = |what: &'static str| move |why: String| Unerased { what, why };
        self.erase_files(user)
            .await
            .map_err(|e| left("stored files")(e.internal.unwrap_or(e.message)))?;
        let sql = self.ports.sql();
        sql.batch(
            ERASE_ROWS
                .iter()
                .map(|stmt| Stmt::new(stmt, vec![user.into()]))
                .collect(),
        )
        .await
        .map_err(|e| left("records")(e.to_string()))?;
        self.ports
            .hub()
            .forget_account(user)
            .await
            .map_err(|e| left("connections and events")(e.to_string()))?;
        directory::release(self.ports.directory(), user)
            .await
            .map_err(|e| left("records")(e.internal.unwrap_or(e.message)))?;
        sql.batch(vec![Stmt::new(
            // Only a tombstone: a live account is never erased by a stray run.
            "DELETE FROM users WHERE id = ? AND deleted_at IS NOT NULL",
            vec![user.into()],
        )])
        .await
        .map_err(|e| left("records")(e.to_string()))?;
        Ok(())
    }
}

/// What a deleted account's erasure could not finish yet: `what` for the owner (the answer),
/// `why` for the operator (the host's log, never the answer).
pub(crate) struct Unerased {
    pub what: &'static str,
    pub why: String,
}
