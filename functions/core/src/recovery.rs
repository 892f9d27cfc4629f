//! The recovery code (`udc_client::recovery`): the server keeps its proof as a keyed hash and
//! the account key wrapped by the code's key, never the code. With the code a person who lost
//! the password takes the wrapped key back (`POST /auth/recovery`), unwraps it on their device
//! and sets a new password wrapping the same key (`POST /auth/recovery/reset`): every session
//! ends, the data stays, and a new code replaces the one used (so does a password change:
//! whoever knew the old password could have made the last code). A wrong code counts as a
//! failed sign-in for the email and the address. And the account as its owner sees it
//! (`GET /account`): whether it has a code, since when.

use serde::Deserialize;
use subtle::ConstantTimeEq;
use udc_client::wire::Recovery;

use crate::account::{NewPassword, Proof, Proven, Unchanged};
use crate::activity::{failed_sign_in, Actor, Entry, If, Kind};
use crate::auth::{decode_auth_key, wrapped_key, KdfParams, UserView};
use crate::crypto::hmac_sha256;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Ports, Sql, Stmt};
use crate::throttle::Keys;
use crate::web::{json_body, Reply};
use crate::{rows, validate, Core, Rq};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    /// The password's proof.
    auth_key: String,
    recovery: Recovery,
}

impl Proof for SetBody {
    fn auth_key(&self) -> &str {
        &self.auth_key
    }
    fn check(&self) -> ApiResult<()> {
        check(&self.recovery)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    email: String,
    /// The recovery code's proof.
    recovery_auth_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    email: String,
    recovery_auth_key: String,
    new_auth_key: String,
    kdf: KdfParams,
    wrapped_key: String,
    /// A new code: the one used may have been seen by whoever had it.
    recovery: Recovery,
}

/// A recovery as a client sends it, checked field by field.
pub(crate) fn check(recovery: &Recovery) -> ApiResult<()> {
    decode_auth_key(&recovery.auth_key)
        .map_err(|_| ApiError::invalid("recovery.auth_key: must be 32 bytes, base64"))?;
    wrapped_key(&recovery.wrapped_key, "recovery.wrapped_key").map(drop)
}

/// The account a recovery proof is the code of.
struct Recovered {
    user_id: String,
    /// The account key wrapped by the code's key.
    wrapped_key: String,
    /// The proof's hash (hex), for a change guarded on it.
    hash: String,
}

/// The one answer to an unknown email, a wrong code and an account without a code.
fn refused() -> ApiError {
    ApiError::unauthorized(
        "invalid_recovery_code",
        "email or recovery code is incorrect",
    )
}

impl<P: Ports> Core<P> {
    /// HMAC(pepper, proof) under its own label: a recovery proof never passes for a password's.
    pub(crate) fn recovery_hash(&self, proof: &[u8]) -> ApiResult<String> {
        Ok(hex::encode(hmac_sha256(
            &self.config.pepper,
            &[b"udc recovery v1\0", proof],
        )?))
    }

    /// The columns a recovery sets (`recovery_hash`, `recovery_wrapped_key`), as values.
    pub(crate) fn recovery_values(&self, recovery: &Recovery) -> ApiResult<(String, String)> {
        check(recovery)?;
        Ok((
            self.recovery_hash(&decode_auth_key(&recovery.auth_key)?)?,
            recovery.wrapped_key.clone(),
        ))
    }

