//! Accounts and sessions. The password never reaches the server: the client runs Argon2id
//! with the account's parameters and sends only an HKDF-derived `auth_key`, which the server
//! keeps as HMAC(pepper, auth_key) and compares in constant time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::activity::{self, Actor, Entry, If, Kind};
use crate::crypto::hmac_sha256;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Hub, Ports, Row, Sql, Stmt};
use crate::throttle::Keys;
use crate::tokens::{self, AccessClaims, TokenPair};
use crate::web::{json_body, Reply};
use crate::{directory, rows, validate, Core, Rq};
pub use udc_client::wire::KdfParams;
use udc_client::wire::{MIN_ITERATIONS, MIN_MEMORY_KIB, WRAPPED_KEY_BYTES};
use udc_hub::Revoked;

pub const AUTH_KEY_BYTES: usize = 32;

/// The parameters an account may be created with (the clients' own type, the server's rules).
fn email_taken() -> ApiError {
    ApiError::conflict("email_taken", "an account with this email already exists")
}

pub(crate) fn validate_kdf(kdf: &KdfParams) -> ApiResult<()> {
    kdf.check().map_err(ApiError::invalid)?;
    match B64.decode(&kdf.salt) {
        Ok(salt) if (16..=64).contains(&salt.len()) => Ok(()),
        _ => Err(ApiError::invalid(
            "kdf.salt: must be 16 to 64 bytes, base64",
        )),
    }
}

/// What an unknown email's prelogin answers: the defaults, with a salt derived from the email.
fn decoy_kdf(salt: &[u8]) -> KdfParams {
    KdfParams {
        algorithm: "argon2id".into(),
        memory_kib: MIN_MEMORY_KIB,
        iterations: MIN_ITERATIONS,
        parallelism: 1,
        salt: B64.encode(salt),
    }
}

#[derive(Deserialize)]
struct PreloginBody {
    email: String,
}

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    kdf: KdfParams,
    auth_key: String,
    /// The account key wrapped by the password (absent from clients older than account keys).
    #[serde(default)]
    wrapped_key: Option<String>,
    /// The recovery code the client made for the new account (`recovery`).
    #[serde(default)]
    recovery: Option<udc_client::wire::Recovery>,
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    auth_key: String,
    /// The cookie an earlier sign-in to this account gave this client, if it kept one.
    #[serde(default)]
    device_cookie: Option<String>,
}

/// How long a device cookie vouches for a client that signed in before.
pub const DEVICE_COOKIE_TTL_MS: i64 = 180 * 24 * 3600 * 1000;

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Serialize)]
pub(crate) struct UserView {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) created_at: String,
}

#[derive(Serialize)]
struct SignedIn {
    user: UserView,
    tokens: TokenPair,
    /// The account key wrapped by the password's `enc_key`; null for an account made before
    /// account keys (its key is `enc_key`), which the client then wraps (`PUT /account/key`).
    wrapped_key: Option<String>,
    /// Present it at the next sign-in to this account: failures are then counted for this
    /// client alone (`throttle`). Not a credential: it never signs anyone in by itself.
    device_cookie: String,
}

/// A new device cookie and its hash, with the statement that stores it (if the user exists).
fn new_cookie(
    random: &impl crate::ports::Random,
    user_id: &str,
    now: i64,
) -> ApiResult<(String, Stmt)> {
    let (cookie, hash) = tokens::new_cookie(random)?;
    let stmt = Stmt::new(
        "INSERT INTO login_cookies (cookie_hash, user_id, created_at, expires_at) \
         SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)",
        vec![
            hash.into(),
            user_id.into(),
            now.into(),
            (now + DEVICE_COOKIE_TTL_MS).into(),
            user_id.into(),
        ],
    );
    Ok((cookie, stmt))
}

/// What must hold for the rest of a batch to take effect (D1 has no interactive transactions).
#[derive(Clone, Copy)]
pub(crate) enum Guard<'a> {
    /// The user row (inserted earlier in the batch) exists.
    UserExists(&'a str),
    /// A session was swapped out for this new session id earlier in the batch.
    SessionReplacedBy(&'a str),
    /// An approved sign-in was marked collected by this new session id earlier in the batch.
    LoginApproved(&'a str),
}

impl<'a> Guard<'a> {
    fn arg(self) -> &'a str {
        match self {
            Guard::UserExists(id) | Guard::SessionReplacedBy(id) | Guard::LoginApproved(id) => id,
        }
    }
}

/// Who is calling, from a verified access token whose session is still live.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    pub device_id: Option<String>,
}

