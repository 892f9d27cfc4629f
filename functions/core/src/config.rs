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
pub const S3_ENDPOINT: &str = "UDC_S3_ENDPOINT";
pub const S3_REGION: &str = "UDC_S3_REGION";
pub const S3_BUCKET: &str = "UDC_S3_BUCKET";
pub const S3_ACCESS_KEY_ID: &str = "UDC_S3_ACCESS_KEY_ID";
pub const S3_SECRET_ACCESS_KEY: &str = "UDC_S3_SECRET_ACCESS_KEY";
pub const FILES_MAX_BYTES: &str = "UDC_FILES_MAX_BYTES";
/// Comma-separated STUN URLs handed to devices for remote control.
pub const STUN_URLS: &str = "UDC_STUN_URLS";
/// Cloudflare Realtime TURN: the key's id and its API token mint short-lived credentials.
pub const TURN_KEY_ID: &str = "UDC_TURN_KEY_ID";
pub const TURN_API_TOKEN: &str = "UDC_TURN_API_TOKEN";
/// A TURN server of the operator's own (coturn with `use-auth-secret`): its comma-separated
/// `turn:`/`turns:` URLs and the secret it shares with udc, which makes short-lived credentials.
pub const TURN_URLS: &str = "UDC_TURN_URLS";
pub const TURN_SECRET: &str = "UDC_TURN_SECRET";
pub const DEFAULT_STUN_URL: &str = "stun:stun.cloudflare.com:3478";

/// Largest file accepted unless `UDC_FILES_MAX_BYTES` says otherwise.
pub const DEFAULT_FILES_MAX_BYTES: u64 = 5 * 1024 * 1024 * 1024;

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
    /// Object storage for files; without it the file endpoints answer 503.
    pub storage: Option<Storage>,
    pub files_max_bytes: u64,
    /// ICE servers for remote control's WebRTC.
    pub stun_urls: Vec<String>,
    pub turn: Option<Turn>,
}

/// Where devices get a TURN relay, for when no direct path connects them.
#[derive(Clone)]
pub enum Turn {
    /// A Cloudflare Realtime TURN key: core mints credentials at Cloudflare per request.
    Cloudflare { key_id: String, api_token: String },
    /// A TURN server sharing a secret with udc (the "TURN REST API" scheme coturn implements
    /// as `use-auth-secret`): core makes each credential itself, no request to anyone.
    SharedSecret { urls: Vec<String>, secret: Vec<u8> },
}

impl std::fmt::Debug for Turn {
    // Never the token or the secret: a config printed in a log must not hand out the relay.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Turn::Cloudflare { key_id, .. } => write!(f, "Turn::Cloudflare({key_id})"),
            Turn::SharedSecret { urls, .. } => write!(f, "Turn::SharedSecret({urls:?})"),
        }
    }
}

