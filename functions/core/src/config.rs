//! Settings and secrets, read the same way on every host through a lookup function: Workers
//! from `env` vars and secrets, Spin from variables, udc-server from flags, env and its data dir.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::ports::Random;

pub const JWT_PRIVATE_KEY: &str = "UDC_JWT_PRIVATE_KEY";
pub const JWT_KID: &str = "UDC_JWT_KID";
pub const AUTH_PEPPER: &str = "UDC_AUTH_PEPPER";
pub const DECOY_KEY: &str = "UDC_DECOY_KEY";
pub const TEST_MODE: &str = "UDC_TEST_MODE";

/// The secrets a deployment must provide (`wrangler secret put`, Spin variables, udc-server env).
pub const SECRETS: [&str; 3] = [JWT_PRIVATE_KEY, AUTH_PEPPER, DECOY_KEY];

#[derive(Clone)]
pub struct Config {
    pub jwt_key: ed25519_compact::KeyPair,
    pub jwt_kid: String,
    pub pepper: Vec<u8>,
    pub decoy_key: Vec<u8>,
    /// Honours `x-udc-test-clock-offset-ms` and `x-udc-test-client-ip` so the black-box suite can
    /// move time and vary client addresses. Never set in production.
    pub test_mode: bool,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let secret = |name: &str, min_len: usize| -> Result<Vec<u8>, String> {
            let raw = get(name).ok_or_else(|| format!("secret {name} is not set"))?;
            let bytes = B64
                .decode(raw.trim())
                .map_err(|_| format!("secret {name} is not valid base64"))?;
            if bytes.len() < min_len {
                return Err(format!("secret {name} must be at least {min_len} bytes"));
            }
            Ok(bytes)
        };
        let seed = secret(JWT_PRIVATE_KEY, 32)?;
        let seed = ed25519_compact::Seed::from_slice(&seed[..32])
            .map_err(|_| format!("secret {JWT_PRIVATE_KEY} is not an Ed25519 seed"))?;
        Ok(Config {
            jwt_key: ed25519_compact::KeyPair::from_seed(seed),
            jwt_kid: get(JWT_KID)
                .filter(|k| !k.trim().is_empty())
                .unwrap_or_else(|| "udc-1".to_owned()),
            pepper: secret(AUTH_PEPPER, 32)?,
            decoy_key: secret(DECOY_KEY, 32)?,
            test_mode: matches!(get(TEST_MODE).as_deref().map(str::trim), Some("1" | "true")),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
        })
    }

    /// Fresh random values for every secret, for a first local run or a test deployment.
    pub fn generate_secrets(random: &impl Random) -> Result<Vec<(&'static str, String)>, String> {
        SECRETS
            .iter()
            .map(|name| {
                let mut bytes = [0u8; 32];
                random.fill(&mut bytes)?;
                Ok((*name, B64.encode(bytes)))
            })
            .collect()
    }
}
