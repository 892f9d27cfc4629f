//! Passkeys: an account's owner registers one (with the password, since a passkey signs in
//! without it) and then signs in with it. Where the authenticator has the PRF extension, the
//! client wraps the account key with a key from the passkey's PRF output and the server keeps
//! that wrapped key: a passkey sign-in then unlocks the data with no password at all. Without
//! PRF, the sign-in identifies the account and the device finishes by approval from another.
//!
//! Challenges are tokens the server signs (scoped, five minutes), not rows; a challenge used
//! is recorded until it expires, so each signs one ceremony. The WebAuthn checks themselves
//! are `webauthn`'s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::account::{Proof, Proven};
use crate::activity::{self, Actor, Entry, If, Kind};
use crate::auth::{wrapped_key, UserView};
use crate::crypto::sha256_hex;
use crate::devices::{has_standing, no_standing, standing_stmt};
use crate::error::{ApiError, ApiResult};
use crate::ports::{Ports, Row, Sql, Stmt};
use crate::throttle::Keys;
use crate::tokens::{self, AccessClaims, TokenPair};
use crate::web::{json_body, Reply};
use crate::webauthn::{self, AuthData, ClientData, Expected, PublicKey};
use crate::{rows, validate, Core, Rq};

/// How long a ceremony may take, from options to answer.
pub const CHALLENGE_TTL_SECS: i64 = 300;
/// Passkeys one account may keep.
pub const MAX_PASSKEYS: i64 = 20;
/// Longest credential id the spec allows, in bytes.
const MAX_CREDENTIAL_ID: usize = 1023;
/// A WebAuthn message's parts, base64url, at most this long.
const MAX_PART: usize = 16 * 1024;

/// Which ceremony a challenge is for.
#[derive(Clone, Copy)]
enum Ceremony {
    Register,
    SignIn,
}

impl Ceremony {
    fn scope(self) -> &'static str {
        match self {
            Ceremony::Register => "passkey-register",
            Ceremony::SignIn => "passkey-sign-in",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Ceremony::Register => "webauthn.create",
            Ceremony::SignIn => "webauthn.get",
        }
    }
}

/// Records a challenge as used until it would have expired; changes nothing if it was.
fn spend_stmt(challenge: &[u8], now_ms: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO passkey_challenges_used (challenge_hash, expires_at) VALUES (?, ?) \
         ON CONFLICT (challenge_hash) DO NOTHING",
        vec![
            sha256_hex(challenge).into(),
            (now_ms + CHALLENGE_TTL_SECS * 1000).into(),
        ],
    )
}

fn b64url(field: &str, raw: &str) -> ApiResult<Vec<u8>> {
    if raw.len() > MAX_PART {
        return Err(ApiError::invalid(format!(
            "{field}: at most {MAX_PART} characters"
        )));
    }
    B64URL
        .decode(raw.trim_end_matches('='))
        .map_err(|_| ApiError::invalid(format!("{field}: must be base64url")))
}

