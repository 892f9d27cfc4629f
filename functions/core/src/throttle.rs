//! Sign-in and sign-up attempts, counted in a fixed window; over a limit the next attempt
//! answers 429 with Retry-After, before any credential is looked at.
//!
//! Failed sign-ins from a client the account has not seen are counted per email and per client
//! address. A client that signed in to the account before presents its device cookie
//! (`login_cookies`), and its failures are counted on that cookie alone: whoever guesses at an
//! email, from anywhere, cannot lock the owner's own clients out (OWASP's device cookies). New
//! clients still wait out a locked email, and behind an address that guessed too much.

use http::StatusCode;

use crate::crypto::sha256_hex;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Row, Sql, Stmt};
use crate::rows;

pub const WINDOW_MS: i64 = 15 * 60 * 1000;
pub const EMAIL_LIMIT: i64 = 5;
pub const ADDRESS_LIMIT: i64 = 20;
pub const COOKIE_LIMIT: i64 = 5;
/// Sign-ups per client address: each one says whether an email has an account.
pub const REGISTER_LIMIT: i64 = 10;

/// The throttle keys for one attempt, each with its limit, and what they count.
pub struct Keys {
    keys: Vec<(String, i64)>,
    what: &'static str,
}

impl Keys {
    /// A sign-in from a client the account has not seen (no valid device cookie).
    pub fn new(email: &str, client_ip: Option<&str>) -> Keys {
        let mut keys = vec![(
            format!("email:{}", sha256_hex(email.as_bytes())),
            EMAIL_LIMIT,
        )];
        if let Some(ip) = client_ip {
            keys.push((format!("ip:{ip}"), ADDRESS_LIMIT));
        }
        Keys {
            keys,
            what: "failed sign-ins",
        }
    }

    /// A sign-in from a client holding a device cookie of the account (its hash).
    pub fn cookie(cookie_hash: &str) -> Keys {
        Keys {
            keys: vec![(format!("cookie:{cookie_hash}"), COOKIE_LIMIT)],
            what: "failed sign-ins",
        }
    }

    /// Sign-ups from one address, every attempt counted.
    pub fn register(client_ip: Option<&str>) -> Keys {
        Keys {
            keys: client_ip
                .map(|ip| vec![(format!("register:{ip}"), REGISTER_LIMIT)])
                .unwrap_or_default(),
            what: "sign-ups from this address",
        }
    }

    /// How many keys (and so reads) there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The reads `verdict` needs, one per key (run them with the attempt's other reads).
    pub fn reads(&self) -> Vec<Stmt> {
        self.keys
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
        for ((_, limit), rows) in self.keys.iter().zip(found) {
            let Some(row) = rows.first() else { continue };
            let window_end = rows::int(row, 0)? + WINDOW_MS;
            if window_end > now_ms && rows::int(row, 1)? >= *limit {
                let secs = ((window_end - now_ms) + 999) / 1000;
                return Err(ApiError {
                    retry_after: Some(secs as u64),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("too many {}; try again in {secs} s", self.what),
                    )
                });
            }
        }
        Ok(())
    }

    pub async fn record_failure(&self, sql: &impl Sql, now_ms: i64) -> ApiResult<()> {
        sql.batch(self.count(now_ms)).await?;
        Ok(())
    }

    /// The statements that count one more attempt on every key.
    pub fn count(&self, now_ms: i64) -> Vec<Stmt> {
        // SET expressions all see the row as it was, so both CASEs test the old window.
        const UPSERT: &str = "INSERT INTO login_throttle (key, window_start, failures) VALUES (?, ?, 1) \
             ON CONFLICT(key) DO UPDATE SET \
             failures = CASE WHEN login_throttle.window_start + ? > ? THEN login_throttle.failures + 1 ELSE 1 END, \
             window_start = CASE WHEN login_throttle.window_start + ? > ? THEN login_throttle.window_start ELSE ? END";
        self.keys
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
            .collect()
    }

    /// Cleared after a successful sign-in: the email's or the cookie's count (never the
    /// address's: one good login must not reset an address that is guessing at many accounts).
    pub fn clear_first(&self) -> Stmt {
        let first = self
            .keys
            .first()
            .map(|(k, _)| k.as_str())
            .unwrap_or_default();
        Stmt::new(
            "DELETE FROM login_throttle WHERE key = ?",
            vec![first.into()],
        )
    }
}
