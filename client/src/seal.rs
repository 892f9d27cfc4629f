//! End-to-end sealing. Clipboard items and handoff snapshots are sealed with the account key
//! (XChaCha20-Poly1305, a random 24-byte nonce in front, the item's kind bound in as
//! associated data); the server only ever holds the result. The account key itself is kept by
//! the server only wrapped (by the password's `enc_key`, and by the recovery code's key), and
//! travels to a newly approved device in a sealed box (X25519 + XSalsa20-Poly1305) to that
//! device's key.

use anyhow::{anyhow, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use crypto_box::aead::OsRng;

const NONCE: usize = 24;

/// What a sealed item is, bound into its ciphertext so one kind cannot pass for another.
pub fn clipboard_aad(content_type: &str) -> Vec<u8> {
    [b"udc clipboard v1\0".as_slice(), content_type.as_bytes()].concat()
}

pub fn handoff_aad(key: &str, content_type: &str) -> Vec<u8> {
    [
        b"udc handoff v1\0".as_slice(),
        key.as_bytes(),
        b"\0",
        content_type.as_bytes(),
    ]
    .concat()
}

/// The account key from the session's base64.
pub fn account_key(b64: &str) -> Result<[u8; 32]> {
    B64.decode(b64)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| anyhow!("the session holds no valid account key: sign in again"))
}

/// nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("no randomness: {e}"))?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| anyhow!("sealing failed"))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE + 16 {
        return Err(anyhow!("sealed item too short"));
    }
    let (nonce, body) = sealed.split_at(NONCE);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| anyhow!("cannot open: another account's key, or the item was altered"))
}

/// What wraps the account key: bound in so a wrapped key passes for no other sealed item.
const WRAP_AAD: &[u8] = b"udc account key v1";

/// A fresh random account key, for a new account: it seals everything, whatever the password.
pub fn new_account_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(key)
}

/// The account key sealed with a password's `enc_key`, base64, as the server keeps it
/// (`wrapped_key`, `crate::wire::WRAPPED_KEY_BYTES` bytes).
pub fn wrap_account_key(enc_key: &[u8; 32], account_key: &[u8; 32]) -> Result<String> {
    Ok(B64.encode(seal(enc_key, WRAP_AAD, account_key)?))
}

/// The account key from what the server keeps. An account made before keys were wrapped has
/// none: its key is the password's `enc_key` itself (the client wraps it at the next sign-in,
/// so a password change keeps everything it sealed).
pub fn unwrap_account_key(enc_key: &[u8; 32], wrapped: Option<&str>) -> Result<[u8; 32]> {
    let Some(wrapped) = wrapped else {
        return Ok(*enc_key);
    };
    let sealed = B64
        .decode(wrapped)
        .map_err(|_| anyhow!("the server's wrapped account key is not base64"))?;
    let key = open(enc_key, WRAP_AAD, &sealed)
        .map_err(|_| anyhow!("the account key does not open with this password's key"))?;
    <[u8; 32]>::try_from(key).map_err(|_| anyhow!("the wrapped account key is not 32 bytes"))
}

/// The input every udc passkey's PRF is evaluated at (WebAuthn `prf.eval.first`): the output
/// still differs per passkey, and only its authenticator can make it.
pub fn passkey_prf_salt() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b"udc passkey prf salt v1").into()
}

/// The key a passkey's PRF output wraps the account key with (`wrap_account_key`).
pub fn passkey_wrap_key(prf_output: &[u8]) -> Result<[u8; 32]> {
    if prf_output.len() < 32 {
        return Err(anyhow!("a PRF output is 32 bytes"));
    }
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"udc passkey v1"), prf_output)
        .expand(b"udc passkey wrap key", &mut key)
        .map_err(|e| anyhow!("hkdf: {e}"))?;
    Ok(key)
}

/// A new device's one-time key pair for a sign-in approval.
pub struct DeviceKeyPair(crypto_box::SecretKey);

impl DeviceKeyPair {
    pub fn generate() -> DeviceKeyPair {
        DeviceKeyPair(crypto_box::SecretKey::generate(&mut OsRng))
    }

    pub fn public_b64(&self) -> String {
        B64.encode(self.0.public_key().as_bytes())
    }

