//! WebAuthn, the part a relying party that asks for no attestation needs: the client data, the
//! authenticator data, the credential's COSE key, and assertion signatures (ES256 and EdDSA).
//! Pure: no I/O. Written here rather than taken from `webauthn-rs`, which needs OpenSSL and so
//! does not build for wasm32 (the Worker); the signatures are checked by `p256` and
//! `ed25519-compact`, the CBOR read by `cbor`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cbor::{self, Value};
use crate::error::{ApiError, ApiResult};

/// COSE algorithm numbers (IANA): what a new passkey may use.
pub const ES256: i64 = -7;
pub const EDDSA: i64 = -8;

const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED: u8 = 0x40;

fn refused(why: impl Into<String>) -> ApiError {
    ApiError::unauthorized("passkey_refused", why)
}

/// Well-formed base64url whose content is not what WebAuthn makes: a rule the schema cannot
/// state, so 422.
fn malformed(why: impl Into<String>) -> ApiError {
    ApiError::unprocessable(why)
}

/// What the browser says it signed (`clientDataJSON`).
#[derive(Debug, Deserialize)]
pub struct ClientData {
    #[serde(rename = "type")]
    pub kind: String,
    pub challenge: String,
    pub origin: String,
    /// Set when the page that asked was framed by another site's.
    #[serde(default, rename = "crossOrigin")]
    pub cross_origin: bool,
}

impl ClientData {
    pub fn parse(json: &[u8]) -> ApiResult<ClientData> {
        serde_json::from_slice(json)
            .map_err(|e| malformed(format!("client_data_json: not WebAuthn client data: {e}")))
    }

    /// The host of the page that asked: the relying party's id for a passkey made or used there.
    pub fn rp_id(&self) -> ApiResult<String> {
        let url = url::Url::parse(&self.origin)
            .map_err(|_| malformed("client_data_json: origin is not a URL"))?;
        // An origin is scheme, host and port, as browsers write it: nothing else rides along.
        if url.origin().ascii_serialization() != self.origin {
            return Err(refused("client data: the origin is not a bare origin"));
        }
        if self.cross_origin {
            return Err(refused(
                "a page framed by another site cannot use a passkey here",
            ));
        }
        let secure = url.scheme() == "https"
            || (url.scheme() == "http" && url.host_str() == Some("localhost"));
        match url.host_str() {
            Some(host) if secure => Ok(host.to_owned()),
            _ => Err(refused(
                "passkeys work on an https page (or http://localhost)",
            )),
        }
    }
}

/// A credential's public key, as kept: its COSE algorithm and its key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// SEC1 uncompressed P-256 point (65 bytes).
    Es256(Vec<u8>),
    Ed25519([u8; 32]),
}

