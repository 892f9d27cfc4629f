//! Signing in on a new device with an approval from one already signed in (after Bitwarden's
//! login with device). The new device asks with an X25519 public key and polls with a secret;
//! the account's devices are told through the hub; a device the account trusts approves and
//! seals the account key to that public key, so the new device never types the password. The
//! tokens are minted when the new device collects them, exactly once.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use udc_hub::names;
use udc_hub::NewEvent;

use crate::activity::{Actor, Entry, If, Kind};
use crate::auth::{Guard, UserView};
use crate::devices::{has_standing, standing_stmt};
use crate::error::{ApiError, ApiResult};
use crate::events::{Change, When};
use crate::ports::{Ports, Random, Sql, Stmt};
use crate::tokens;
use crate::web::{json_body, Reply};
use crate::{directory, rows, validate, Core, Rq};

/// How long a request waits for an answer.
pub const REQUEST_TTL_MS: i64 = 2 * 60 * 1000;
/// How long an approved request can be collected after the approval.
pub const COLLECT_TTL_MS: i64 = 2 * 60 * 1000;
/// Requests per email in `RATE_WINDOW_MS`, so nobody floods an account's devices with prompts.
pub const MAX_REQUESTS: i64 = 5;
pub const RATE_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const POLL_SECRET_HEADER: &str = "x-udc-approval-secret";
const PUBLIC_KEY_BYTES: usize = 32;
/// A sealed box of a 32-byte key is 80 bytes; room for a versioned format, no more.
const MAX_SEALED_KEY_BYTES: usize = 512;
/// The clients' own phrase, so the server lists the words both devices show.
pub use udc_client::phrase::fingerprint_phrase;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    email: String,
    device_name: String,
    /// base64 X25519 public key of the new device.
    public_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RespondBody {
    request_id: String,
    approved: bool,
    #[serde(default)]
    biometric_verified: bool,
    /// The account key sealed to the request's public key (base64); required to approve.
    sealed_key: Option<String>,
}

#[derive(Serialize)]
struct PendingView {
    id: String,
    device_name: String,
    public_key: String,
    fingerprint_phrase: String,
    /// Where the request came from, as the platform saw it: a location hint.
    client_ip: Option<String>,
    created_at: String,
    expires_at: String,
}

fn public_key(raw: &str) -> ApiResult<Vec<u8>> {
    match B64.decode(raw) {
        Ok(k) if k.len() == PUBLIC_KEY_BYTES => Ok(k),
        _ => Err(ApiError::invalid(format!(
            "public_key: must be a {PUBLIC_KEY_BYTES}-byte X25519 key, base64"
        ))),
    }
}

fn gone(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::GONE, code, message)
}

