//! Access tokens (Ed25519 JWT, fixed algorithm and key id, short-lived) and opaque refresh
//! tokens (256-bit, stored only as a hash).

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

pub fn verify_access(config: &Config, now_ms: i64, token: &str) -> ApiResult<AccessClaims> {
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
    let options = time_options(now_ms)?;
    token.claims().validate_expiration(&options).map_err(|_| {
        ApiError::unauthorized("token_expired", "the access token has expired; refresh it")
    })?;
    Ok(token.claims().custom.clone())
}

/// A new refresh token and the hash to store for it.
pub fn new_refresh(random: &impl Random) -> ApiResult<(String, String)> {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes).map_err(ApiError::internal)?;
    let token = format!("{REFRESH_PREFIX}{}", B64URL.encode(bytes));
    let hash = refresh_hash(&token);
    Ok((token, hash))
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
