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
