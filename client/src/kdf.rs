//! The client half of sign-in: Argon2id over the password with the account's parameters,
//! then HKDF-SHA256 into an `auth_key` (sent to the server) and an `enc_key` (never sent; it
//! unwraps the account key, `seal::unwrap_account_key`, which seals end to end).

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
    kdf.check()
        .map_err(|e| anyhow!("refusing the server's KDF parameters: {e}"))?;
    let salt = B64
        .decode(&kdf.salt)
        .ok()
        .filter(|s| (16..=64).contains(&s.len()))
        .ok_or_else(|| {
            anyhow!("refusing the server's KDF parameters: the salt must be 16 to 64 bytes, base64")
        })?;
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

    #[test]
    fn a_kdf_cheaper_or_costlier_than_the_rules_is_refused() {
        let good = KdfParams::new_random().unwrap();
        for bad in [
            KdfParams {
                memory_kib: 8,
                ..good.clone()
            },
            KdfParams {
                iterations: 1,
                ..good.clone()
            },
            KdfParams {
                memory_kib: 4 * 1024 * 1024,
                ..good.clone()
            },
            KdfParams {
                parallelism: 0,
                ..good.clone()
            },
            KdfParams {
                algorithm: "pbkdf2".into(),
                ..good.clone()
            },
            KdfParams {
                salt: B64.encode([1u8; 8]),
                ..good.clone()
            },
        ] {
            let err = derive("correct horse", &bad).unwrap_err().to_string();
            assert!(
                err.starts_with("refusing the server's KDF parameters"),
                "{err}"
            );
        }
    }
}
