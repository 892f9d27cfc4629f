//! Access tokens (Ed25519 JWT, fixed algorithm and key id, short-lived) and opaque refresh
//! tokens (256-bit, stored only as a hash).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, Token, UntrustedToken};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::crypto::sha256_hex;
use crate::error::{ApiError, ApiResult};
use crate::ports::Random;

const REFRESH_PREFIX: &str = "udcr_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// user id
    pub sub: String,
    /// session (refresh-token family) id
    pub sid: String,
    /// device id, once the session is bound to a registered device
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
    /// Set on narrower tokens: `realtime` for a socket ticket, which is no access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn time_options(now_ms: i64) -> ApiResult<TimeOptions<impl Fn() -> DateTime<Utc>>> {
    let now = DateTime::from_timestamp_millis(now_ms)
        .ok_or_else(|| ApiError::internal("clock out of range"))?;
    // No leeway: the issuer and the verifier share one clock.
    Ok(TimeOptions::new(Duration::zero(), move || now))
}

pub fn mint_access(config: &Config, now_ms: i64, claims: AccessClaims) -> ApiResult<String> {
    mint(config, now_ms, claims, config.access_ttl_secs)
}

pub fn mint(
    config: &Config,
    now_ms: i64,
    claims: AccessClaims,
    ttl_secs: i64,
) -> ApiResult<String> {
    let options = time_options(now_ms)?;
    let claims =
        Claims::new(claims).set_duration_and_issuance(&options, Duration::seconds(ttl_secs));
    let header = Header::empty().with_key_id(config.jwt_kid.clone());
    Ed25519
        .token(&header, &claims, &config.jwt_key.sk)
        .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
}

fn expired() -> ApiError {
    ApiError::unauthorized("token_expired", "the access token has expired; refresh it")
}

pub fn verify_access(config: &Config, now_ms: i64, token: &str) -> ApiResult<AccessClaims> {
    signed_claims(config, token).and_then(|(claims, expires_ms)| {
        if now_ms > expires_ms {
            return Err(expired());
        }
        Ok(claims)
    })
}

/// What the signature proves: the claims and when they expire (ms since the epoch).
fn signed_claims(config: &Config, token: &str) -> ApiResult<(AccessClaims, i64)> {
    let invalid = || ApiError::unauthorized("invalid_token", "the access token is not valid");
    let untrusted = UntrustedToken::new(token).map_err(|_| invalid())?;
    // Fixed algorithm and key id: anything else (none, HS256, another key) is refused.
    if untrusted.algorithm() != "EdDSA"
        || untrusted.header().key_id.as_deref() != Some(&config.jwt_kid)
    {
        return Err(invalid());
    }
    let token: Token<AccessClaims> = Ed25519
        .validator(&config.jwt_key.pk)
        .validate(&untrusted)
        .map_err(|_| invalid())?;
    // Every token udc mints expires; one without an expiry is not one of them.
    let expires_ms = token
        .claims()
        .expiration
        .ok_or_else(invalid)?
        .timestamp_millis();
    Ok((token.claims().custom.clone(), expires_ms))
}

/// Signatures already checked. A device sends the same access token with every request until
/// it expires, and checking an Ed25519 signature was a third of udc-server's CPU on an
/// authenticated read. Only what the signature proves is remembered: each use still checks the
/// expiry against the request's time, and the caller still checks that the session is live.
#[derive(Default)]
pub struct VerifiedTokens {
    seen: Mutex<HashMap<String, (AccessClaims, i64)>>,
}

/// Tokens remembered at most; past it the expired ones go, then (a flood) all of them.
const VERIFIED_MAX: usize = 4096;

impl VerifiedTokens {
    pub fn verify(&self, config: &Config, now_ms: i64, token: &str) -> ApiResult<AccessClaims> {
        let (claims, expires_ms) = self.signed(config, now_ms, token)?;
        if now_ms > expires_ms {
            return Err(expired());
        }
        Ok(claims)
    }

    /// The account a token of ours (an access token or a socket ticket, expired or not) was
    /// signed for; `None` for anything whose signature is not ours.
    pub fn signer(&self, config: &Config, now_ms: i64, token: &str) -> Option<String> {
        self.signed(config, now_ms, token).ok().map(|(c, _)| c.sub)
    }

