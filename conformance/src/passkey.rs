//! A passkey in software: what a WebAuthn authenticator and the browser around it send, built
//! from a P-256 key, so the API's passkey checks run against every host without a browser.
//! (The web app's tests use Chromium's own virtual authenticator.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ciborium::Value;
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

pub struct SoftPasskey {
    key: p256::ecdsa::SigningKey,
    pub credential_id: Vec<u8>,
    /// The page's origin the browser puts in the client data.
    pub origin: String,
    /// The site the authenticator signs for (its hash in the authenticator data).
    pub rp_id: String,
    pub sign_count: u32,
    /// Authenticator data flags: user present (0x01) and verified (0x04) by default.
    pub flags: u8,
}

impl SoftPasskey {
    pub fn new() -> SoftPasskey {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        SoftPasskey {
            key: p256::ecdsa::SigningKey::from_slice(&seed).expect("a P-256 key"),
            credential_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
            origin: "http://localhost".into(),
            rp_id: "localhost".into(),
            sign_count: 0,
            flags: 0x05,
        }
    }

    /// Another key claiming this one's credential id.
    pub fn impostor_of(&self) -> SoftPasskey {
        SoftPasskey {
            credential_id: self.credential_id.clone(),
            ..SoftPasskey::new()
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false
        }))
        .expect("client data")
    }

    fn auth_data(&self, with_credential: bool) -> Vec<u8> {
        let mut out = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        out.push(self.flags | if with_credential { 0x40 } else { 0 });
        out.extend(self.sign_count.to_be_bytes());
        if with_credential {
            let point = self.key.verifying_key().to_encoded_point(false);
            let cose = Value::Map(vec![
                (Value::Integer(1.into()), Value::Integer(2.into())),
                (Value::Integer(3.into()), Value::Integer((-7).into())),
                (Value::Integer((-1).into()), Value::Integer(1.into())),
                (
                    Value::Integer((-2).into()),
                    Value::Bytes(point.x().expect("x").to_vec()),
                ),
                (
                    Value::Integer((-3).into()),
                    Value::Bytes(point.y().expect("y").to_vec()),
                ),
            ]);
            out.extend([0u8; 16]);
            out.extend((self.credential_id.len() as u16).to_be_bytes());
            out.extend(&self.credential_id);
            ciborium::into_writer(&cose, &mut out).expect("cbor");
        }
        out
    }

    /// `client_data_json` and `attestation_object` (base64url) of a new credential for
    /// `challenge`, attestation "none".
    pub fn register(&self, challenge: &str) -> (String, String) {
        let object = Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("none".into())),
            (Value::Text("attStmt".into()), Value::Map(vec![])),
            (
                Value::Text("authData".into()),
                Value::Bytes(self.auth_data(true)),
            ),
        ]);
        let mut attestation = Vec::new();
        ciborium::into_writer(&object, &mut attestation).expect("cbor");
        (
            B64URL.encode(self.client_data("webauthn.create", challenge)),
            B64URL.encode(attestation),
        )
    }

    /// The body of `POST /auth/webauthn/login` for `challenge`, signed by `signer` (this
    /// passkey's own key unless a test forges one).
    pub fn assert_with(&self, challenge: &str, signer: &SoftPasskey, user_id: &str) -> Json {
        let client = self.client_data("webauthn.get", challenge);
        let auth = self.auth_data(false);
        let message = [auth.as_slice(), Sha256::digest(&client).as_slice()].concat();
        let signature: p256::ecdsa::Signature = signer.key.sign(&message);
        json!({
            "credential_id": B64URL.encode(&self.credential_id),
            "client_data_json": B64URL.encode(&client),
            "authenticator_data": B64URL.encode(&auth),
            "signature": B64URL.encode(signature.to_der().as_bytes()),
            "user_handle": B64URL.encode(user_id),
        })
    }

    pub fn assert(&self, challenge: &str, user_id: &str) -> Json {
        self.assert_with(challenge, self, user_id)
    }
}

impl Default for SoftPasskey {
    fn default() -> Self {
        SoftPasskey::new()
    }
}
