//! The crate as the browser calls it (wasm-bindgen): bytes in, bytes out, errors as JS errors.
//! The web app's Worker runs the KDF here; its pages seal and open here, so a browser and the
//! agent seal the same way by construction.

use wasm_bindgen::prelude::*;

fn key(bytes: &[u8]) -> Result<[u8; 32], JsError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| JsError::new("a key is 32 bytes"))
}

fn js(e: anyhow::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// `{auth_key, enc_key}` (base64 and raw bytes) from the password and the account's KDF
/// parameters as `POST /auth/prelogin` answers them (JSON text).
#[wasm_bindgen(js_name = deriveKeys)]
pub fn derive_keys(password: &str, kdf_json: &str) -> Result<Vec<u8>, JsError> {
    let kdf: crate::kdf::KdfParams =
        serde_json::from_str(kdf_json).map_err(|e| JsError::new(&e.to_string()))?;
    let keys = crate::kdf::derive(password, &kdf).map_err(js)?;
    Ok([keys.auth_key, keys.enc_key].concat())
}

/// A clipboard item sealed with the account key, its content type bound in.
#[wasm_bindgen(js_name = sealClipboard)]
pub fn seal_clipboard(
    account_key: &[u8],
    content_type: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, JsError> {
    let aad = crate::seal::clipboard_aad(content_type);
    crate::seal::seal(&key(account_key)?, &aad, plaintext).map_err(js)
}

#[wasm_bindgen(js_name = openClipboard)]
pub fn open_clipboard(
    account_key: &[u8],
    content_type: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, JsError> {
    let aad = crate::seal::clipboard_aad(content_type);
    crate::seal::open(&key(account_key)?, &aad, sealed).map_err(js)
}

#[wasm_bindgen(js_name = fingerprintPhrase)]
pub fn fingerprint_phrase(public_key: &[u8]) -> String {
    crate::phrase::fingerprint_phrase(public_key)
}