    /// `GET /account`: the account, and since when its recovery code is the one it has (null:
    /// it has none, so a lost password loses the data).
    pub(crate) async fn get_account(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, email, created_at, recovery_set_at FROM users \
                     WHERE id = ? AND deleted_at IS NULL",
                    vec![c.user_id.as_str().into()],
                )]
            })
            .await?;
        let row = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("account"))?;
        Reply::ok(serde_json::json!({
            "user": UserView {
                id: rows::text(row, 0)?,
                email: rows::text(row, 1)?,
                created_at: rows::timestamp(rows::int(row, 2)?),
            },
            "recovery_set_at": rows::opt_int(row, 3)?.map(rows::timestamp),
        }))
    }

    /// `PUT /account/recovery`: a new recovery code for the account (the last one stops
    /// working), with the password's proof.
    pub(crate) async fn set_recovery(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (Proven { caller, auth_hash }, body) = self
            .with_password::<SetBody>(rq, "nothing was changed")
            .await?;
        let (hash, wrapped) = self.recovery_values(&body.recovery)?;
        let changes = self
            .ports
            .sql()
            .batch(
                [
                        Stmt::new(
                            // Only under the password proven: one changed meanwhile wins.
                            "UPDATE users SET recovery_hash = ?, recovery_wrapped_key = ?, recovery_set_at = ? \
                             WHERE id = ? AND deleted_at IS NULL AND auth_hash = ?",
                            vec![
                                hash.into(),
                                wrapped.into(),
                                rq.now_ms.into(),
                                caller.user_id.as_str().into(),
                                auth_hash.into(),
                            ],
                        ),
                        Entry::new(Kind::RecoveryCodeChanged).stmt(
                            rq,
                            &caller.user_id,
                            Actor::from(&caller),
                            If::Changed,
                        ),
                ]
                .into(),
            )
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::conflict(
                "password_changed",
                "the password was changed meanwhile: nothing was changed, sign in again",
            ));
        }
        Reply::no_content()
    }

    /// The account of `email` whose recovery proof is `proof`, counted like a sign-in.
    async fn recovered(&self, rq: &Rq<'_>, email: &str, proof: &str) -> ApiResult<Recovered> {
        let email = validate::email(email)?;
        let proof = decode_auth_key(proof)
            .map_err(|_| ApiError::invalid("recovery_auth_key: must be 32 bytes, base64"))?;
        let sql = self.ports.sql();
        let keys = Keys::new(&email, rq.client_ip.as_deref());
        keys.admit(self.ports.directory(), rq.now_ms).await?;
        let found = sql
            .query(Stmt::new(
                "SELECT id, recovery_hash, recovery_wrapped_key FROM users \
                 WHERE email = ? AND deleted_at IS NULL",
                vec![email.as_str().into()],
            ))
            .await?;
        let presented = self.recovery_hash(&proof)?;
        // Every path compares, so an unknown email costs what a wrong code does.
        let (account, stored) = match found.first() {
            Some(row) => (
                Some((rows::text(row, 0)?, rows::opt_text(row, 2)?)),
                rows::opt_text(row, 1)?.unwrap_or_default(),
            ),
            None => (None, String::new()),
        };
        let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
        match account {
            Some((user_id, Some(wrapped_key))) if matches && !stored.is_empty() => {
                keys.succeed(self.ports.directory()).await?;
                Ok(Recovered {
                    user_id,
                    wrapped_key,
                    hash: presented,
                })
            }
            _ => {
                // In the owner's activity (nothing written for an unknown email, by the same
                // statement).
                sql.batch(vec![failed_sign_in(rq, &email, "recovery_code")])
                    .await?;
                Err(refused())
            }
        }
    }

    /// `POST /auth/recovery`: with the recovery code's proof, the account key wrapped by the
    /// code's key (the device unwraps it to set a new password).
    pub(crate) async fn recover(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: RecoverBody = json_body(rq.headers, rq.body)?;
        let found = self
            .recovered(rq, &body.email, &body.recovery_auth_key)
            .await?;
        Reply::ok(serde_json::json!({ "wrapped_key": found.wrapped_key }))
    }

    /// `POST /auth/recovery/reset`: with the recovery code's proof, a new password (its proof,
    /// KDF parameters and the same account key wrapped by it) and a new code (the one used is
    /// spent). Every session ends; the client then signs in with the new password.
    pub(crate) async fn reset_password(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: ResetBody = json_body(rq.headers, rq.body)?;
        let new = NewPassword {
            auth_key: &body.new_auth_key,
            kdf: &body.kdf,
            wrapped_key: &body.wrapped_key,
            recovery: &body.recovery,
        };
        new.check()?;
        let found = self
            .recovered(rq, &body.email, &body.recovery_auth_key)
            .await?;
        let set = self
            .set_password(
                rq,
                &found.user_id,
                &new,
                Unchanged::Recovery(found.hash),
                Actor::default(),
            )
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "recovery_changed",
                    "the recovery code was changed meanwhile: nothing was changed",
                )
            })?;
        Ok(Reply::no_content()?.warn(set.warning))
    }
}