impl Caller {
    /// Who verified claims name. It drops their scope: call it once the scope is checked.
    pub(crate) fn of(claims: AccessClaims) -> Caller {
        Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            device_id: claims.did,
        }
    }

    /// The calling device, for what only a registered device may do.
    pub fn device(&self) -> ApiResult<&str> {
        self.device_id.as_deref().ok_or_else(|| {
            ApiError::forbidden("only a registered device can do this: register the device first")
        })
    }
}

/// A wrapped account key as clients send it: base64 of exactly `WRAPPED_KEY_BYTES`.
pub(crate) fn wrapped_key(raw: &str, field: &str) -> ApiResult<String> {
    match B64.decode(raw) {
        Ok(key) if key.len() == WRAPPED_KEY_BYTES => Ok(raw.to_owned()),
        _ => Err(ApiError::invalid(format!(
            "{field}: must be {WRAPPED_KEY_BYTES} bytes, base64 (the account key sealed with the password's key)"
        ))),
    }
}

pub(crate) fn decode_auth_key(raw: &str) -> ApiResult<Vec<u8>> {
    match B64.decode(raw) {
        Ok(key) if key.len() == AUTH_KEY_BYTES => Ok(key),
        _ => Err(ApiError::invalid(format!(
            "auth_key: must be {AUTH_KEY_BYTES} bytes, base64"
        ))),
    }
}

impl<P: Ports> Core<P> {
    pub(crate) fn auth_hash(&self, auth_key: &[u8]) -> ApiResult<[u8; 32]> {
        hmac_sha256(&self.config.pepper, &[b"udc auth v1\0", auth_key])
    }

