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
use crate::ports::{Sql, Stmt};
use crate::rows;

pub const WINDOW_MS: i64 = 15 * 60 * 1000;
pub const EMAIL_LIMIT: i64 = 5;
pub const ADDRESS_LIMIT: i64 = 20;
pub const COOKIE_LIMIT: i64 = 5;
/// Sign-ups per client address: each one says whether an email has an account.
pub const REGISTER_LIMIT: i64 = 10;

/// The part of a client address one party controls: an IPv4 address, or an IPv6 /64 (a single
/// home or server is handed a whole /64; counting its addresses one by one would count nothing).
fn address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        _ => ip.to_owned(),
    }
}

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
            keys.push((format!("ip:{}", address(ip)), ADDRESS_LIMIT));
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

    /// A passkey sign-in: counted for the passkey (when it is registered here) and the client
    /// address, never for the email — password guesses must not lock its owner out of a
    /// credential nobody can guess.
    pub fn passkey(passkey_id: Option<&str>, client_ip: Option<&str>) -> Keys {
        let mut keys: Vec<(String, i64)> = passkey_id
            .map(|id| (format!("passkey:{id}"), EMAIL_LIMIT))
            .into_iter()
            .collect();
        if let Some(ip) = client_ip {
            keys.push((format!("ip:{}", address(ip)), ADDRESS_LIMIT));
        }
        Keys {
            keys,
            what: "failed sign-ins",
        }
    }

    /// Sign-ups from one address, every attempt counted.
    pub fn register(client_ip: Option<&str>) -> Keys {
        Keys {
            keys: client_ip
                .map(|ip| vec![(format!("register:{}", address(ip)), REGISTER_LIMIT)])
                .unwrap_or_default(),
            what: "sign-ups from this address",
        }
    }

    /// Counts this attempt on every key, then refuses it (429) if any key is now over its
    /// limit in the current window. Counting first means concurrent attempts cannot all pass a
    /// limit that was read before any of them was counted.
    pub async fn admit(&self, sql: &impl Sql, now_ms: i64) -> ApiResult<()> {
        // SET expressions all see the row as it was, so both CASEs test the old window.
        const UPSERT: &str = "INSERT INTO login_throttle (key, window_start, failures) VALUES (?, ?, 1) \
             ON CONFLICT(key) DO UPDATE SET \
             failures = CASE WHEN login_throttle.window_start + ? > ? THEN login_throttle.failures + 1 ELSE 1 END, \
             window_start = CASE WHEN login_throttle.window_start + ? > ? THEN login_throttle.window_start ELSE ? END \
             RETURNING window_start, failures";
        for (key, limit) in &self.keys {
            let counted = sql
                .query(Stmt::new(
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
                ))
                .await?;
            let Some(row) = counted.first() else { continue };
            let window_end = rows::int(row, 0)?.saturating_add(WINDOW_MS);
            if rows::int(row, 1)? > *limit {
                let secs = (window_end.saturating_sub(now_ms) + 999) / 1000;
                return Err(ApiError {
                    retry_after: Some(secs.max(1) as u64),
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

    /// After a proof matched: the email's (or the cookie's) count starts again, and the
    /// attempt no longer counts against the address (only failures do; one good sign-in must
    /// not reset an address that is guessing at many accounts, so the rest of its count stays).
    /// The counts are in the directory, apart from any account's change: this runs before the
    /// change the proof allows, which an attempt proven right may then fail to make.
    pub async fn succeed(&self, directory: &impl Sql) -> ApiResult<()> {
        let stmts = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (key, _))| {
                if i == 0 {
                    Stmt::new("DELETE FROM login_throttle WHERE key = ?", vec![key.into()])
                } else {
                    Stmt::new(
                        "UPDATE login_throttle SET failures = failures - 1 WHERE key = ? AND failures > 0",
                        vec![key.into()],
                    )
                }
            })
            .collect();
        directory.batch(stmts).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        assert_eq!(address("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(address("2001:db8:1:2:bbbb::9"), address("2001:db8:1:2::7"));
        assert_eq!(address("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address("192.0.2.7"), "192.0.2.7");
    }
}
