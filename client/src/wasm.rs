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

/// `auth_key ‖ enc_key` (64 bytes: the first 32 are sent, base64, the last 32 never leave the
/// device) from the password and the account's KDF parameters as `POST /auth/prelogin`
/// answers them (JSON text).
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

/// What a passkey's PRF is evaluated at.
#[wasm_bindgen(js_name = passkeyPrfSalt)]
pub fn passkey_prf_salt() -> Vec<u8> {
    crate::seal::passkey_prf_salt().to_vec()
}

/// The key a passkey's PRF output wraps the account key with.
#[wasm_bindgen(js_name = passkeyWrapKey)]
pub fn passkey_wrap_key(prf_output: &[u8]) -> Result<Vec<u8>, JsError> {
    crate::seal::passkey_wrap_key(prf_output)
        .map(Vec::from)
        .map_err(js)
}

/// A fresh random account key (a new account's).
#[wasm_bindgen(js_name = newAccountKey)]
pub fn new_account_key() -> Result<Vec<u8>, JsError> {
    crate::seal::new_account_key().map(Vec::from).map_err(js)
}

/// The account key sealed with a password's `enc_key`, base64 (`wrapped_key`).
#[wasm_bindgen(js_name = wrapAccountKey)]
pub fn wrap_account_key(enc_key: &[u8], account_key: &[u8]) -> Result<String, JsError> {
    crate::seal::wrap_account_key(&key(enc_key)?, &key(account_key)?).map_err(js)
}

/// The account key from the server's `wrapped_key` (absent: an account made before keys were
/// wrapped, whose key is `enc_key` itself).
#[wasm_bindgen(js_name = unwrapAccountKey)]
pub fn unwrap_account_key(enc_key: &[u8], wrapped: Option<String>) -> Result<Vec<u8>, JsError> {
    crate::seal::unwrap_account_key(&key(enc_key)?, wrapped.as_deref())
        .map(Vec::from)
        .map_err(js)
}

#[wasm_bindgen(js_name = fingerprintPhrase)]
pub fn fingerprint_phrase(public_key: &[u8]) -> String {
    crate::phrase::fingerprint_phrase(public_key)
}

/// Fresh Argon2id parameters for a new account (JSON, as `POST /auth/register` takes them).
#[wasm_bindgen(js_name = newKdfParams)]
pub fn new_kdf_params() -> Result<String, JsError> {
    let kdf = crate::kdf::KdfParams::new_random().map_err(js)?;
    serde_json::to_string(&kdf).map_err(|e| JsError::new(&e.to_string()))
}

/// A signing-in device's one-time key pair: the approving device seals the account key to it.
#[wasm_bindgen]
pub struct ApprovalKeys(crate::seal::DeviceKeyPair);

#[wasm_bindgen]
impl ApprovalKeys {
    #[wasm_bindgen(constructor)]
    pub fn generate() -> ApprovalKeys {
        ApprovalKeys(crate::seal::DeviceKeyPair::generate())
    }

    /// base64, as `POST /auth/approval/request` takes it.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> String {
        self.0.public_b64()
    }

    #[wasm_bindgen(getter)]
    pub fn phrase(&self) -> String {
        self.0.fingerprint_phrase()
    }

    #[wasm_bindgen(js_name = openAccountKey)]
    pub fn open_account_key(&self, sealed_b64: &str) -> Result<Vec<u8>, JsError> {
        self.0
            .open_account_key(sealed_b64)
            .map(Vec::from)
            .map_err(js)
    }
}

/// The account key sealed to a requesting device's public key (base64 in, base64 out).
#[wasm_bindgen(js_name = sealAccountKey)]
pub fn seal_account_key(public_key_b64: &str, account_key: &[u8]) -> Result<String, JsError> {
    crate::seal::seal_account_key(public_key_b64, &key(account_key)?).map_err(js)
}

/// A streaming SHA-256 (WebCrypto has none): files are hashed a chunk at a time, never whole
/// in memory. The digest is lower-case hex, as the files API takes it.
#[wasm_bindgen]
pub struct Sha256(sha2::Sha256);