    pub(crate) async fn prelogin(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: PreloginBody = json_body(rq.headers, rq.body)?;
        let email = validate::email(&body.email)?;
        let found = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT kdf_algorithm, kdf_memory_kib, kdf_iterations, kdf_parallelism, kdf_salt \
                 FROM users WHERE email = ?",
                vec![email.as_str().into()],
            ))
            .await?;
        // The decoy is computed either way so both answers cost the same.
        let decoy = hmac_sha256(
            &self.config.decoy_key,
            &[b"udc prelogin decoy v1\0", email.as_bytes()],
        )?;
        let kdf = match found.first() {
            Some(row) => KdfParams {
                algorithm: rows::text(row, 0)?,
                memory_kib: u32::try_from(rows::int(row, 1)?)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
                iterations: u32::try_from(rows::int(row, 2)?)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
                parallelism: u32::try_from(rows::int(row, 3)?)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
                salt: rows::text(row, 4)?,
            },
            None => decoy_kdf(&decoy[..16]),
        };
        Reply::ok(serde_json::json!({ "kdf": kdf }))
    }

    pub(crate) async fn register(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: RegisterBody = json_body(rq.headers, rq.body)?;
        let email = validate::email(&body.email)?;
        validate_kdf(&body.kdf)?;
        let auth_hash = hex::encode(self.auth_hash(&decode_auth_key(&body.auth_key)?)?);
        let wrapped = body
            .wrapped_key
            .as_deref()
            .map(|k| wrapped_key(k, "wrapped_key"))
            .transpose()?;
        let (recovery_hash, recovery_wrapped) = match &body.recovery {
            // The code wraps the account key; without a wrapped key the account's key is the
            // password's enc_key, which a code made apart from it would not match.
            Some(_) if wrapped.is_none() => {
                return Err(ApiError::invalid(
                    "recovery: needs wrapped_key (the account key the code wraps)",
                ))
            }
            Some(r) => {
                let (hash, wrapped) = self.recovery_values(r)?;
                (Some(hash), Some(wrapped))
            }
            None => (None, None),
        };
        let now = rq.now_ms;
        // Every sign-up tells whether an email has an account (409 below): count them per
        // address like failed sign-ins, so probing many emails from one place is slow.
        Keys::register(rq.client_ip.as_deref())
            .admit(self.ports.directory(), now)
            .await?;
        let user_id = self.claim_email(rq, &email).await?;
        let session_id = self.new_id()?;
        let (refresh, refresh_hash) = tokens::new_refresh(self.ports.random(), &user_id)?;
        let (cookie, store_cookie) = new_cookie(self.ports.random(), &user_id, now)?;
        let insert_user = Stmt::new(
            "INSERT INTO users (id, email, kdf_algorithm, kdf_memory_kib, kdf_iterations, \
                 kdf_parallelism, kdf_salt, auth_hash, wrapped_key, recovery_hash, \
                 recovery_wrapped_key, recovery_set_at, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            vec![
                user_id.as_str().into(),
                email.as_str().into(),
                body.kdf.algorithm.as_str().into(),
                i64::from(body.kdf.memory_kib).into(),
                i64::from(body.kdf.iterations).into(),
                i64::from(body.kdf.parallelism).into(),
                body.kdf.salt.as_str().into(),
                auth_hash.into(),
                wrapped.clone().into(),
                recovery_hash.clone().into(),
                recovery_wrapped.into(),
                recovery_hash.map(|_| now).into(),
                now.into(),
                now.into(),
            ],
        );
        let changes = self
            .ports
            .sql()
            .batch(
                [
                    insert_user,
                    // Written when the account was (its email free).
                    Entry::new(Kind::AccountCreated).stmt(
                        rq,
                        &user_id,
                        Actor::new_session(&session_id),
                        If::Changed,
                    ),
                    store_cookie,
                ]
                .into_iter()
                .chain(self.password_session(&user_id, &session_id, &refresh_hash, rq))
                .collect(),
            )
            .await?;
        if changes.first() != Some(&1) {
            return Err(email_taken());
        }
        let tokens = self.token_pair(&user_id, &session_id, None, refresh, now)?;
        Reply::json(
            StatusCode::CREATED,
            SignedIn {
                user: UserView {
                    id: user_id,
                    email,
                    created_at: rows::timestamp(now),
                },
                tokens,
                wrapped_key: wrapped,
                device_cookie: cookie,
            },
        )
    }

    /// The id a sign-up creates its account under, once the email is claimed for it in the
    /// directory: the host's (where each account has its own storage, the host routed the
    /// sign-up to a new account's), or a new one — or the id of an earlier sign-up with this
    /// email that claimed it and never created its account. An email whose account exists (or
    /// whose deleted account is still being erased) fails after, with 409: the account's row
    /// is written only if neither its id nor its email is there.
    async fn claim_email(&self, rq: &Rq<'_>, email: &str) -> ApiResult<String> {
        let wanted = match &rq.account {
            Some(account) => account.clone(),
            None => self.new_id()?,
        };
        let holder = directory::claim(self.ports.directory(), email, &wanted, rq.now_ms).await?;
        if holder != wanted && rq.account.is_some() {
            // Another account took the email between the host's look-up and this claim.
            return Err(email_taken());
        }
        Ok(holder)
    }

    pub(crate) async fn login(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: LoginBody = json_body(rq.headers, rq.body)?;
        let email = validate::email(&body.email)?;
        let auth_key = decode_auth_key(&body.auth_key)?;
        let sql = self.ports.sql();
        let cookie_hash = body
            .device_cookie
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .map(tokens::refresh_hash);
        let unknown = Keys::new(&email, rq.client_ip.as_deref());
        let known = cookie_hash.as_deref().map(Keys::cookie);
        let found = sql
            .query_many(vec![
                Stmt::new(
                    "SELECT id, auth_hash, created_at, wrapped_key FROM users WHERE email = ?",
                    vec![email.as_str().into()],
                ),
                Stmt::new(
                    "SELECT user_id FROM login_cookies WHERE cookie_hash = ? AND expires_at > ?",
                    vec![cookie_hash.as_deref().into(), rq.now_ms.into()],
                ),
            ])
            .await?;
        let users = found.first().cloned().unwrap_or_default();
        let cookie_owner = found
            .get(1)
            .and_then(|r| r.first())
            .map(|r| rows::text(r, 0))
            .transpose()?;
        // A cookie counts only for the account it was given for.
        let user_of_email = users.first().map(|r| rows::text(r, 0)).transpose()?;
        let keys = match known {
            Some(k) if cookie_owner.is_some() && cookie_owner == user_of_email => k,
            _ => unknown,
        };
        // Counted before the key is compared; a success takes the count back.
        keys.admit(self.ports.directory(), rq.now_ms).await?;
        let presented = self.auth_hash(&auth_key)?;
        // Unknown accounts compare against a fixed value so both paths do the same work.
        let (user, stored) = match users.first() {
            Some(row) => (
                Some((
                    rows::text(row, 0)?,
                    rows::int(row, 2)?,
                    rows::opt_text(row, 3)?,
                )),
                hex::decode(rows::text(row, 1)?).unwrap_or_default(),
            ),
            None => (None, vec![0u8; 32]),
        };
        let matches: bool = presented.ct_eq(stored.as_slice()).into();
        let Some((user_id, created_at, wrapped)) = user.filter(|_| matches) else {
            sql.batch(vec![activity::failed_sign_in(rq, &email, "password")])
                .await?;
            return Err(ApiError::unauthorized(
                "invalid_credentials",
                "email or password is incorrect",
            ));
        };
        keys.succeed(self.ports.directory()).await?;

        let session_id = self.new_id()?;
        let (refresh, refresh_hash) = tokens::new_refresh(self.ports.random(), &user_id)?;
        let now = rq.now_ms;
        // The cookie turns over at every sign-in: the one presented is spent.
        let (cookie, store_cookie) = new_cookie(self.ports.random(), &user_id, now)?;
        sql.batch(
            [
                Stmt::new(
                    "DELETE FROM login_cookies WHERE cookie_hash = ? AND user_id = ?",
                    vec![cookie_hash.as_deref().into(), user_id.as_str().into()],
                ),
                store_cookie,
                Entry::new(Kind::SignedIn)
                    .with(serde_json::json!({ "method": "password" }))
                    .stmt(rq, &user_id, Actor::new_session(&session_id), If::Always),
            ]
            .into_iter()
            .chain(self.password_session(&user_id, &session_id, &refresh_hash, rq))
            .collect(),
        )
        .await?;
        let tokens = self.token_pair(&user_id, &session_id, None, refresh, now)?;
        Reply::ok(SignedIn {
            user: UserView {
                id: user_id,
                email,
                created_at: rows::timestamp(created_at),
            },
            tokens,
            wrapped_key: wrapped,
            device_cookie: cookie,
        })
    }

    pub(crate) async fn refresh(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: RefreshBody = json_body(rq.headers, rq.body)?;
        let invalid =
            || ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid");
        if body.refresh_token.is_empty() || body.refresh_token.len() > 128 {
            return Err(invalid());
        }
        let old_hash = tokens::refresh_hash(&body.refresh_token);
        let sql = self.ports.sql();
        let found = sql
            .query(Stmt::new(
                "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.device_id, s.revoked_at, d.removed_at \
                 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                 LEFT JOIN devices d ON d.id = s.device_id WHERE t.token_hash = ?",
                vec![old_hash.as_str().into()],
            ))
            .await?;
        let row = found.first().ok_or_else(invalid)?;
        let session_id = rows::text(row, 0)?;
        let user_id = rows::text(row, 3)?;
        let device_id = rows::opt_text(row, 4)?;
        let now = rq.now_ms;
        if rows::opt_int(row, 5)?.is_some() || rows::opt_int(row, 6)?.is_some() {
            return Err(ApiError::unauthorized(
                "session_revoked",
                "this session has ended; sign in again",
            ));
        }
        if rows::opt_int(row, 2)?.is_some() {
            return Err(self.revoke_reused(&user_id, &session_id, now).await);
        }
        if rows::int(row, 1)? <= now {
            return Err(ApiError::unauthorized(
                "refresh_token_expired",
                "the refresh token has expired; sign in again",
            ));
        }

        let (refresh, new_hash) = tokens::new_refresh(self.ports.random(), &user_id)?;
        let changes = sql
            .batch(vec![
                Stmt::new(
                    "UPDATE refresh_tokens SET used_at = ?, replaced_by = ? WHERE token_hash = ? AND used_at IS NULL",
                    vec![now.into(), new_hash.as_str().into(), old_hash.as_str().into()],
                ),
                Stmt::new(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                     SELECT ?, session_id, ?, ? FROM refresh_tokens WHERE token_hash = ? AND replaced_by = ?",
                    vec![
                        new_hash.as_str().into(),
                        now.into(),
                        (now + self.config.refresh_ttl_secs * 1000).into(),
                        old_hash.as_str().into(),
                        new_hash.as_str().into(),
                    ],
                ),
                // For the owner's list of sessions: a session in use refreshes at least once
                // per access token.
                // Only when this rotation won: a replayed token must not move it.
                Stmt::new(
                    "UPDATE sessions SET last_used_at = ?, client_ip = ?, client = coalesce(?, client) \
                     WHERE id = ? AND EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ? AND replaced_by = ?)",
                    vec![
                        now.into(),
                        rq.client_ip.clone().into(),
                        client_name(rq.headers).into(),
                        session_id.as_str().into(),
                        old_hash.as_str().into(),
                        new_hash.as_str().into(),
                    ],
                ),
            ])
            .await?;
        if changes.get(1) != Some(&1) {
            // Another request rotated this token first: the same token was presented twice.
            return Err(self.revoke_reused(&user_id, &session_id, now).await);
        }
        let tokens = self.token_pair(&user_id, &session_id, device_id, refresh, now)?;
        Reply::ok(serde_json::json!({ "tokens": tokens }))
    }

    /// A refresh token used twice means it leaked: end its whole family.
    async fn revoke_reused(&self, user_id: &str, session_id: &str, now: i64) -> ApiError {
        let revoked = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'refresh_token_reused' \
                 WHERE id = ? AND revoked_at IS NULL",
                vec![now.into(), session_id.into()],
            )])
            .await;
        if revoked.is_ok() {
            // The session's sockets close too; a failure here is the host's to log.
            let _ = self.end_sockets(user_id, session_id).await;
        }
        match revoked {
            Ok(_) => ApiError::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been ended, sign in again",
            ),
            Err(e) => e.into(),
        }
    }

    pub(crate) async fn logout(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        self.ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'logout' WHERE id = ? AND revoked_at IS NULL",
                vec![rq.now_ms.into(), caller.session_id.as_str().into()],
            )])
            .await?;
        let warning = self
            .end_sockets(&caller.user_id, &caller.session_id)
            .await
            .err();
        Ok(Reply::no_content()?.warn(warning))
    }

    /// Closes the sockets a session opened, once the session has ended.
    pub(crate) async fn end_sockets(&self, user_id: &str, session_id: &str) -> Result<(), String> {
        self.ports
            .hub()
            .revoke(user_id, Revoked::Session(session_id.to_owned()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Authenticates the request: a valid access token whose session is live and whose device
    /// (if bound) has not been removed.
    pub async fn caller(&self, rq: &Rq<'_>) -> ApiResult<Caller> {
        Ok(self.caller_with(rq, |_| Vec::new()).await?.0)
    }

    /// `caller`, plus reads scoped to the token's (signature-checked) user, fetched in the same
    /// round trip as the session check; their rows are returned only if the session is live.
    pub async fn caller_with(
        &self,
        rq: &Rq<'_>,
        reads: impl FnOnce(&Caller) -> Vec<Stmt>,
    ) -> ApiResult<(Caller, Vec<Vec<Row>>)> {
        let claims = self.bearer_claims(rq)?;
        let caller = Caller::of(claims);
        let reads = reads(&caller);
        self.live_caller(caller, reads).await
    }

    /// The request's access token, its signature and expiry checked (no I/O; whether its
    /// session is still live is `live_caller`'s question).
    pub(crate) fn bearer_claims(&self, rq: &Rq<'_>) -> ApiResult<AccessClaims> {
        let token = rq
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // Proxies may trim a trailing space: "Bearer" and "Bearer " both carry no token.
            .and_then(|v| v.trim().strip_prefix("Bearer"))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unauthorized",
                    "send an access token: Authorization: Bearer <token>",
                )
            })?;
        let claims = self.verified.verify(&self.config, rq.now_ms, token)?;
        if claims.scope.is_some() {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "this token is not an access token",
            ));
        }
        Ok(claims)
    }

    /// Checks that the caller's session is live (one round trip, with `reads`). Not generic
    /// over the reads, unlike `caller_with`: every handler shares this one copy (monomorphised
    /// per handler, it was tens of KB of each Wasm build).
    pub(crate) async fn live_caller(
        &self,
        caller: Caller,
        reads: Vec<Stmt>,
    ) -> ApiResult<(Caller, Vec<Vec<Row>>)> {
        let mut stmts = vec![Stmt::new(
            "SELECT s.user_id, s.device_id FROM sessions s LEFT JOIN devices d ON d.id = s.device_id \
             WHERE s.id = ? AND s.revoked_at IS NULL AND d.removed_at IS NULL",
            vec![caller.session_id.as_str().into()],
        )];
        stmts.extend(reads);
        let mut found = self.ports.sql().query_many(stmts).await?.into_iter();
        let live = found.next().unwrap_or_default();
        let row = live.first().ok_or_else(|| {
            ApiError::unauthorized("session_revoked", "this session has ended; sign in again")
        })?;
        if rows::text(row, 0)? != caller.user_id || rows::opt_text(row, 1)? != caller.device_id {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the access token is not valid",
            ));
        }
        Ok((caller, found.collect()))
    }

    /// A session without a device and its first refresh token, for a user that exists (or is
    /// inserted earlier in the batch).
    pub(crate) fn password_session(
        &self,
        user_id: &str,
        session_id: &str,
        refresh_hash: &str,
        rq: &Rq<'_>,
    ) -> [Stmt; 2] {
        let guard = Guard::UserExists(user_id);
        [
            self.insert_session(session_id, user_id, None, rq, guard),
            self.insert_refresh(refresh_hash, session_id, rq.now_ms, guard),
        ]
    }

    /// Inserts a session started by `rq` (its time, client and address) only while `guard`
    /// holds, so a batch whose first step did nothing creates nothing.
    pub(crate) fn insert_session(
        &self,
        session_id: &str,
        user_id: &str,
        device_id: Option<&str>,
        rq: &Rq<'_>,
        guard: Guard<'_>,
    ) -> Stmt {
        let sql = match guard {
            Guard::UserExists(_) => concat!(
                "INSERT INTO sessions (id, user_id, device_id, created_at, last_used_at, client, client_ip) \
                 SELECT ?, ?, ?, ?, ?, ?, ? ",
                "WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)"
            ),
            Guard::SessionReplacedBy(_) => concat!(
                "INSERT INTO sessions (id, user_id, device_id, created_at, last_used_at, client, client_ip) \
                 SELECT ?, ?, ?, ?, ?, ?, ? ",
                "WHERE EXISTS (SELECT 1 FROM sessions WHERE replaced_by = ?)"
            ),
            Guard::LoginApproved(_) => concat!(
                "INSERT INTO sessions (id, user_id, device_id, created_at, last_used_at, client, client_ip) \
                 SELECT ?, ?, ?, ?, ?, ?, ? ",
                "WHERE EXISTS (SELECT 1 FROM pending_logins WHERE session_id = ?)"
            ),
        };
        Stmt::new(
            sql,
            vec![
                session_id.into(),
                user_id.into(),
                device_id.into(),
                rq.now_ms.into(),
                rq.now_ms.into(),
                client_name(rq.headers).into(),
                rq.client_ip.clone().into(),
                guard.arg().into(),
            ],
        )
    }

    pub(crate) fn insert_refresh(
        &self,
        token_hash: &str,
        session_id: &str,
        now: i64,
        guard: Guard<'_>,
    ) -> Stmt {
        let sql = match guard {
            Guard::UserExists(_) => {
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)"
            }
            Guard::SessionReplacedBy(_) => {
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE replaced_by = ?)"
            }
            Guard::LoginApproved(_) => {
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM pending_logins WHERE session_id = ?)"
            }
        };
        Stmt::new(
            sql,
            vec![
                token_hash.into(),
                session_id.into(),
                now.into(),
                (now + self.config.refresh_ttl_secs * 1000).into(),
                guard.arg().into(),
            ],
        )
    }

    pub(crate) fn token_pair(
        &self,
        user_id: &str,
        session_id: &str,
        device_id: Option<String>,
        refresh_token: String,
        now: i64,
    ) -> ApiResult<TokenPair> {
        let access_token = tokens::mint_access(
            &self.config,
            now,
            AccessClaims {
                sub: user_id.to_owned(),
                sid: session_id.to_owned(),
                did: device_id.clone(),
                scope: None,
            },
        )?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_ttl_secs,
            refresh_token,
            user_id: user_id.to_owned(),
            device_id,
        })
    }
}

/// The client a session is used from, as its owner's list shows it: the `User-Agent` it sent,
/// printable characters only, at most `CLIENT_NAME_MAX` of them.
pub(crate) fn client_name(headers: &http::HeaderMap) -> Option<String> {
    let raw = headers.get(http::header::USER_AGENT)?.to_str().ok()?;
    let name: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(CLIENT_NAME_MAX)
        .collect();
    (!name.trim().is_empty()).then(|| name.trim().to_owned())
}

const CLIENT_NAME_MAX: usize = 200;
