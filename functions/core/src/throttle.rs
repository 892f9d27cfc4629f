//! Failed sign-ins, counted per email and per client address in a fixed window. Over the limit
//! the next attempt answers 429 with Retry-After, before any credential is looked at.

use http::StatusCode;

use crate::crypto::sha256_hex;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Row, Sql, Stmt};
use crate::rows;

pub const WINDOW_MS: i64 = 15 * 60 * 1000;
pub const EMAIL_LIMIT: i64 = 5;
pub const ADDRESS_LIMIT: i64 = 20;

/// The throttle keys for one attempt, each with its limit.
pub struct Keys(Vec<(String, i64)>);

impl Keys {
    pub fn new(email: &str, client_ip: Option<&str>) -> Keys {
        let mut keys = vec![(
            format!("email:{}", sha256_hex(email.as_bytes())),
            EMAIL_LIMIT,
        )];
        if let Some(ip) = client_ip {
            keys.push((format!("ip:{ip}"), ADDRESS_LIMIT));
        }
        Keys(keys)
    }

    pub fn email_key(&self) -> &str {
        &self.0[0].0
    }

    /// The reads `verdict` needs, one per key (run them with the attempt's other reads).
    pub fn reads(&self) -> Vec<Stmt> {
        self.0
            .iter()
            .map(|(key, _)| {
                Stmt::new(
                    "SELECT window_start, failures FROM login_throttle WHERE key = ?",
                    vec![key.into()],
                )
            })
            .collect()
    }

    /// Refuses the attempt while any key is over its limit in the current window; `found` holds
    /// the rows of `reads()`, in order.
    pub fn verdict(&self, found: &[Vec<Row>], now_ms: i64) -> ApiResult<()> {
        for ((_, limit), rows) in self.0.iter().zip(found) {
            let Some(row) = rows.first() else { continue };
            let window_end = rows::int(row, 0)? + WINDOW_MS;
            if window_end > now_ms && rows::int(row, 1)? >= *limit {
                let secs = ((window_end - now_ms) + 999) / 1000;
                return Err(ApiError {
                    retry_after: Some(secs as u64),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("too many failed sign-ins; try again in {secs} s"),
                    )
                });
            }
        }
        Ok(())
    }

    pub async fn record_failure(&self, sql: &impl Sql, now_ms: i64) -> ApiResult<()> {
        // SET expressions all see the row as it was, so both CASEs test the old window.
        const UPSERT: &str = "INSERT INTO login_throttle (key, window_start, failures) VALUES (?, ?, 1) \
             ON CONFLICT(key) DO UPDATE SET \
             failures = CASE WHEN login_throttle.window_start + ? > ? THEN login_throttle.failures + 1 ELSE 1 END, \
             window_start = CASE WHEN login_throttle.window_start + ? > ? THEN login_throttle.window_start ELSE ? END";
        let stmts = self
            .0
            .iter()
            .map(|(key, _)| {
                Stmt::new(
                    UPSERT,
                    vec![
                        key.into(),
                        now_ms.into(),
                        WINDOW_MS.into(),
                        now_ms.into(),
                        WINDOW_MS.into(),
                        now_ms.into(),
                        now_ms.into(),
                    ],
                )
            })
            .collect();
        sql.batch(stmts).await?;
        Ok(())
    }

    /// Cleared after a successful sign-in (email only: one good login must not reset an
    /// address that is guessing at many accounts).
    pub fn clear_email(&self) -> Stmt {
        Stmt::new(
            "DELETE FROM login_throttle WHERE key = ?",
            vec![self.email_key().into()],
        )
    }
}