#[wasm_bindgen]
impl Sha256 {
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)] // a JS constructor
    pub fn new() -> Sha256 {
        use sha2::Digest;
        Sha256(sha2::Sha256::new())
    }

    pub fn update(&mut self, chunk: &[u8]) {
        use sha2::Digest;
        self.0.update(chunk);
    }

    /// Consumes the hasher (JS: the object is gone after this call).
    #[wasm_bindgen(js_name = hexDigest)]
    pub fn hex_digest(self) -> String {
        use sha2::Digest;
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A recovery code (`recovery`): made here, or read back from the words a person typed.
#[wasm_bindgen(js_name = RecoveryCode)]
pub struct JsRecoveryCode(crate::recovery::RecoveryCode);

#[wasm_bindgen(js_class = RecoveryCode)]
impl JsRecoveryCode {
    #[wasm_bindgen(constructor)]
    pub fn generate() -> Result<JsRecoveryCode, JsError> {
        crate::recovery::RecoveryCode::generate()
            .map(JsRecoveryCode)
            .map_err(js)
    }

    /// The code from typed words; the error says which word is wrong.
    pub fn parse(text: &str) -> Result<JsRecoveryCode, JsError> {
        crate::recovery::RecoveryCode::parse(text)
            .map(JsRecoveryCode)
            .map_err(js)
    }

    /// The twelve words, separated by spaces.
    #[wasm_bindgen(getter)]
    pub fn words(&self) -> Result<String, JsError> {
        self.0.words().map_err(js)
    }

    /// The code's proof, base64 (as `POST /auth/recovery` takes it).
    #[wasm_bindgen(getter, js_name = authKey)]
    pub fn auth_key(&self) -> Result<String, JsError> {
        self.0.keys().map(|k| k.auth_key_b64()).map_err(js)
    }

    /// What the server keeps for this code, wrapping `account_key` (JSON text:
    /// `{auth_key, wrapped_key}`).
    #[wasm_bindgen(js_name = forServer)]
    pub fn for_server(&self, account_key: &[u8]) -> Result<String, JsError> {
        let account_key = key(account_key)?;
        let kept = self
            .0
            .keys()
            .and_then(|k| k.for_server(&account_key))
            .map_err(js)?;
        serde_json::to_string(&kept).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The account key from what the server kept for this code.
    #[wasm_bindgen(js_name = unwrapAccountKey)]
    pub fn unwrap_account_key(&self, wrapped: &str) -> Result<Vec<u8>, JsError> {
        let keys = self.0.keys().map_err(js)?;
        crate::seal::unwrap_account_key(&keys.wrap_key, Some(wrapped))
            .map(Vec::from)
            .map_err(js)
    }
}

/// Files sealed before they leave the browser (`crate::file_seal`): descriptions and content
/// ids on the page, parts in the Worker. A description travels between them as JSON text.
#[wasm_bindgen(js_name = FileSealer)]
pub struct JsFileSealer(crate::file_seal::FileKeys);

fn description(json: &str) -> Result<crate::file_seal::Description, JsError> {
    serde_json::from_str(json).map_err(|e| JsError::new(&format!("a file description: {e}")))
}

#[wasm_bindgen(js_class = FileSealer)]
impl JsFileSealer {
    #[wasm_bindgen(constructor)]
    pub fn new(account_key: &[u8]) -> Result<JsFileSealer, JsError> {
        crate::file_seal::FileKeys::new(&key(account_key)?)
            .map(JsFileSealer)
            .map_err(js)
    }

    /// A new upload's description (JSON: name, mime, size, sha256, part_size) and what the
    /// server is told: `{description, sealed, content_id, plan}` as JSON text.
    pub fn describe(
        &self,
        name: &str,
        mime: &str,
        size: u64,
        sha256: &str,
    ) -> Result<String, JsError> {
        let d = crate::file_seal::Description {
            name: name.to_owned(),
            mime: mime.to_owned(),
            size,
            sha256: sha256.to_owned(),
            part_size: crate::file_seal::Plan::for_size(size).part_size,
        };
        let answer = serde_json::json!({
            "description": serde_json::to_string(&d).map_err(|e| JsError::new(&e.to_string()))?,
            "sealed": self.0.seal_description(&d).map_err(js)?,
            "content_id": self.0.content_id(&d).map_err(js)?,
            "plan": d.plan(),
        });
        Ok(answer.to_string())
    }

    /// A stored file's description (JSON text) from its `sealed`.
    #[wasm_bindgen(js_name = openDescription)]
    pub fn open_description(&self, sealed: &str) -> Result<String, JsError> {
        let d = self.0.open_description(sealed).map_err(js)?;
        serde_json::to_string(&d).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The content id of the file `description` (JSON) describes.
    #[wasm_bindgen(js_name = contentId)]
    pub fn content_id(&self, description_json: &str) -> Result<String, JsError> {
        self.0
            .content_id(&description(description_json)?)
            .map_err(js)
    }

    /// Part `n` (from 1) of that file, sealed.
    #[wasm_bindgen(js_name = sealPart)]
    pub fn seal_part(
        &self,
        description_json: &str,
        n: u64,
        plain: &[u8],
    ) -> Result<Vec<u8>, JsError> {
        let parts = self.0.parts(&description(description_json)?).map_err(js)?;
        parts.seal(n, plain).map_err(js)
    }

    #[wasm_bindgen(js_name = openPart)]
    pub fn open_part(
        &self,
        description_json: &str,
        n: u64,
        sealed: &[u8],
    ) -> Result<Vec<u8>, JsError> {
        let parts = self.0.parts(&description(description_json)?).map_err(js)?;
        parts.open(n, sealed).map_err(js)
    }
}
