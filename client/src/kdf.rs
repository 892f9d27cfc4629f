//! The client half of sign-in: Argon2id over the password with the account's parameters,
//! then HKDF-SHA256 into an `auth_key` (sent to the server) and an `enc_key` (never sent; it
//! encrypts clipboard and files end to end).

use anyhow::{anyhow, Result};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;

pub use crate::wire::KdfParams;

impl KdfParams {
    /// OWASP's Argon2id minimum (m=19 MiB, t=2, p=1) with a fresh 16-byte salt.
    pub fn new_random() -> Result<KdfParams> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| anyhow!("no randomness: {e}"))?;
        Ok(KdfParams {
            algorithm: "argon2id".into(),
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            salt: B64.encode(salt),
        })
    }
}

pub struct DerivedKeys {
    pub auth_key: [u8; 32],
    pub enc_key: [u8; 32],
}

/// Never prints the keys themselves.
impl std::fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKeys { .. }")
    }
}

impl DerivedKeys {
    pub fn auth_key_b64(&self) -> String {
        B64.encode(self.auth_key)
    }
}

pub fn derive(password: &str, kdf: &KdfParams) -> Result<DerivedKeys> {
    if kdf.algorithm != "argon2id" {
        return Err(anyhow!("unsupported KDF {:?}", kdf.algorithm));
    }
    let salt = B64
        .decode(&kdf.salt)
        .map_err(|_| anyhow!("the server sent a malformed salt"))?;
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| anyhow!("bad KDF parameters: {e}"))?;
    let mut master = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &salt, &mut master)
        .map_err(|e| anyhow!("argon2id: {e}"))?;
    let hk = Hkdf::<Sha256>::new(None, &master);
    let mut keys = DerivedKeys {
        auth_key: [0; 32],
        enc_key: [0; 32],
    };
    hk.expand(b"udc auth key v1", &mut keys.auth_key)
        .and_then(|_| hk.expand(b"udc enc key v1", &mut keys.enc_key))
        .map_err(|e| anyhow!("hkdf: {e}"))?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_distinct_and_salted() {
        let kdf = KdfParams::new_random().unwrap();
        let a = derive("correct horse", &kdf).unwrap();
        let b = derive("correct horse", &kdf).unwrap();
        assert_eq!(a.auth_key, b.auth_key);
        assert_ne!(
            a.auth_key, a.enc_key,
            "the key sent must not be the encryption key"
        );
        let other = KdfParams::new_random().unwrap();
        assert_ne!(
            derive("correct horse", &other).unwrap().auth_key,
            a.auth_key
        );
        assert_ne!(derive("wrong horse", &kdf).unwrap().auth_key, a.auth_key);
    }
}
