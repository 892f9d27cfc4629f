//! Keyed-hash helpers shared by auth and tokens.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], ApiError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| ApiError::internal("HMAC rejected its key"))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
