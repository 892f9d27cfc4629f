//! The udc HTTP API as Rust calls. The CLI and the conformance suite both use it, so the
//! suite exercises exactly what users run.

use std::fmt;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kdf::{self, DerivedKeys, KdfParams};
use crate::recovery::RecoveryCode;
use crate::seal;
pub use udc_client::wire::{AccountSession, ActivityEntry};

/// `{"error":{"code","message","request_id"}}` from the server, with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// What the owner quotes to whoever runs the server: its logs name the request by it.
    pub request_id: Option<String>,
}

impl ApiError {
    /// The error an answer with `status` and JSON `body` carries (`fallback` if it says none).
    pub fn from_answer(status: u16, body: &Value, fallback: &str) -> ApiError {
        let error = &body["error"];
        ApiError {
            status,
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"].as_str().unwrap_or(fallback).to_owned(),
            request_id: error["request_id"].as_str().map(str::to_owned),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, HTTP {}", self.message, self.code, self.status)?;
        match &self.request_id {
            Some(id) => write!(f, ", request {id})"),
            None => write!(f, ")"),
        }
    }
}

impl std::error::Error for ApiError {}

#[derive(Debug)]
pub enum Error {
    Api(ApiError),
    Transport(String),
    Local(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(e) => write!(f, "{e}"),
            Error::Transport(e) => write!(f, "cannot reach the server: {e}"),
            Error::Local(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub user_id: String,
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: User,
    pub tokens: TokenPair,
    /// Sent with the next sign-in to this account, so others' failed guesses never lock this
    /// client out (the server counts its failures alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_cookie: Option<String>,
    /// The account key wrapped by the password (none: an account made before account keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_key: Option<String>,
}

/// What a password sign-in leaves the client: the password's keys (its proof is asked again
/// for account changes) and the account key, which seals everything end to end.
pub struct PasswordKeys {
    pub password: DerivedKeys,
    pub account_key: [u8; 32],
    /// The recovery code a new account was made with (shown to the owner once); none at sign-in.
    pub recovery: Option<RecoveryCode>,
}

/// Never prints the keys themselves.
impl fmt::Debug for PasswordKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordKeys { .. }")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub platform: String,
    pub os_version: String,
    pub app_version: String,
    pub capabilities: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_seen_at: String,
    pub trusts: Vec<String>,
    pub trusted_by: Vec<String>,
    pub is_current: bool,
    /// `online`, `idle` or `offline`.
    pub presence: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisteredDevice {
    pub device: Device,
    pub tokens: TokenPair,
}

/// What a device says about itself when it registers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub name: String,
    pub platform: String,
    pub os_version: String,
    pub app_version: String,
    pub capabilities: Vec<String>,
}

impl DeviceInfo {
    /// This machine, as the agent sees it.
    pub fn this_machine(name: Option<String>) -> DeviceInfo {
        // Windows names the machine in COMPUTERNAME (a HOSTNAME there is a Unix shell's).
        let env = if cfg!(windows) {
            ["COMPUTERNAME", "HOSTNAME"]
        } else {
            ["HOSTNAME", "COMPUTERNAME"]
        };
        let named = |n: String| Some(n.trim().to_owned()).filter(|n| !n.is_empty());
        let name = name
            .filter(|n| !n.is_empty())
            .or_else(|| {
                env.iter()
                    .find_map(|v| std::env::var(v).ok().and_then(named))
            })
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .and_then(named)
            })
            .unwrap_or_else(|| "udc device".to_owned());
        let platform = match std::env::consts::OS {
            "linux" => "linux",
            "macos" => "macos",
            "windows" => "windows",
            "ios" => "ios",
            "android" => "android",
            _ => "other",
        };
        DeviceInfo {
            name,
            platform: platform.to_owned(),
            os_version: std::env::consts::ARCH.to_owned(),
            app_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: vec!["clipboard".into(), "files".into()],
        }
    }
}

/// A raw answer, for callers (tests, mostly) that look at status and body themselves.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// One request as it was sent: what an observer sees beside its answer.
pub struct Sent<'a> {
    pub method: &'a Method,
    /// The path with its query string.
    pub path: &'a str,
    pub body: Option<&'a Value>,
    /// The request's own headers (not the client's defaults or the bearer token).
    pub headers: &'a [(&'a str, &'a str)],
}

