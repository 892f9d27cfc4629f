//! `Idempotency-Key`: a client that retries a change (a lost answer, a restart) with the same
//! key gets the first answer back and nothing changes twice. Every change takes one (`handle`
//! claims and settles around the handler); keys are per account and per method and path, kept
//! 24 hours. Only successes are kept: after an error the client may retry the
//! same key and the request runs again.
//!
//! A claimed key whose request has not answered within `LEASE_MS` is taken as lost (its host
//! was killed, or lost power, mid-request) and the next request with the key runs it again. So
//! every operation run under a key must be safe to run twice: each one's second run finds what
//! the first did (a completed upload finds its object at the store: `complete` in `files/upload.rs`).

use http::StatusCode;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::ports::{Ports, Sql, Stmt};
use crate::web::Reply;
use crate::{rows, Core, Rq};

pub const HEADER: &str = "idempotency-key";
pub const KEEP_MS: i64 = 24 * 3600 * 1000;
/// Longer than any request runs (the longest, completing a 5 GiB upload, takes seconds).
pub const LEASE_MS: i64 = 60 * 1000;

/// A claimed key: the request runs, then `settle` records (or releases) it.
pub struct Claim {
    user_id: String,
    operation: String,
    key: String,
    /// When it was claimed: settling touches only this claim, not a later one that took over
    /// after the lease ran out.
    claimed_at: i64,
}

/// What `claim` found.
pub enum Claimed {
    /// First use: go ahead.
    Run(Option<Claim>),
    /// Seen before: this is the first answer.
    Replay(Reply),
}

fn key(rq: &Rq<'_>) -> ApiResult<Option<String>> {
    let Some(raw) = rq.headers.get(HEADER) else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "Idempotency-Key: must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

impl<P: Ports> Core<P> {
    /// Claims the request's key (if it has one) for `operation`. A key reused with a different
    /// body is refused; a key whose first request is still running answers 409.
    pub(crate) async fn claim(
        &self,
        rq: &Rq<'_>,
        user_id: &str,
        operation: &str,
    ) -> ApiResult<Claimed> {
        let Some(key) = key(rq)? else {
            return Ok(Claimed::Run(None));
        };
        let hash = hex::encode(Sha256::digest(rq.body));
        let changes = self
            .ports
            .sql()
            .batch(vec![
                Stmt::new(
                    "DELETE FROM idempotency_keys WHERE user_id = ? AND operation = ? AND key = ? \
                     AND (created_at <= ? OR (status IS NULL AND created_at <= ?))",
                    vec![
                        user_id.into(),
                        operation.into(),
                        key.as_str().into(),
                        (rq.now_ms - KEEP_MS).into(),
                        (rq.now_ms - LEASE_MS).into(),
                    ],
                ),
                Stmt::new(
                    "INSERT INTO idempotency_keys (user_id, operation, key, request_hash, created_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    vec![user_id.into(), operation.into(), key.as_str().into(), hash.as_str().into(), rq.now_ms.into()],
                ),
            ])
            .await?;
        if changes.get(1) == Some(&1) {
            return Ok(Claimed::Run(Some(Claim {
                user_id: user_id.to_owned(),
                operation: operation.to_owned(),
                key,
                claimed_at: rq.now_ms,
            })));
        }
        let found = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = ? AND operation = ? AND key = ?",
                vec![user_id.into(), operation.into(), key.as_str().into()],
            ))
            .await?;
        let row = found
            .first()
            .ok_or_else(|| ApiError::conflict("request_in_progress", "retry in a moment"))?;
        if rows::text(row, 0)? != hash {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ));
        }
        let (Some(status), Some(body)) = (rows::opt_int(row, 1)?, rows::opt_text(row, 2)?) else {
            return Err(ApiError::conflict(
                "request_in_progress",
                "the first request with this Idempotency-Key is still running; retry in a moment (after a minute it runs again)",
            ));
        };
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| ApiError::internal("stored status is not an HTTP status"))?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Claimed::Replay(Reply::no_content()?));
        }
        let body: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Claimed::Replay(Reply::json(status, body)?))
    }

    /// Keeps a success for replay; releases the key after an error so a retry runs again.
    pub(crate) async fn settle(
        &self,
        claim: Option<Claim>,
        result: ApiResult<Reply>,
    ) -> ApiResult<Reply> {
        let Some(claim) = claim else {
            return result;
        };
        let params = vec![
            claim.user_id.as_str().into(),
            claim.operation.as_str().into(),
            claim.key.as_str().into(),
            claim.claimed_at.into(),
        ];
        let stmt = match &result {
            Ok(reply) => {
                let body = reply.body.as_ref().map(|b| b.to_string()).unwrap_or_else(|| "null".into());
                let mut p = vec![i64::from(reply.status.as_u16()).into(), body.into()];
                p.extend(params);
                Stmt::new(
                    "UPDATE idempotency_keys SET status = ?, response = ? WHERE user_id = ? AND operation = ? AND key = ? AND created_at = ?",
                    p,
                )
            }
            Err(_) => Stmt::new(
                "DELETE FROM idempotency_keys WHERE user_id = ? AND operation = ? AND key = ? AND created_at = ? AND status IS NULL",
                params,
            ),
        };
        match self.ports.sql().batch(vec![stmt]).await {
            Ok(_) => result,
            // The change is made; only its replay record failed. The answer stands.
            Err(e) => result.map(|r| r.warn(Some(format!("idempotency record: {e}")))),
        }
    }
}
