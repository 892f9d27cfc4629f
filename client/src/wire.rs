//! What clients and the server say to each other, defined once: the server's core and every
//! client read and write these same types.

use serde::{Deserialize, Serialize};

/// The account's KDF parameters (`POST /auth/prelogin`, `POST /auth/register`): Argon2id over
/// the password with these, then HKDF into the keys (`kdf`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KdfParams {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// base64, 16 to 64 bytes
    pub salt: String,
}

/// Minimums follow OWASP's Argon2id guidance (m=19 MiB, t=2, p=1); the maximums keep a sign-in
/// within what a phone can do.
pub const MIN_MEMORY_KIB: u32 = 19 * 1024;
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
pub const MIN_ITERATIONS: u32 = 2;
pub const MAX_ITERATIONS: u32 = 64;
pub const MAX_PARALLELISM: u32 = 16;

impl KdfParams {
    /// The rules both sides hold parameters to: the server when an account is created, and
    /// every client before it derives, so a server cannot talk a client into a KDF cheap enough
    /// to brute-force the `auth_key` it receives (or one so costly it stalls the device). The
    /// error names the field. The salt's bytes are the caller's to check (16 to 64).
    pub fn check(&self) -> Result<(), String> {
        if self.algorithm != "argon2id" {
            return Err("kdf.algorithm: only \"argon2id\" is supported".into());
        }
        if !(MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(format!(
                "kdf.memory_kib: must be {MIN_MEMORY_KIB} to {MAX_MEMORY_KIB}"
            ));
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err(format!(
                "kdf.iterations: must be {MIN_ITERATIONS} to {MAX_ITERATIONS}"
            ));
        }
        if !(1..=MAX_PARALLELISM).contains(&self.parallelism) {
            return Err(format!("kdf.parallelism: must be 1 to {MAX_PARALLELISM}"));
        }
        Ok(())
    }
}

/// The account key sealed with the password's `enc_key` (`seal::wrap_account_key`): a 24-byte
/// nonce, the 32-byte key, a 16-byte tag.
pub const WRAPPED_KEY_BYTES: usize = 24 + 32 + 16;

/// What the server keeps of a recovery code (`recovery::RecoveryKeys::for_server`): its proof,
/// and the account key wrapped by the code's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    pub auth_key: String,
    pub wrapped_key: String,
}

/// A session as its owner's list shows it (`GET /account/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSession {
    pub id: String,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    /// The `User-Agent` it last sent.
    pub client: Option<String>,
    pub client_ip: Option<String>,
    pub created_at: String,
    /// Its last token refresh (at least every access token's lifetime while in use).
    pub last_used_at: String,
    /// The session the request came from.
    pub is_current: bool,
}

/// One entry of the account's security activity (`GET /account/activity`), the newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: i64,
    pub at: String,
    /// `account_created`, `signed_in`, `sign_in_failed`, `device_added`, `device_removed`,
    /// `trust_added`, `trust_removed`, `approval_approved`, `approval_denied`,
    /// `password_changed`, `password_reset`, `recovery_code_changed`, `remote_session`.
    pub kind: String,
    /// The device that acted (none: a session without a device, or a failed attempt).
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub client_ip: Option<String>,
    /// The `User-Agent` of the client that acted.
    pub client: Option<String>,
    /// The device it acted on (added, removed, trusted, let control it), by its name now.
    pub target_device_id: Option<String>,
    pub target_device_name: Option<String>,
    /// What else it says: `{"method": "password"|"approval"}`, a remote session's `mode`…
    pub detail: serde_json::Value,
}