/// Sees every request and its answer (the conformance suite checks both against the OpenAPI
/// description).
pub type Observer = Arc<dyn Fn(&Sent, &RawResponse) + Send + Sync>;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    headers: Vec<(String, String)>,
    observer: Option<Observer>,
}

impl Client {
    pub fn new(base_url: &str) -> Client {
        Client {
            base: base_url.trim_end_matches('/').to_owned(),
            // Idle connections are dropped before common servers' keep-alive timeouts (Node's
            // is 5 s), so a request never races the server closing the connection under it.
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(4))
                // A server that stops answering fails the request instead of holding it (and a
                // refresh, the session's lock) for ever; each read, so a long transfer is fine.
                .connect_timeout(std::time::Duration::from_secs(10))
                .read_timeout(std::time::Duration::from_secs(30))
                // The owner's list of sessions names the client by it.
                .user_agent(format!(
                    "udc-agent/{} ({})",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS
                ))
                .build()
                .unwrap_or_default(),
            headers: Vec::new(),
            observer: None,
        }
    }

    /// Sends `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_observer(mut self, observer: Observer) -> Client {
        self.observer = Some(observer);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one request and returns whatever came back.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse> {
        // An idempotent request is sent once more if the connection failed under it (a pooled
        // keep-alive connection the server had just closed, a network blip).
        let attempts = if method.is_idempotent() { 2 } else { 1 };
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path));
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            match req.send().await {
                Ok(resp) => break resp,
                Err(e) if attempt < attempts && !e.is_timeout() => continue,
                Err(e) => return Err(Error::Transport(e.to_string())),
            }
        };
        let status = resp.status();
        let answer_headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let answer_body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        let answer = RawResponse {
            status,
            headers: answer_headers,
            body: answer_body,
        };
        if let Some(observe) = &self.observer {
            let sent = Sent {
                method: &method,
                path,
                body,
                headers,
            };
            observe(&sent, &answer);
        }
        Ok(answer)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T> {
        self.call_with(method, path, token, body, &[]).await
    }

    /// `call` with extra request headers (an `Idempotency-Key`).
    pub(crate) async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<T> {
        // A change `raw` may send twice (PUT, DELETE: after a lost connection) carries an
        // Idempotency-Key (the caller's, else a fresh one), so the server changes nothing
        // twice. POSTs are sent once and carry one only where the caller gives it (a key costs
        // the server two more round trips).
        let own_key = (method.is_idempotent()
            && method != Method::GET
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key")))
        .then(fresh_key)
        .flatten();
        let mut headers = headers.to_vec();
        if let Some(key) = &own_key {
            headers.push(("idempotency-key", key));
        }
        let resp = self.raw(method, path, token, body, &headers).await?;
        if !resp.status.is_success() {
            return Err(Error::Api(ApiError::from_answer(
                resp.status.as_u16(),
                &resp.body,
                "the server answered without an error message",
            )));
        }
        let body = if resp.body.is_null() {
            json!(null)
        } else {
            resp.body
        };
        serde_json::from_value(body)
            .map_err(|e| Error::Local(format!("unexpected answer from {path}: {e}")))
    }

    pub async fn prelogin(&self, email: &str) -> Result<KdfParams> {
        #[derive(Deserialize)]
        struct Prelogin {
            kdf: KdfParams,
        }
        let p: Prelogin = self
            .call(
                Method::POST,
                "/auth/prelogin",
                None,
                Some(&json!({ "email": email })),
            )
            .await?;
        Ok(p.kdf)
    }

    /// The keys of `password` for the account of `email` (its KDF parameters from prelogin).
    async fn password_keys(&self, email: &str, password: &str) -> Result<DerivedKeys> {
        derive_blocking(password, &self.prelogin(email).await?).await
    }

    /// Creates an account with a fresh account key, wrapped by the password; the password and
    /// the key never leave this process.
    pub async fn register(&self, email: &str, password: &str) -> Result<(SignedIn, PasswordKeys)> {
        let kdf = KdfParams::new_random().map_err(local)?;
        let keys = derive_blocking(password, &kdf).await?;
        let account_key = seal::new_account_key().map_err(local)?;
        let wrapped = seal::wrap_account_key(&keys.enc_key, &account_key).map_err(local)?;
        let (recovery, kept) = new_recovery(&account_key)?;
        let body = json!({
            "email": email, "kdf": kdf, "auth_key": keys.auth_key_b64(), "wrapped_key": wrapped,
            "recovery": kept,
        });
        let signed = self
            .call(Method::POST, "/auth/register", None, Some(&body))
            .await?;
        let keys = PasswordKeys {
            password: keys,
            account_key,
            recovery: Some(recovery),
        };
        Ok((signed, keys))
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<(SignedIn, PasswordKeys)> {
        self.login_as(email, password, None).await
    }

    /// A sign-in presenting the device cookie of this client's last sign-in, if it kept one.
    /// The account key comes unwrapped; an account made before account keys gets its key (the
    /// password's `enc_key`) wrapped here, so a later password change keeps what it sealed.
    pub async fn login_as(
        &self,
        email: &str,
        password: &str,
        device_cookie: Option<&str>,
    ) -> Result<(SignedIn, PasswordKeys)> {
        let keys = self.password_keys(email, password).await?;
        let mut body = json!({ "email": email, "auth_key": keys.auth_key_b64() });
        if let Some(cookie) = device_cookie {
            body["device_cookie"] = json!(cookie);
        }
        let signed: SignedIn = self
            .call(Method::POST, "/auth/login", None, Some(&body))
            .await?;
        let account_key = seal::unwrap_account_key(&keys.enc_key, signed.wrapped_key.as_deref())
            .map_err(local)?;
        if signed.wrapped_key.is_none() {
            let wrapped = seal::wrap_account_key(&keys.enc_key, &account_key).map_err(local)?;
            let kept = self
                .call::<Value>(
                    Method::PUT,
                    "/account/key",
                    Some(&signed.tokens.access_token),
                    Some(&json!({ "auth_key": keys.auth_key_b64(), "wrapped_key": wrapped })),
                )
                .await;
            match kept {
                // Another client of the account wrapped the same key first.
                Err(e) if e.code() == Some("key_exists") => {}
                other => drop(other?),
            }
        }
        let keys = PasswordKeys {
            password: keys,
            account_key,
            recovery: None,
        };
        Ok((signed, keys))
    }

    /// A new recovery code for the account, with the password's proof; the last one stops
    /// working.
    pub async fn new_recovery_code(
        &self,
        access_token: &str,
        email: &str,
        password: &str,
        account_key: &[u8; 32],
    ) -> Result<RecoveryCode> {
        let keys = self.password_keys(email, password).await?;
        let (code, kept) = new_recovery(account_key)?;
        self.call::<Value>(
            Method::PUT,
            "/account/recovery",
            Some(access_token),
            Some(&json!({ "auth_key": keys.auth_key_b64(), "recovery": kept })),
        )
        .await?;
        Ok(code)
    }

    /// Resets a lost password with the recovery code: takes the account key back (wrapped by
    /// the code's key), unwraps it here, and sets `new_password` wrapping the same key, with a
    /// new recovery code (returned; the one used stops working). Every session of the account
    /// ends; sign in with the new password.
    pub async fn recover(
        &self,
        email: &str,
        code: &RecoveryCode,
        new_password: &str,
    ) -> Result<RecoveryCode> {
        let keys = code.keys().map_err(local)?;
        let proof = keys.auth_key_b64();
        let taken: Value = self
            .call(
                Method::POST,
                "/auth/recovery",
                None,
                Some(&json!({ "email": email, "recovery_auth_key": proof })),
            )
            .await?;
        let wrapped = taken["wrapped_key"].as_str().unwrap_or_default();
        let account_key =
            seal::unwrap_account_key(&keys.wrap_key, Some(wrapped)).map_err(|_| {
                Error::Local(
                    "the server's recovery key does not open with this code: nothing was changed"
                        .into(),
                )
            })?;
        let kdf = KdfParams::new_random().map_err(local)?;
        let new = derive_blocking(new_password, &kdf).await?;
        let new_wrapped = seal::wrap_account_key(&new.enc_key, &account_key).map_err(local)?;
        let (next, recovery) = new_recovery(&account_key)?;
        self.call::<Value>(
            Method::POST,
            "/auth/recovery/reset",
            None,
            Some(&json!({
                "email": email, "recovery_auth_key": proof, "new_auth_key": new.auth_key_b64(),
                "kdf": kdf, "wrapped_key": new_wrapped, "recovery": recovery,
            })),
        )
        .await?;
        Ok(next)
    }

    /// Changes the password: proves the current one, and sends the new one's proof, KDF
    /// parameters and the same account key wrapped by it (nothing sealed changes), with a new
    /// recovery code (the last one stops working). Every other session of the account ends;
    /// how many did, and the new code.
    pub async fn change_password(
        &self,
        access_token: &str,
        email: &str,
        passwords: (&str, &str),
        account_key: &[u8; 32],
    ) -> Result<(u64, RecoveryCode)> {
        let (current, new) = passwords;
        let old = self.password_keys(email, current).await?;
        let kdf = KdfParams::new_random().map_err(local)?;
        let keys = derive_blocking(new, &kdf).await?;
        let wrapped = seal::wrap_account_key(&keys.enc_key, account_key).map_err(local)?;
        let (code, recovery) = new_recovery(account_key)?;
        let answer: Value = self
            .call(
                Method::POST,
                "/account/password",
                Some(access_token),
                Some(&json!({
                    "auth_key": old.auth_key_b64(),
                    "new_auth_key": keys.auth_key_b64(),
                    "kdf": kdf,
                    "wrapped_key": wrapped,
                    "recovery": recovery,
                })),
            )
            .await?;
        Ok((answer["ended"].as_u64().unwrap_or(0), code))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        #[derive(Deserialize)]
        struct Refreshed {
            tokens: TokenPair,
        }
        let r: Refreshed = self
            .call(
                Method::POST,
                "/auth/token/refresh",
                None,
                Some(&json!({ "refresh_token": refresh_token })),
            )
            .await?;
        Ok(r.tokens)
    }

    /// Deletes the account, proving the password (derived as at sign-in). `None` when
    /// everything was erased at once; else what the server's scheduled run will finish.
    pub async fn delete_account(
        &self,
        access_token: &str,
        email: &str,
        password: &str,
    ) -> Result<Option<String>> {
        let keys = self.password_keys(email, password).await?;
        let answer: Value = self
            .call(
                Method::DELETE,
                "/account",
                Some(access_token),
                Some(&json!({ "auth_key": keys.auth_key_b64() })),
            )
            .await?;
        Ok(answer["remaining"].as_str().map(str::to_owned))
    }

    pub async fn logout(&self, access_token: &str) -> Result<()> {
        self.call::<Value>(Method::POST, "/auth/logout", Some(access_token), None)
            .await?;
        Ok(())
    }

    pub async fn register_device(
        &self,
        access_token: &str,
        info: &DeviceInfo,
    ) -> Result<RegisteredDevice> {
        let body = serde_json::to_value(info).map_err(|e| Error::Local(e.to_string()))?;
        self.call(
            Method::POST,
            "/devices/register",
            Some(access_token),
            Some(&body),
        )
        .await
    }

    pub async fn devices(&self, access_token: &str) -> Result<Vec<Device>> {
        #[derive(Deserialize)]
        struct List {
            devices: Vec<Device>,
        }
        let l: List = self
            .call(Method::GET, "/devices", Some(access_token), None)
            .await?;
        Ok(l.devices)
    }

    pub async fn device(&self, access_token: &str, id: &str) -> Result<Device> {
        self.call(
            Method::GET,
            &format!("/devices/{id}"),
            Some(access_token),
            None,
        )
        .await
    }

    /// Changes the fields given in `changes` (name, os_version, app_version, capabilities).
    pub async fn update_device(
        &self,
        access_token: &str,
        id: &str,
        changes: &Value,
    ) -> Result<Device> {
        self.call(
            Method::PUT,
            &format!("/devices/{id}"),
            Some(access_token),
            Some(changes),
        )
        .await
    }

    /// Where the account is signed in.
    pub async fn account_sessions(&self, access_token: &str) -> Result<Vec<AccountSession>> {
        #[derive(Deserialize)]
        struct Sessions {
            sessions: Vec<AccountSession>,
        }
        let s: Sessions = self
            .call(Method::GET, "/account/sessions", Some(access_token), None)
            .await?;
        Ok(s.sessions)
    }

    /// The account's security activity, newest first (at most `limit`).
    pub async fn account_activity(
        &self,
        access_token: &str,
        limit: u32,
    ) -> Result<Vec<ActivityEntry>> {
        #[derive(Deserialize)]
        struct Page {
            activity: Vec<ActivityEntry>,
        }
        let page: Page = self
            .call(
                Method::GET,
                &format!("/account/activity?limit={limit}"),
                Some(access_token),
                None,
            )
            .await?;
        Ok(page.activity)
    }

    /// Signs one session of the account out.
    pub async fn end_account_session(&self, access_token: &str, id: &str) -> Result<()> {
        self.call::<Value>(
            Method::DELETE,
            &format!("/account/sessions/{id}"),
            Some(access_token),
            None,
        )
        .await?;
        Ok(())
    }

    /// Signs out every session of the account but this one; how many ended.
    pub async fn end_other_sessions(&self, access_token: &str) -> Result<u64> {
        #[derive(Deserialize)]
        struct Ended {
            ended: u64,
        }
        let e: Ended = self
            .call(
                Method::DELETE,
                "/account/sessions",
                Some(access_token),
                None,
            )
            .await?;
        Ok(e.ended)
    }

    pub async fn remove_device(&self, access_token: &str, id: &str) -> Result<()> {
        self.call::<Value>(
            Method::DELETE,
            &format!("/devices/{id}"),
            Some(access_token),
            None,
        )
        .await?;
        Ok(())
    }

    /// `device_id` trusts `target_device_id` from now on.
    pub async fn trust(
        &self,
        access_token: &str,
        device_id: &str,
        target_device_id: &str,
    ) -> Result<()> {
        let body = json!({ "target_device_id": target_device_id });
        self.call::<Value>(
            Method::POST,
            &format!("/devices/{device_id}/trust"),
            Some(access_token),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn untrust(
        &self,
        access_token: &str,
        device_id: &str,
        target_device_id: &str,
    ) -> Result<()> {
        self.call::<Value>(
            Method::DELETE,
            &format!("/devices/{device_id}/trust/{target_device_id}"),
            Some(access_token),
            None,
        )
        .await?;
        Ok(())
    }
}

fn local(e: anyhow::Error) -> Error {
    Error::Local(e.to_string())
}

/// A fresh recovery code for `account_key`, with what the server keeps of it.
fn new_recovery(account_key: &[u8; 32]) -> Result<(RecoveryCode, udc_client::wire::Recovery)> {
    let code = RecoveryCode::generate().map_err(local)?;
    let kept = code
        .keys()
        .and_then(|k| k.for_server(account_key))
        .map_err(local)?;
    Ok((code, kept))
}

/// Argon2id takes tens of milliseconds of CPU: keep it off the async threads.
async fn derive_blocking(password: &str, kdf: &KdfParams) -> Result<DerivedKeys> {
    let (password, kdf) = (password.to_owned(), kdf.clone());
    tokio::task::spawn_blocking(move || kdf::derive(&password, &kdf))
        .await
        .map_err(|e| Error::Local(e.to_string()))?
        .map_err(|e| Error::Local(e.to_string()))
}

/// 128 random bits, hex. None if the system has no randomness to give (then no key).
pub(crate) fn fresh_key() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(crate::transfer::hex(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_request_the_servers_log_knows_it_by() {
        let body = json!({ "error": {
            "code": "not_found", "message": "device not found", "request_id": "ab12"
        }});
        assert_eq!(
            ApiError::from_answer(404, &body, "refused").to_string(),
            "device not found (not_found, HTTP 404, request ab12)"
        );
        assert_eq!(
            ApiError::from_answer(502, &Value::Null, "refused").to_string(),
            "refused (unknown, HTTP 502)"
        );
    }
}