    /// The five words both devices show: computed here from the key that will receive the
    /// account key, never taken from the server (which could have swapped in its own key).
    pub fn fingerprint_phrase(&self) -> String {
        crate::phrase::fingerprint_phrase(self.0.public_key().as_bytes())
    }

    /// Opens the account key an approving device sealed to this pair.
    pub fn open_account_key(&self, sealed_b64: &str) -> Result<[u8; 32]> {
        let sealed = B64
            .decode(sealed_b64)
            .map_err(|_| anyhow!("the sealed key is not base64"))?;
        let key = self
            .0
            .unseal(&sealed)
            .map_err(|_| anyhow!("the sealed key does not open with this device's key"))?;
        <[u8; 32]>::try_from(key).map_err(|_| anyhow!("the sealed key is not 32 bytes"))
    }
}

/// Seals the account key to a requesting device's public key (base64).
pub fn seal_account_key(public_key_b64: &str, account_key: &[u8; 32]) -> Result<String> {
    let pk = B64
        .decode(public_key_b64)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| anyhow!("the request's public key is not 32 bytes of base64"))?;
    let sealed = crypto_box::PublicKey::from(pk)
        .seal(&mut OsRng, account_key)
        .map_err(|_| anyhow!("sealing the account key failed"))?;
    Ok(B64.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_open_only_with_their_key_and_kind() {
        let key = [1u8; 32];
        let sealed = seal(&key, &clipboard_aad("text/plain"), b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + 40);
        assert_eq!(
            open(&key, &clipboard_aad("text/plain"), &sealed).unwrap(),
            b"hello"
        );
        assert!(open(&[2u8; 32], &clipboard_aad("text/plain"), &sealed).is_err());
        assert!(open(&key, &clipboard_aad("text/html"), &sealed).is_err());
        let mut altered = sealed.clone();
        altered[30] ^= 1;
        assert!(open(&key, &clipboard_aad("text/plain"), &altered).is_err());
    }

    #[test]
    fn a_passkeys_prf_output_wraps_the_account_key_for_that_passkey_alone() {
        let account_key = [4u8; 32];
        let wrapped =
            wrap_account_key(&passkey_wrap_key(&[1u8; 32]).unwrap(), &account_key).unwrap();
        let back = unwrap_account_key(&passkey_wrap_key(&[1u8; 32]).unwrap(), Some(&wrapped));
        assert_eq!(back.unwrap(), account_key);
        assert!(
            unwrap_account_key(&passkey_wrap_key(&[2u8; 32]).unwrap(), Some(&wrapped)).is_err()
        );
        assert!(passkey_wrap_key(&[1u8; 16]).is_err());
        assert_ne!(passkey_prf_salt(), [0u8; 32]);
    }

    #[test]
    fn a_wrapped_account_key_opens_only_with_its_password_key() {
        let account = new_account_key().unwrap();
        let wrapped = wrap_account_key(&[3u8; 32], &account).unwrap();
        assert_eq!(
            B64.decode(&wrapped).unwrap().len(),
            crate::wire::WRAPPED_KEY_BYTES
        );
        assert_eq!(
            unwrap_account_key(&[3u8; 32], Some(&wrapped)).unwrap(),
            account
        );
        assert!(unwrap_account_key(&[4u8; 32], Some(&wrapped)).is_err());
        // A clipboard item sealed with the same key is no wrapped key (its kind is bound in).
        let item = B64.encode(seal(&[3u8; 32], &clipboard_aad("k"), &account).unwrap());
        assert!(unwrap_account_key(&[3u8; 32], Some(&item)).is_err());
        assert_eq!(unwrap_account_key(&[3u8; 32], None).unwrap(), [3u8; 32]);
    }

    #[test]
    fn the_account_key_opens_only_on_the_requesting_device() {
        let device = DeviceKeyPair::generate();
        let sealed = seal_account_key(&device.public_b64(), &[9u8; 32]).unwrap();
        assert_eq!(device.open_account_key(&sealed).unwrap(), [9u8; 32]);
        assert!(DeviceKeyPair::generate().open_account_key(&sealed).is_err());
    }
}