fn credential_id(raw: &str) -> ApiResult<Vec<u8>> {
    let id = b64url("credential_id", raw)?;
    if id.is_empty() || id.len() > MAX_CREDENTIAL_ID {
        return Err(ApiError::invalid(format!(
            "credential_id: 1 to {MAX_CREDENTIAL_ID} bytes"
        )));
    }
    Ok(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    /// The password's proof: a passkey signs in without it, so adding one takes it.
    auth_key: String,
    name: String,
    client_data_json: String,
    attestation_object: String,
    /// The account key wrapped by the passkey's PRF key, where it has one.
    #[serde(default)]
    wrapped_key: Option<String>,
}

impl Proof for RegisterBody {
    fn auth_key(&self) -> &str {
        &self.auth_key
    }
    fn check(&self) -> ApiResult<()> {
        validate::label("name", &self.name, 64)?;
        b64url("client_data_json", &self.client_data_json)?;
        b64url("attestation_object", &self.attestation_object)?;
        if let Some(w) = &self.wrapped_key {
            wrapped_key(w, "wrapped_key")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    credential_id: String,
    client_data_json: String,
    authenticator_data: String,
    signature: String,
    /// The account the passkey says it is for (discoverable passkeys return it).
    #[serde(default)]
    user_handle: Option<String>,
}

/// A registration's new credential, its ceremony checked.
struct NewCredential {
    challenge: Vec<u8>,
    rp_id: String,
    id: Vec<u8>,
    public_key: PublicKey,
    sign_count: u32,
}

#[derive(Serialize)]
pub(crate) struct PasskeyView {
    id: String,
    name: String,
    /// Whether a sign-in with it unlocks the data (its PRF wraps the account key).
    unlocks: bool,
    created_at: String,
    last_used_at: Option<String>,
}

fn view(row: &Row) -> ApiResult<PasskeyView> {
    Ok(PasskeyView {
        id: rows::text(row, 0)?,
        name: rows::text(row, 1)?,
        unlocks: rows::opt_text(row, 2)?.is_some(),
        created_at: rows::timestamp(rows::int(row, 3)?),
        last_used_at: rows::opt_int(row, 4)?.map(rows::timestamp),
    })
}

#[derive(Serialize)]
struct PasskeySignedIn {
    user: UserView,
    /// None for a passkey that cannot unlock the data.
    tokens: Option<TokenPair>,
    passkey: PasskeyView,
    /// The account key wrapped by the passkey's PRF key; null when it has none (the device
    /// then finishes by approval from another device).
    wrapped_key: Option<String>,
}

impl<P: Ports> Core<P> {
    fn challenge(&self, rq: &Rq<'_>, ceremony: Ceremony, user_id: &str) -> ApiResult<String> {
        let token = tokens::mint(
            &self.config,
            rq.now_ms,
            AccessClaims {
                sub: user_id.to_owned(),
                sid: self.new_id()?,
                did: None,
                scope: Some(ceremony.scope().to_owned()),
            },
            CHALLENGE_TTL_SECS,
        )?;
        Ok(B64URL.encode(token))
    }

    /// The challenge the client data carries, if this server made it for `ceremony` (and, to
    /// register, for `user_id`) and it has not expired; spent once the signature is checked.
    fn check_challenge(
        &self,
        rq: &Rq<'_>,
        client: &ClientData,
        ceremony: Ceremony,
        user_id: Option<&str>,
    ) -> ApiResult<Vec<u8>> {
        let stale = || {
            ApiError::unauthorized(
                "passkey_refused",
                "this passkey answer is not for a challenge this server gave, or it expired: try again",
            )
        };
        let raw = B64URL
            .decode(client.challenge.trim_end_matches('='))
            .map_err(|_| stale())?;
        let token = std::str::from_utf8(&raw).map_err(|_| stale())?;
        let claims = tokens::verify_access(&self.config, rq.now_ms, token).map_err(|_| stale())?;
        if claims.scope.as_deref() != Some(ceremony.scope())
            || user_id.is_some_and(|u| u != claims.sub)
        {
            return Err(stale());
        }
        Ok(raw)
    }

    async fn spend_challenge(&self, challenge: &[u8], now_ms: i64) -> ApiResult<()> {
        let changes = self
            .ports
            .sql()
            .batch(vec![spend_stmt(challenge, now_ms)])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::unauthorized(
                "passkey_refused",
                "this passkey answer was used already: try again",
            ));
        }
        Ok(())
    }

    /// `POST /auth/webauthn/register/options`: what the browser's `navigator.credentials.create`
    /// needs: a challenge, the account as the passkey's user, and the passkeys it has already.
    pub(crate) async fn passkey_register_options(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![
                    Stmt::new(
                        "SELECT email FROM users WHERE id = ?",
                        vec![c.user_id.as_str().into()],
                    ),
                    Stmt::new(
                        "SELECT credential_id FROM passkeys WHERE user_id = ?",
                        vec![c.user_id.as_str().into()],
                    ),
                ]
            })
            .await?;
        let email = found
            .first()
            .and_then(|r| r.first())
            .map(|r| rows::text(r, 0))
            .transpose()?
            .ok_or_else(|| ApiError::not_found("account"))?;
        let exclude: Vec<String> = found
            .get(1)
            .map(|rs| rs.iter().map(|r| rows::text(r, 0)).collect())
            .transpose()?
            .unwrap_or_default();
        Reply::ok(serde_json::json!({
            "challenge": self.challenge(rq, Ceremony::Register, &caller.user_id)?,
            "user": { "id": B64URL.encode(&caller.user_id), "name": email },
            "exclude_credentials": exclude,
            "timeout_ms": CHALLENGE_TTL_SECS * 1000,
        }))
    }

    /// The credential a registration makes, once its ceremony holds: its challenge, site, id,
    /// key and counter.
    fn new_credential(
        &self,
        rq: &Rq<'_>,
        user_id: &str,
        body: &RegisterBody,
    ) -> ApiResult<NewCredential> {
        let client_json = b64url("client_data_json", &body.client_data_json)?;
        let client = ClientData::parse(&client_json)?;
        let challenge = self.check_challenge(rq, &client, Ceremony::Register, Some(user_id))?;
        let rp_id = client.rp_id()?;
        let auth = AuthData::parse(&webauthn::attested_auth_data(&b64url(
            "attestation_object",
            &body.attestation_object,
        )?)?)?;
        webauthn::check(
            &client,
            &auth,
            &Expected {
                kind: Ceremony::Register.kind(),
                challenge: &challenge,
                rp_id: &rp_id,
            },
        )?;
        let Some((credential, public_key)) = auth.credential else {
            return Err(ApiError::unprocessable(
                "attestation_object: it holds no new credential",
            ));
        };
        if credential.is_empty() || credential.len() > MAX_CREDENTIAL_ID {
            return Err(ApiError::unprocessable(
                "attestation_object: the credential id is not 1 to 1023 bytes",
            ));
        }
        Ok(NewCredential {
            challenge,
            rp_id,
            id: credential,
            public_key,
            sign_count: auth.sign_count,
        })
    }

    /// `POST /auth/webauthn/register`: the new passkey, checked (its challenge, its site, a
    /// person verified) and kept with its public key and, where it has PRF, the account key
    /// it wraps.
    pub(crate) async fn passkey_register(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (Proven { caller, .. }, body) = self
            .with_password::<RegisterBody>(rq, "no passkey was added")
            .await?;
        let NewCredential {
            challenge,
            rp_id,
            id: credential,
            public_key,
            sign_count,
        } = self.new_credential(rq, &caller.user_id, &body)?;
        self.spend_challenge(&challenge, rq.now_ms).await?;
        let id = self.new_id()?;
        let name = validate::label("name", &body.name, 64)?;
        let user = caller.user_id.as_str();
        let changes = self
            .ports
            .sql()
            .batch(vec![
                Stmt::new(
                    "INSERT INTO passkeys (id, user_id, credential_id, alg, public_key, rp_id, \
                             sign_count, name, wrapped_key, created_at) \
                             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                             WHERE (SELECT COUNT(*) FROM passkeys WHERE user_id = ?) < ? \
                             ON CONFLICT (credential_id) DO NOTHING",
                    vec![
                        id.as_str().into(),
                        user.into(),
                        B64URL.encode(&credential).into(),
                        public_key.alg().into(),
                        public_key.to_b64().into(),
                        rp_id.as_str().into(),
                        i64::from(sign_count).into(),
                        name.as_str().into(),
                        body.wrapped_key.as_deref().into(),
                        rq.now_ms.into(),
                        user.into(),
                        MAX_PASSKEYS.into(),
                    ],
                ),
                Entry::new(Kind::PasskeyAdded)
                    .with(serde_json::json!({ "name": name }))
                    .stmt(rq, user, Actor::from(&caller), If::Changed),
            ])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::conflict(
                "passkey_not_added",
                format!(
                    "this passkey is registered already, or the account has {MAX_PASSKEYS} (remove one first)"
                ),
            ));
        }
        Reply::json(
            StatusCode::CREATED,
            PasskeyView {
                id,
                name,
                unlocks: body.wrapped_key.is_some(),
                created_at: rows::timestamp(rq.now_ms),
                last_used_at: None,
            },
        )
    }

    /// `GET /account/passkeys`.
    pub(crate) async fn passkeys(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, name, wrapped_key, created_at, last_used_at FROM passkeys \
                     WHERE user_id = ? ORDER BY created_at, id",
                    vec![c.user_id.as_str().into()],
                )]
            })
            .await?;
        let list = found
            .first()
            .map(|rs| rs.iter().map(view).collect::<ApiResult<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
        Reply::ok(serde_json::json!({ "passkeys": list }))
    }

    /// `DELETE /account/passkeys/{id}`: it signs in no more. Like ending another session, it
    /// takes standing: a device nobody vouches for cannot take the owner's passkeys away.
    pub(crate) async fn remove_passkey(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "passkey")?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![
                    standing_stmt(c),
                    Stmt::new(
                        "SELECT name FROM passkeys WHERE id = ? AND user_id = ?",
                        vec![id.as_str().into(), c.user_id.as_str().into()],
                    ),
                ]
            })
            .await?;
        if !has_standing(&caller, found.first())? {
            return Err(no_standing("removing a passkey"));
        }
        let name = found
            .get(1)
            .and_then(|r| r.first())
            .map(|r| rows::text(r, 0))
            .transpose()?
            .ok_or_else(|| ApiError::not_found("passkey"))?;
        let user = caller.user_id.as_str();
        let changes = self
            .ports
            .sql()
            .batch(vec![
                Stmt::new(
                    "DELETE FROM passkeys WHERE id = ? AND user_id = ?",
                    vec![id.as_str().into(), user.into()],
                ),
                Entry::new(Kind::PasskeyRemoved)
                    .with(serde_json::json!({ "name": name }))
                    .stmt(rq, user, Actor::from(&caller), If::Changed),
            ])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::not_found("passkey"));
        }
        Reply::no_content()
    }

    /// `POST /auth/webauthn/login/options`: a challenge for `navigator.credentials.get`. The
    /// passkey is the browser's to find (a discoverable credential): no email is asked, none
    /// is told.
    pub(crate) async fn passkey_sign_in_options(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        Reply::ok(serde_json::json!({
            "challenge": self.challenge(rq, Ceremony::SignIn, "")?,
            "timeout_ms": CHALLENGE_TTL_SECS * 1000,
        }))
    }

    /// `POST /auth/webauthn/login`: a signed challenge from a registered passkey. One whose
    /// PRF wraps the account key starts a session; one without can only name its account (the
    /// device then finishes by approval from another): it gets no session, which would have
    /// standing without the key. Failures count per passkey and per address, never per email,
    /// so password guesses cannot lock its owner out of passkeys.
    pub(crate) async fn passkey_sign_in(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: SignInBody = json_body(rq.headers, rq.body)?;
        let credential = credential_id(&body.credential_id)?;
        let client_json = b64url("client_data_json", &body.client_data_json)?;
        let auth_bytes = b64url("authenticator_data", &body.authenticator_data)?;
        let signature = b64url("signature", &body.signature)?;
        let handle = body
            .user_handle
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(|h| b64url("user_handle", h))
            .transpose()?;
        let client = ClientData::parse(&client_json)?;
        let auth = AuthData::parse(&auth_bytes)?;
        let challenge = self.check_challenge(rq, &client, Ceremony::SignIn, None)?;
        let sql = self.ports.sql();
        let found = sql
            .query(Stmt::new(
                "SELECT p.id, p.name, p.wrapped_key, p.created_at, p.last_used_at, p.user_id, \
                 p.alg, p.public_key, p.rp_id, p.sign_count, u.email, u.created_at \
                 FROM passkeys p JOIN users u ON u.id = p.user_id \
                 WHERE p.credential_id = ? AND u.deleted_at IS NULL",
                vec![B64URL.encode(&credential).into()],
            ))
            .await?;
        let passkey_key = found.first().map(|row| rows::text(row, 0)).transpose()?;
        let keys = Keys::passkey(passkey_key.as_deref(), rq.client_ip.as_deref());
        keys.admit(self.ports.directory(), rq.now_ms).await?;
        let Some(row) = found.first() else {
            return Err(ApiError::unauthorized(
                "passkey_refused",
                "this passkey is not registered with an account here",
            ));
        };
        let (passkey_id, user_id, email) = (
            rows::text(row, 0)?,
            rows::text(row, 5)?,
            rows::text(row, 10)?,
        );
        let stored_count = u32::try_from(rows::int(row, 9)?).unwrap_or(u32::MAX);
        let public_key = PublicKey::from_stored(rows::int(row, 6)?, &rows::text(row, 7)?)?;
        let refused = |why: &str| ApiError::unauthorized("passkey_refused", why.to_owned());
        // The signature first: nothing about the passkey is told to whoever cannot sign.
        let checked = if !public_key.verifies(
            &webauthn::signed_message(&auth_bytes, &client_json),
            &signature,
        ) {
            Err(refused("the passkey's signature does not verify"))
        } else {
            webauthn::check(
                &client,
                &auth,
                &Expected {
                    kind: Ceremony::SignIn.kind(),
                    challenge: &challenge,
                    rp_id: &rows::text(row, 8)?,
                },
            )
            .and_then(|()| match handle {
                Some(h) if h != user_id.as_bytes() => {
                    Err(refused("the passkey is for another account"))
                }
                _ => Ok(()),
            })
            .and_then(|()| {
                if webauthn::counter_ok(stored_count, auth.sign_count) {
                    Ok(())
                } else {
                    Err(refused(
                        "the passkey's counter went back: a copy of it may exist; remove it and add it again",
                    ))
                }
            })
        };
        if let Err(e) = checked {
            sql.batch(vec![activity::failed_sign_in(rq, &email, "passkey")])
                .await?;
            return Err(e);
        }
        let now = rq.now_ms;
        // The challenge spent and the counter moved on, together: two answers signed at once
        // (a copied key) cannot both pass.
        let count = i64::from(auth.sign_count);
        let moved = sql
            .batch(vec![
                spend_stmt(&challenge, now),
                Stmt::new(
                    "UPDATE passkeys SET sign_count = ?, last_used_at = ? \
                     WHERE id = ? AND changes() = 1 AND (sign_count < ? OR (sign_count = 0 AND ? = 0))",
                    vec![
                        count.into(),
                        now.into(),
                        passkey_id.as_str().into(),
                        count.into(),
                        count.into(),
                    ],
                ),
            ])
            .await?;
        if moved.first() != Some(&1) || moved.get(1) != Some(&1) {
            return Err(refused(
                "this passkey answer was used already, or another came first: try again",
            ));
        }
        let wrapped_key = rows::opt_text(row, 2)?;
        let passkey = PasskeyView {
            last_used_at: Some(rows::timestamp(now)),
            ..view(row)?
        };
        let user = UserView {
            id: user_id.clone(),
            email,
            created_at: rows::timestamp(rows::int(row, 11)?),
        };
        keys.succeed(self.ports.directory()).await?;
        if wrapped_key.is_none() {
            return Reply::ok(PasskeySignedIn {
                user,
                tokens: None,
                passkey,
                wrapped_key: None,
            });
        }
        let session_id = self.new_id()?;
        let (refresh, refresh_hash) = tokens::new_refresh(self.ports.random(), &user_id)?;
        sql.batch(
            [Entry::new(Kind::SignedIn)
                .with(serde_json::json!({ "method": "passkey", "passkey": passkey.name }))
                .stmt(rq, &user_id, Actor::new_session(&session_id), If::Always)]
            .into_iter()
            .chain(self.password_session(&user_id, &session_id, &refresh_hash, rq))
            .collect(),
        )
        .await?;
        Reply::ok(PasskeySignedIn {
            user,
            tokens: Some(self.token_pair(&user_id, &session_id, None, refresh, now)?),
            passkey,
            wrapped_key,
        })
    }
}