/// Comma-separated URLs, each with one of `schemes` (`name` for the error).
fn url_list(name: &str, value: &str, schemes: &[&str]) -> Result<Vec<String>, String> {
    let urls: Vec<String> = value
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let fits = |u: &String| schemes.iter().any(|s| u.starts_with(&format!("{s}:")));
    if urls.is_empty() || !urls.iter().all(fits) {
        return Err(format!(
            "{name} must be {} URLs, comma-separated",
            schemes
                .iter()
                .map(|s| format!("{s}:"))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    Ok(urls)
}

/// An S3-compatible bucket (R2 through its S3 API in production). Path-style URLs, which
/// R2, SeaweedFS and udc-server's embedded store all accept.
#[derive(Clone, Debug)]
pub struct Storage {
    pub endpoint: url::Url,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The object store's endpoint: an http(s) URL with a host.
pub fn store_endpoint(raw: &str) -> Result<url::Url, String> {
    url::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| format!("{S3_ENDPOINT} must be an http(s) URL"))
}

impl Storage {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Storage>, String> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(endpoint) = value(S3_ENDPOINT) else {
            return Ok(None);
        };
        let endpoint = store_endpoint(&endpoint)?;
        let required = |name: &str| {
            value(name).ok_or_else(|| format!("{name} is not set (needed with {S3_ENDPOINT})"))
        };
        Ok(Some(Storage {
            endpoint,
            region: value(S3_REGION).unwrap_or_else(|| "auto".to_owned()),
            bucket: required(S3_BUCKET)?,
            access_key_id: required(S3_ACCESS_KEY_ID)?,
            secret_access_key: required(S3_SECRET_ACCESS_KEY)?,
        }))
    }
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
            storage: Storage::from_lookup(&get)?,
            stun_urls: match get(STUN_URLS).filter(|v| !v.trim().is_empty()) {
                None => vec![DEFAULT_STUN_URL.to_owned()],
                Some(v) => url_list(STUN_URLS, &v, &["stun", "stuns"])?,
            },
            turn: Self::turn(&get)?,
            files_max_bytes: match get(FILES_MAX_BYTES).filter(|v| !v.trim().is_empty()) {
                None => DEFAULT_FILES_MAX_BYTES,
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    // A size the limit lets through is one every host stores exactly.
                    .filter(|n| (1..=crate::web::MAX_EXACT.unsigned_abs()).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{FILES_MAX_BYTES} must be a number of bytes from 1 to {}",
                            crate::web::MAX_EXACT
                        )
                    })?,
            },
        })
    }

    fn turn(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Turn>, String> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let cloudflare = match (set(TURN_KEY_ID), set(TURN_API_TOKEN)) {
            (Some(key_id), Some(api_token)) => Some(Turn::Cloudflare {
                key_id: key_id.trim().to_owned(),
                api_token: api_token.trim().to_owned(),
            }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "set both {TURN_KEY_ID} and {TURN_API_TOKEN}, or neither"
                ))
            }
        };
        let own = match (set(TURN_URLS), set(TURN_SECRET)) {
            (Some(urls), Some(secret)) => {
                // As written: the TURN server uses its copy byte for byte.
                let secret = secret.into_bytes();
                // coturn takes the secret as text; a short one could be guessed offline from
                // any credential a device was given.
                if secret.len() < 16 {
                    return Err(format!("{TURN_SECRET} must be at least 16 characters"));
                }
                Some(Turn::SharedSecret {
                    urls: url_list(TURN_URLS, &urls, &["turn", "turns"])?,
                    secret,
                })
            }
            (None, None) => None,
            _ => {
                return Err(format!(
                    "set both {TURN_URLS} and {TURN_SECRET}, or neither"
                ))
            }
        };
        match (cloudflare, own) {
            (Some(_), Some(_)) => Err(format!(
                "one TURN relay: {TURN_KEY_ID} (Cloudflare) or {TURN_URLS} (your own), not both"
            )),
            (cf, own) => Ok(cf.or(own)),
        }
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

/// A configuration with every secret made from `seed` (base64 of 32 bytes), for unit tests.
#[cfg(test)]
pub(crate) fn for_tests(seed: &str) -> Config {
    Config::from_lookup(|k| match k {
        JWT_PRIVATE_KEY | AUTH_PEPPER | DECOY_KEY => Some(seed.into()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with the secrets set and `extra` beside them.
    fn with(extra: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|k| {
            if SECRETS.contains(&k) {
                return Some(B64.encode([7u8; 32]));
            }
            extra
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn a_turn_relay_is_cloudflare_s_or_one_s_own_never_half_set_nor_both() {
        assert!(with(&[]).unwrap().turn.is_none());
        let own = with(&[
            (TURN_URLS, "turn:127.0.0.1:3478, turns:relay.example:5349"),
            (TURN_SECRET, "sixteen-chars-ok"),
        ])
        .unwrap();
        let Some(Turn::SharedSecret { urls, .. }) = &own.turn else {
            panic!("own relay")
        };
        assert_eq!(*urls, ["turn:127.0.0.1:3478", "turns:relay.example:5349"]);
        let cf = with(&[(TURN_KEY_ID, "k"), (TURN_API_TOKEN, "t")]).unwrap();
        assert!(matches!(cf.turn, Some(Turn::Cloudflare { .. })));
        for bad in [
            vec![(TURN_URLS, "turn:127.0.0.1:3478")],
            vec![(TURN_SECRET, "sixteen-chars-ok")],
            vec![
                (TURN_URLS, "stun:127.0.0.1:3478"),
                (TURN_SECRET, "sixteen-chars-ok"),
            ],
            vec![
                (TURN_URLS, "turn:127.0.0.1:3478"),
                (TURN_SECRET, "too-short"),
            ],
            vec![
                (TURN_URLS, "turn:127.0.0.1:3478"),
                (TURN_SECRET, "sixteen-chars-ok"),
                (TURN_KEY_ID, "k"),
                (TURN_API_TOKEN, "t"),
            ],
        ] {
            assert!(with(&bad).is_err(), "{bad:?}");
        }
        // The secret never shows in a printed config.
        let printed = format!("{:?}", own.turn);
        assert!(!printed.contains("sixteen"), "{printed}");
    }

    #[test]
    fn the_file_limit_is_a_size_every_host_stores_exactly() {
        let limit = |v: &str| with(&[(FILES_MAX_BYTES, v)]).map(|c| c.files_max_bytes);
        assert_eq!(limit("9007199254740991"), Ok(9_007_199_254_740_991));
        for bad in ["0", "-1", "9007199254740992", "18446744073709551615", "1e9"] {
            assert!(limit(bad).is_err(), "{bad}");
        }
    }
}