impl PublicKey {
    fn from_cose(key: &Value) -> ApiResult<PublicKey> {
        let Value::Map(entries) = key else {
            return Err(malformed("the credential's key is not a COSE key"));
        };
        let get = |label: i64| {
            entries.iter().find_map(|(k, v)| match k {
                Value::Integer(i) if *i == i128::from(label) => Some(v),
                _ => None,
            })
        };
        let int = |label: i64| match get(label) {
            Some(Value::Integer(i)) => i64::try_from(*i).ok(),
            _ => None,
        };
        let bytes = |label: i64| match get(label) {
            Some(Value::Bytes(b)) => Some(b.as_slice()),
            _ => None,
        };
        match (int(3), int(1), int(-1)) {
            // EC2, P-256.
            (Some(ES256), Some(2), Some(1)) => match (bytes(-2), bytes(-3)) {
                (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                    let point = [&[4u8][..], x, y].concat();
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| malformed("the credential's P-256 key is not on the curve"))?;
                    Ok(PublicKey::Es256(point))
                }
                _ => Err(malformed("the credential's P-256 key is incomplete")),
            },
            // OKP, Ed25519.
            (Some(EDDSA), Some(1), Some(6)) => bytes(-2)
                .and_then(|x| <[u8; 32]>::try_from(x).ok())
                .map(PublicKey::Ed25519)
                .ok_or_else(|| malformed("the credential's Ed25519 key is not 32 bytes")),
            _ => Err(malformed(
                "this authenticator's key type is not supported: udc takes ES256 and EdDSA passkeys",
            )),
        }
    }

    pub fn alg(&self) -> i64 {
        match self {
            PublicKey::Es256(_) => ES256,
            PublicKey::Ed25519(_) => EDDSA,
        }
    }

    pub fn to_b64(&self) -> String {
        match self {
            PublicKey::Es256(point) => B64URL.encode(point),
            PublicKey::Ed25519(key) => B64URL.encode(key),
        }
    }

    pub fn from_stored(alg: i64, b64: &str) -> ApiResult<PublicKey> {
        let bytes = B64URL
            .decode(b64)
            .map_err(|_| ApiError::internal("a stored passkey key is not base64url"))?;
        match alg {
            ES256 => Ok(PublicKey::Es256(bytes)),
            EDDSA => <[u8; 32]>::try_from(bytes.as_slice())
                .map(PublicKey::Ed25519)
                .map_err(|_| ApiError::internal("a stored Ed25519 key is not 32 bytes")),
            other => Err(ApiError::internal(format!(
                "a stored passkey of alg {other}"
            ))),
        }
    }

    /// Whether `signature` (DER ECDSA for ES256, raw for EdDSA) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Es256(point) => {
                use p256::ecdsa::signature::Verifier;
                let (Ok(key), Ok(sig)) = (
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
                    p256::ecdsa::Signature::from_der(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
            PublicKey::Ed25519(key) => {
                let (Ok(key), Ok(sig)) = (
                    ed25519_compact::PublicKey::from_slice(key),
                    ed25519_compact::Signature::from_slice(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
        }
    }
}

/// The authenticator's own record of a ceremony (`authenticatorData`).
#[derive(Debug)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    /// A new credential: its id and key (registration only).
    pub credential: Option<(Vec<u8>, PublicKey)>,
}

impl AuthData {
    pub fn parse(bytes: &[u8]) -> ApiResult<AuthData> {
        let short = || malformed("authenticator data is cut short");
        let rp_id_hash: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(short)?;
        let flags = *bytes.get(32).ok_or_else(short)?;
        let sign_count = bytes
            .get(33..37)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(short)?;
        let mut credential = None;
        if flags & ATTESTED != 0 {
            // aaguid (16 bytes), the id's length (2), the id, then the key in CBOR.
            let len = bytes
                .get(53..55)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or_else(short)?;
            let id = bytes.get(55..55 + len).ok_or_else(short)?.to_vec();
            let rest = bytes.get(55 + len..).ok_or_else(short)?;
            // Extensions may follow the key.
            let (key, _) =
                cbor::read(rest).map_err(|_| malformed("the credential's key is not CBOR"))?;
            credential = Some((id, PublicKey::from_cose(&key)?));
        }
        Ok(AuthData {
            rp_id_hash,
            flags,
            sign_count,
            credential,
        })
    }

    pub fn user_present(&self) -> bool {
        self.flags & USER_PRESENT != 0
    }

    pub fn user_verified(&self) -> bool {
        self.flags & USER_VERIFIED != 0
    }
}

/// The authenticator data inside an `attestationObject`. udc asks for no attestation, so its
/// statement (if an authenticator sends one anyway) is not checked: the passkey is trusted
/// because a signed-in owner, who proved the password, registered it.
pub fn attested_auth_data(attestation_object: &[u8]) -> ApiResult<Vec<u8>> {
    let (value, _) =
        cbor::read(attestation_object).map_err(|_| malformed("attestation_object: not CBOR"))?;
    let Value::Map(entries) = value else {
        return Err(malformed("attestation_object: not a map"));
    };
    entries
        .into_iter()
        .find_map(|(k, v)| match (k, v) {
            (Value::Text(k), Value::Bytes(b)) if k == "authData" => Some(b),
            _ => None,
        })
        .ok_or_else(|| malformed("attestation_object: no authData"))
}

/// What a ceremony must show: its kind, the challenge the server gave, and the relying party.
pub struct Expected<'a> {
    /// `webauthn.create` or `webauthn.get`.
    pub kind: &'a str,
    pub challenge: &'a [u8],
    pub rp_id: &'a str,
}

/// Checks client data and authenticator data against what the server expects: the kind, the
/// challenge, an origin on the relying party's host, its id's hash, and a person present and
/// verified (a PIN, a fingerprint: a passkey stands in for the password).
pub fn check(client: &ClientData, auth: &AuthData, expected: &Expected<'_>) -> ApiResult<()> {
    if client.kind != expected.kind {
        return Err(refused(format!(
            "client data is {}, not {}",
            client.kind, expected.kind
        )));
    }
    // Compared here too, so this check stands alone whoever read the challenge before.
    let challenge = B64URL
        .decode(client.challenge.trim_end_matches('='))
        .unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        challenge.as_slice(),
        expected.challenge,
    )) {
        return Err(refused("the passkey signed another challenge"));
    }
    if client.rp_id()? != expected.rp_id {
        return Err(refused(format!(
            "this passkey belongs to {}, not to the page at {}",
            expected.rp_id, client.origin
        )));
    }
    if auth.rp_id_hash != <[u8; 32]>::from(Sha256::digest(expected.rp_id.as_bytes())) {
        return Err(refused("the authenticator signed for another site"));
    }
    if !auth.user_present() || !auth.user_verified() {
        return Err(refused(
            "the authenticator did not verify the person (a PIN, a fingerprint or a face)",
        ));
    }
    Ok(())
}

/// What an assertion signs: the authenticator data, then the client data's hash.
pub fn signed_message(auth_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
    [auth_data, Sha256::digest(client_data_json).as_slice()].concat()
}

/// A counter that did not move forward, where the authenticator keeps one, says a copy of the
/// key signed: refuse. Authenticators that keep none report 0 every time.
pub fn counter_ok(stored: u32, presented: u32) -> bool {
    (stored == 0 && presented == 0) || presented > stored
}