    fn signed(&self, config: &Config, now_ms: i64, token: &str) -> ApiResult<(AccessClaims, i64)> {
        let known = self.lock().get(token).cloned();
        let (claims, expires_ms) = match known {
            Some(found) => found,
            None => {
                let checked = signed_claims(config, token)?;
                let mut seen = self.lock();
                if seen.len() >= VERIFIED_MAX {
                    seen.retain(|_, (_, exp)| *exp >= now_ms);
                    if seen.len() >= VERIFIED_MAX {
                        seen.clear();
                    }
                }
                seen.insert(token.to_owned(), checked.clone());
                checked
            }
        };
        Ok((claims, expires_ms))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (AccessClaims, i64)>> {
        // Nothing that can panic runs under the lock: a poisoned map is still consistent.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new refresh token of `user_id`'s account and the hash to store for it. The token names
/// its account (`udcr_<account>.<secret>`), so a host that keeps each account apart routes it
/// without a look-up; only the whole token's hash is stored.
pub fn new_refresh(random: &impl Random, user_id: &str) -> ApiResult<(String, String)> {
    let token = format!("{REFRESH_PREFIX}{user_id}.{}", new_secret(random)?);
    let hash = refresh_hash(&token);
    Ok((token, hash))
}

/// A new device cookie and the hash to store for it: a secret alone (it travels with the
/// email, which routes it).
pub fn new_cookie(random: &impl Random) -> ApiResult<(String, String)> {
    let token = format!("{REFRESH_PREFIX}{}", new_secret(random)?);
    let hash = refresh_hash(&token);
    Ok((token, hash))
}

fn new_secret(random: &impl Random) -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(B64URL.encode(bytes))
}

/// The account a refresh token names, if it names one (tokens issued before they did not).
pub fn refresh_account(token: &str) -> Option<&str> {
    let (account, _) = token.strip_prefix(REFRESH_PREFIX)?.split_once('.')?;
    uuid::Uuid::try_parse(account).ok().map(|_| account)
}

pub fn refresh_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// The token pair every sign-in, device registration and refresh answers with.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub user_id: String,
    pub device_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::for_tests as config;

    const T0: i64 = 1_800_000_000_000;

    fn claims(sid: &str) -> AccessClaims {
        AccessClaims {
            sub: "u".into(),
            sid: sid.into(),
            did: None,
            scope: None,
        }
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_forged_one_is_still_refused() {
        let c = config("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        let verified = VerifiedTokens::default();
        let token = mint_access(&c, T0, claims("s")).unwrap();
        assert_eq!(verified.verify(&c, T0, &token).unwrap(), claims("s"));
        // Remembered now; the expiry is checked against each request's time.
        let ttl_ms = c.access_ttl_secs * 1000;
        assert!(verified.verify(&c, T0 + ttl_ms, &token).is_ok());
        let late = verified.verify(&c, T0 + ttl_ms + 1, &token).unwrap_err();
        assert_eq!(late.code, "token_expired");

        // The same claims signed by another key, and the right token with its signature bent.
        let other = config("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=");
        let foreign = mint_access(&other, T0, claims("s")).unwrap();
        assert_eq!(
            verified.verify(&c, T0, &foreign).unwrap_err().code,
            "invalid_token"
        );
        // A character inside the signature (the last one also carries padding bits).
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let bent = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert_eq!(
            verified.verify(&c, T0, &bent).unwrap_err().code,
            "invalid_token"
        );
    }

    #[test]
    fn a_flood_of_tokens_does_not_grow_the_memory_without_bound() {
        let c = config("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        let verified = VerifiedTokens::default();
        for n in 0..VERIFIED_MAX + 10 {
            let token = mint_access(&c, T0, claims(&n.to_string())).unwrap();
            verified.verify(&c, T0, &token).unwrap();
        }
        assert!(verified.lock().len() <= VERIFIED_MAX);
    }

    #[test]
    fn a_refresh_token_names_its_account_and_a_cookie_names_none() {
        let account = "6f1c9a52-0d0e-4c1b-9a53-1f5ad2a0b7c4";
        let (token, hash) = new_refresh(&crate::OsRandom, account).unwrap();
        assert_eq!(refresh_account(&token), Some(account));
        assert_eq!(hash, refresh_hash(&token));
        let (cookie, _) = new_cookie(&crate::OsRandom).unwrap();
        assert_eq!(refresh_account(&cookie), None);
        // Tokens from before they named an account, and names that are no account id.
        assert_eq!(refresh_account("udcr_c2VjcmV0"), None);
        assert_eq!(refresh_account("udcr_../x.secret"), None);
        assert_eq!(refresh_account(&format!("x{token}")), None);
    }
}