impl<P: Ports> Core<P> {
    pub(crate) async fn request_approval(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: RequestBody = json_body(rq.headers, rq.body)?;
        let email = validate::email(&body.email)?;
        let device_name = validate::label("device_name", &body.device_name, 64)?;
        let key = public_key(&body.public_key)?;
        let phrase = fingerprint_phrase(&key);
        let id = self.new_id()?;
        let mut secret = [0u8; 32];
        self.ports
            .random()
            .fill(&mut secret)
            .map_err(ApiError::internal)?;
        let secret = B64URL.encode(secret);
        let now = rq.now_ms;
        // An unknown email gets the same answer (the request simply expires), so the endpoint
        // does not tell who has an account.
        // The account, read first so its owner's devices hear of the request in the same batch
        // that records it.
        let account = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT id FROM users WHERE email = ?",
                vec![email.as_str().into()],
            ))
            .await?;
        let user_id = account.first().map(|r| rows::text(r, 0)).transpose()?;
        let mut change = Change::new(vec![Stmt::new(
            "INSERT INTO pending_logins (id, user_id, email, device_name, public_key, client_ip, \
             poll_secret_hash, state, created_at, expires_at) \
             SELECT ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ? \
             WHERE (SELECT COUNT(*) FROM pending_logins WHERE email = ? AND created_at > ?) < ?",
            vec![
                id.as_str().into(),
                user_id.as_deref().into(),
                email.as_str().into(),
                device_name.as_str().into(),
                body.public_key.as_str().into(),
                rq.client_ip.clone().into(),
                tokens::refresh_hash(&secret).into(),
                now.into(),
                (now + REQUEST_TTL_MS).into(),
                email.as_str().into(),
                (now - RATE_WINDOW_MS).into(),
                MAX_REQUESTS.into(),
            ],
        )]);
        if let Some(user_id) = &user_id {
            let view = PendingView {
                id: id.clone(),
                device_name,
                public_key: body.public_key,
                fingerprint_phrase: phrase.clone(),
                client_ip: rq.client_ip.clone(),
                created_at: rows::timestamp(now),
                expires_at: rows::timestamp(now + REQUEST_TTL_MS),
            };
            change.event(
                user_id,
                NewEvent::to_all(
                    names::APPROVAL_REQUEST,
                    serde_json::json!({ "request": view }),
                ),
                When::Changed,
            );
        }
        // The route first: a route to a request that was never stored leads its polls to a
        // 404, where a request with no route could never be polled.
        directory::record_approval(
            self.ports.directory(),
            &id,
            user_id.as_deref(),
            now + REQUEST_TTL_MS,
        )
        .await?;
        let done = self.commit(change).await?;
        if !done.one(0) {
            return Err(ApiError {
                retry_after: Some((RATE_WINDOW_MS / 1000) as u64),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("at most {MAX_REQUESTS} sign-in approval requests per 15 minutes"),
                )
            });
        }
        Ok(Reply::json(
            StatusCode::CREATED,
            serde_json::json!({
                "request_id": id,
                "poll_secret": secret,
                "fingerprint_phrase": phrase,
                "expires_in": REQUEST_TTL_MS / 1000,
            }),
        )?
        .warn(done.warning))
    }

    /// The new device polls; an approved request hands over its tokens once.
    pub(crate) async fn poll_approval(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "approval request")?;
        let secret = rq
            .headers
            .get(POLL_SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let found = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT p.poll_secret_hash, p.state, p.expires_at, p.responded_at, p.user_id, p.sealed_key, \
                 p.approver_device_id, u.email, u.created_at \
                 FROM pending_logins p LEFT JOIN users u ON u.id = p.user_id WHERE p.id = ?",
                vec![id.as_str().into()],
            ))
            .await?;
        let row = found
            .first()
            .ok_or_else(|| ApiError::not_found("approval request"))?;
        let presented = tokens::refresh_hash(secret);
        let matches: bool = presented
            .as_bytes()
            .ct_eq(rows::text(row, 0)?.as_bytes())
            .into();
        if !matches {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_poll_secret",
                format!(
                    "send the poll secret this request was created with in {POLL_SECRET_HEADER}"
                ),
            ));
        }
        let now = rq.now_ms;
        match rows::text(row, 1)?.as_str() {
            "consumed" => Err(gone(
                "approval_used",
                "this approval was already collected; ask again",
            )),
            "denied" => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "approval_denied",
                "the sign-in was denied",
            )),
            "pending" if rows::int(row, 2)? <= now => Err(gone(
                "approval_expired",
                "nobody answered in time; ask again",
            )),
            "pending" => Reply::ok(serde_json::json!({
                "state": "pending",
                "expires_in": (rows::int(row, 2)? - now + 999) / 1000,
            })),
            _ if rows::opt_int(row, 3)?.unwrap_or(0) + COLLECT_TTL_MS <= now => Err(gone(
                "approval_expired",
                "the approval was not collected in time; ask again",
            )),
            _ => {
                let user_id = rows::text(row, 4)?;
                let sealed_key = rows::text(row, 5)?;
                let session_id = self.new_id()?;
                let (refresh, refresh_hash) = tokens::new_refresh(self.ports.random(), &user_id)?;
                let changes = self
                    .ports
                    .sql()
                    .batch(vec![
                        Stmt::new(
                            "UPDATE pending_logins SET state = 'consumed', session_id = ?, sealed_key = NULL \
                             WHERE id = ? AND state = 'approved'",
                            vec![session_id.as_str().into(), id.as_str().into()],
                        ),
                        Entry::new(Kind::SignedIn)
                            .with(serde_json::json!({ "method": "approval" }))
                            .stmt(
                                rq,
                                &user_id,
                                Actor::new_session(&session_id),
                                If::Changed,
                            ),
                        self.insert_session(&session_id, &user_id, None, rq, Guard::LoginApproved(&session_id)),
                        self.insert_refresh(&refresh_hash, &session_id, now, Guard::LoginApproved(&session_id)),
                    ])
                    .await?;
                if changes.first() != Some(&1) {
                    // A concurrent poll collected it first.
                    return Err(gone(
                        "approval_used",
                        "this approval was already collected; ask again",
                    ));
                }
                let tokens = self.token_pair(&user_id, &session_id, None, refresh, now)?;
                Reply::ok(serde_json::json!({
                    "state": "approved",
                    "user": UserView {
                        id: user_id,
                        email: rows::text(row, 7)?,
                        created_at: rows::timestamp(rows::int(row, 8)?),
                    },
                    "tokens": tokens,
                    "sealed_key": sealed_key,
                    "approver_device_id": rows::opt_text(row, 6)?,
                }))
            }
        }
    }

    /// Requests waiting for an answer, for a device that was offline when they were announced.
    pub(crate) async fn pending_approvals(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, device_name, public_key, client_ip, created_at, expires_at FROM pending_logins \
                     WHERE user_id = ? AND state = 'pending' AND expires_at > ? ORDER BY created_at",
                    vec![c.user_id.as_str().into(), rq.now_ms.into()],
                )]
            })
            .await?;
        caller.device()?;
        let requests = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let key = rows::text(r, 2)?;
                Ok(PendingView {
                    id: rows::text(r, 0)?,
                    device_name: rows::text(r, 1)?,
                    fingerprint_phrase: fingerprint_phrase(&B64.decode(&key).unwrap_or_default()),
                    public_key: key,
                    client_ip: rows::opt_text(r, 3)?,
                    created_at: rows::timestamp(rows::int(r, 4)?),
                    expires_at: rows::timestamp(rows::int(r, 5)?),
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({ "requests": requests }))
    }

    /// `POST /auth/biometric/respond`: a signed-in device approves or denies.
    pub(crate) async fn respond_approval(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: RespondBody = json_body(rq.headers, rq.body)?;
        let request_id = validate::body_id("request_id", &body.request_id)?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                let device = c.device_id.clone().unwrap_or_default();
                vec![
                    Stmt::new(
                        "SELECT state, expires_at, device_name FROM pending_logins WHERE id = ? AND user_id = ?",
                        vec![request_id.as_str().into(), c.user_id.as_str().into()],
                    ),
                    Stmt::new(
                        "SELECT capabilities FROM devices WHERE id = ?",
                        vec![device.as_str().into()],
                    ),
                    standing_stmt(c),
                ]
            })
            .await?;
        let device = caller.device()?.to_owned();
        let request = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("approval request"))?;
        let now = rq.now_ms;
        if rows::text(request, 0)? != "pending" {
            return Err(ApiError::conflict(
                "approval_already_answered",
                "this request was already answered",
            ));
        }
        if rows::int(request, 1)? <= now {
            return Err(gone("approval_expired", "this request has expired"));
        }
        if !has_standing(&caller, found.get(2))? {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "device_not_trusted",
                "only a device another of your devices trusts, or your first device, can answer sign-in requests",
            ));
        }
        let biometric = match found.get(1).and_then(|r| r.first()) {
            Some(row) => serde_json::from_str::<Vec<String>>(&rows::text(row, 0)?)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .iter()
                .any(|c| c == "biometric"),
            None => false,
        };
        if body.approved && biometric && !body.biometric_verified {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "biometric_required",
                "this device has biometrics: approve after the owner's biometric check",
            ));
        }
        let (state, sealed) = if body.approved {
            let sealed = body
                .sealed_key
                .ok_or_else(|| ApiError::invalid("sealed_key: required to approve (the account key sealed to the request's public key)"))?;
            validate::sealed("sealed_key", &sealed, 48, MAX_SEALED_KEY_BYTES)?;
            ("approved", Some(sealed))
        } else {
            ("denied", None)
        };
        let resolved = NewEvent::to_all(
            names::APPROVAL_RESOLVED,
            serde_json::json!({ "request_id": request_id, "state": state, "by_device_id": device }),
        );
        let kind = if body.approved {
            Kind::ApprovalApproved
        } else {
            Kind::ApprovalDenied
        };
        let recorded = Entry::new(kind)
            .with(serde_json::json!({ "request_id": request_id, "device_name": rows::text(request, 2)? }))
            .stmt(rq, &caller.user_id, Actor::from(&caller), If::Changed);
        let done = self
            .commit(Change::new(vec![Stmt::new(
                "UPDATE pending_logins SET state = ?, approver_device_id = ?, sealed_key = ?, responded_at = ? \
                 WHERE id = ? AND user_id = ? AND state = 'pending' AND expires_at > ?",
                vec![
                    state.into(),
                    device.as_str().into(),
                    sealed.into(),
                    now.into(),
                    request_id.as_str().into(),
                    caller.user_id.as_str().into(),
                    now.into(),
                ],
            ), recorded])
            .with_event(&caller.user_id, resolved, When::Changed))
            .await?;
        if !done.one(0) {
            return Err(ApiError::conflict(
                "approval_already_answered",
                "this request was already answered",
            ));
        }
        Ok(
            Reply::ok(serde_json::json!({ "request_id": request_id, "state": state }))?
                .warn(done.warning),
        )
    }
}