#[cfg(test)]
mod tests {
    use super::*;
    // Test inputs are written by ciborium: an encoder other than the reader under test.
    use ciborium::Value;
    use p256::ecdsa::signature::Signer;

    fn cose_es256(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        let point = key.verifying_key().to_encoded_point(false);
        let cose = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer(3.into()), Value::Integer((-7).into())),
            (Value::Integer((-1).into()), Value::Integer(1.into())),
            (
                Value::Integer((-2).into()),
                Value::Bytes(point.x().unwrap().to_vec()),
            ),
            (
                Value::Integer((-3).into()),
                Value::Bytes(point.y().unwrap().to_vec()),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&cose, &mut out).unwrap();
        out
    }

    fn auth_data(
        rp_id: &str,
        flags: u8,
        count: u32,
        credential: Option<(&[u8], &[u8])>,
    ) -> Vec<u8> {
        let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend(count.to_be_bytes());
        if let Some((id, cose)) = credential {
            out.extend([0u8; 16]);
            out.extend((id.len() as u16).to_be_bytes());
            out.extend(id);
            out.extend(cose);
        }
        out
    }

    fn client(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": kind, "challenge": B64URL.encode(challenge), "origin": origin, "crossOrigin": false
        }))
        .unwrap()
    }

    #[test]
    fn a_registration_gives_the_credential_and_an_assertion_verifies_with_it() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let made = auth_data("localhost", 0x45, 0, Some((b"cred-1", &cose_es256(&key))));
        let mut attestation = Vec::new();
        let object = Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("none".into())),
            (Value::Text("attStmt".into()), Value::Map(vec![])),
            (Value::Text("authData".into()), Value::Bytes(made.clone())),
        ]);
        ciborium::into_writer(&object, &mut attestation).unwrap();
        let parsed = AuthData::parse(&attested_auth_data(&attestation).unwrap()).unwrap();
        let cd =
            ClientData::parse(&client("webauthn.create", b"c1", "http://localhost:8080")).unwrap();
        let expect = Expected {
            kind: "webauthn.create",
            challenge: b"c1",
            rp_id: "localhost",
        };
        check(&cd, &parsed, &expect).unwrap();
        let (id, public) = parsed.credential.unwrap();
        assert_eq!(id, b"cred-1");
        let public = PublicKey::from_stored(public.alg(), &public.to_b64()).unwrap();

        let used = auth_data("localhost", 0x05, 0, None);
        let json = client("webauthn.get", b"c2", "http://localhost:8080");
        let message = signed_message(&used, &json);
        let sig: p256::ecdsa::Signature = key.sign(&message);
        assert!(public.verifies(&message, sig.to_der().as_bytes()));
        // Another key, another message: no.
        let other = p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap();
        let forged: p256::ecdsa::Signature = other.sign(&message);
        assert!(!public.verifies(&message, forged.to_der().as_bytes()));
        assert!(!public.verifies(&signed_message(&used, b"{}"), sig.to_der().as_bytes()));
    }

    #[test]
    fn the_kind_challenge_site_and_person_must_all_be_right() {
        let ok = auth_data("udc.example", 0x05, 1, None);
        let exp = Expected {
            kind: "webauthn.get",
            challenge: b"c",
            rp_id: "udc.example",
        };
        let cd = |kind: &str, ch: &[u8], origin: &str| {
            ClientData::parse(&client(kind, ch, origin)).unwrap()
        };
        check(
            &cd("webauthn.get", b"c", "https://udc.example"),
            &AuthData::parse(&ok).unwrap(),
            &exp,
        )
        .unwrap();
        for (client, auth, why) in [
            (
                cd("webauthn.create", b"c", "https://udc.example"),
                ok.clone(),
                "not webauthn.get",
            ),
            (
                cd("webauthn.get", b"d", "https://udc.example"),
                ok.clone(),
                "another challenge",
            ),
            (
                cd("webauthn.get", b"c", "https://evil.example"),
                ok.clone(),
                "belongs to",
            ),
            (
                cd("webauthn.get", b"c", "http://udc.example"),
                ok.clone(),
                "https",
            ),
            (
                cd("webauthn.get", b"c", "https://udc.example/x"),
                ok.clone(),
                "bare origin",
            ),
            (
                cd("webauthn.get", b"c", "https://u@udc.example"),
                ok.clone(),
                "bare origin",
            ),
            (
                cd("webauthn.get", b"c", "https://udc.example"),
                auth_data("evil.example", 5, 1, None),
                "another site",
            ),
            (
                cd("webauthn.get", b"c", "https://udc.example"),
                auth_data("udc.example", 1, 1, None),
                "verify the person",
            ),
        ] {
            let err = check(&client, &AuthData::parse(&auth).unwrap(), &exp).unwrap_err();
            assert!(err.message.contains(why), "{why}: {}", err.message);
        }
        assert!(counter_ok(0, 0) && counter_ok(4, 5));
        assert!(!counter_ok(5, 5) && !counter_ok(5, 0));
        assert!(AuthData::parse(&ok[..20]).is_err());
    }
}
