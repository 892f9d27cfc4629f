//! udc-core: all of udc's HTTP API logic, pure. A host converts its request into an
//! `http::Request<Vec<u8>>`, supplies the ports, and sends back the `http::Response<Vec<u8>>`.

pub mod access_log;
pub mod account;
pub mod activity;
pub mod app_shell;
pub mod approval;
pub mod auth;
pub mod blob;
mod cbor;
pub mod clipboard;
pub mod config;
pub mod conflict;
pub mod crypto;
pub mod devices;
pub mod directory;
pub mod error;
mod events;
pub mod files;
pub mod handoff;
pub mod idempotency;
pub mod maintenance;
pub mod migrations;
pub mod passkeys;
pub mod ports;
pub mod ready;
pub mod realtime;
pub mod recovery;
pub mod remote;
pub mod request_id;
pub mod routing;
pub mod rows;
pub mod settings;
mod sigv4;
pub mod throttle;
pub mod tokens;
pub mod validate;
pub mod web;
pub mod webauthn;

use http::{HeaderValue, Method, Request, Response, StatusCode};

pub use config::Config;
pub use error::{ApiError, ApiResult};
pub use ports::{
    Clock, Http, HttpError, Hub, HubError, OsRandom, Ports, Random, Row, Sql, SqlError, Stmt,
    SystemClock, Value,
};
pub use realtime::RealtimeGrant;
pub use request_id::RequestId;
pub use web::{error_response, InternalDetail};

/// What the host knows about the request beyond HTTP itself.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's address as the platform reports it (Workers: `CF-Connecting-IP`;
    /// udc-server: the socket peer).
    pub client_ip: Option<String>,
    /// The account whose storage the host routed the request to, where each account has its
    /// own (a Durable Object): a sign-up there creates this account. `None` where one database
    /// holds every account.
    pub account: Option<String>,
}

/// One request as handlers see it: time and client address already settled.
pub struct Rq<'a> {
    pub method: &'a Method,
    pub headers: &'a http::HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub now_ms: i64,
    pub client_ip: Option<String>,
    /// `RequestContext::account`.
    pub account: Option<String>,
}

pub struct Core<P: Ports> {
    pub ports: P,
    pub config: Config,
    /// Access tokens whose signature was checked (a host that keeps its Core keeps these).
    verified: tokens::VerifiedTokens,
}

/// Where a request goes, before its method is checked.
enum Route<'a> {
    Health,
    Ready,
    Prelogin,
    Register,
    Login,
    Refresh,
    Logout,
    Account,
    AccountKey,
    AccountPassword,
    AccountRecovery,
    AccountActivity,
    Recover,
    RecoverReset,
    PasskeyRegisterOptions,
    PasskeyRegister,
    PasskeySignInOptions,
    PasskeySignIn,
    Passkeys,
    Passkey(&'a str),
    AccountSessions,
    AccountSession(&'a str),
    DeviceRegister,
    Devices,
    Device(&'a str),
    DeviceTrust(&'a str),
    DeviceTrustTarget(&'a str, &'a str),
    Events,
    Realtime,
    RealtimeTicket,
    FilesInitiate,
    FilesPartDone,
    FilesComplete,
    Files,
    FilesShared,
    File(&'a str),
    FileMetadata(&'a str),
    FileUpload(&'a str),
    FileParts(&'a str),
    FileDownload(&'a str),
    FileConfirm(&'a str),
    FileShare(&'a str),
    FileRestore(&'a str),
    ApprovalRequest,
    ApprovalPending,
    Approval(&'a str),
    ApprovalRespond,
    Clipboard,
    ClipboardLatest,
    ClipboardHistory,
    ClipboardPrefs,
    ClipboardItem(&'a str),
    Settings,
    SettingsPolicies,
    SettingsPolicy(&'a str),
    SettingsConflicts,
    SettingsResolve(&'a str),
    SettingsResolutions,
    SyncBatch,
    Handoffs,
    Handoff(&'a str),
    HandoffTake(&'a str),
    RemoteRequest,
    RemoteSession(&'a str),
    RemoteApprove(&'a str),
    RemoteDeny(&'a str),
    RemoteHeartbeat(&'a str),
    RemoteInput(&'a str),
    RemoteSessions,
    IceServers,
    TestPurgeFiles,
}

impl<'a> Route<'a> {
    fn find(path: &'a str) -> Option<Route<'a>> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        Some(match segments.as_slice() {
            ["health"] => Route::Health,
            ["ready"] => Route::Ready,
            ["auth", "prelogin"] => Route::Prelogin,
            ["auth", "register"] => Route::Register,
            ["auth", "login"] => Route::Login,
            ["auth", "token", "refresh"] => Route::Refresh,
            ["auth", "logout"] => Route::Logout,
            ["auth", "recovery"] => Route::Recover,
            ["auth", "recovery", "reset"] => Route::RecoverReset,
            ["auth", "webauthn", "register", "options"] => Route::PasskeyRegisterOptions,
            ["auth", "webauthn", "register"] => Route::PasskeyRegister,
            ["auth", "webauthn", "login", "options"] => Route::PasskeySignInOptions,
            ["auth", "webauthn", "login"] => Route::PasskeySignIn,
            ["account", "passkeys"] => Route::Passkeys,
            ["account", "passkeys", id] => Route::Passkey(id),
            ["account"] => Route::Account,
            ["account", "key"] => Route::AccountKey,
            ["account", "password"] => Route::AccountPassword,
            ["account", "recovery"] => Route::AccountRecovery,
            ["account", "activity"] => Route::AccountActivity,
            ["account", "sessions"] => Route::AccountSessions,
            ["account", "sessions", id] => Route::AccountSession(id),
            ["devices", "register"] => Route::DeviceRegister,
            ["devices"] => Route::Devices,
            ["devices", id] => Route::Device(id),
            ["devices", id, "trust"] => Route::DeviceTrust(id),
            ["devices", id, "trust", target] => Route::DeviceTrustTarget(id, target),
            ["events"] => Route::Events,
            ["realtime"] => Route::Realtime,
            ["realtime", "ticket"] => Route::RealtimeTicket,
            ["files", "upload", "initiate"] => Route::FilesInitiate,
            ["files", "upload", "part"] => Route::FilesPartDone,
            ["files", "upload", "complete"] => Route::FilesComplete,
            ["files"] => Route::Files,
            ["files", "shared"] => Route::FilesShared,
            ["files", id] => Route::File(id),
            ["files", id, "metadata"] => Route::FileMetadata(id),
            ["files", id, "upload"] => Route::FileUpload(id),
            ["files", id, "parts"] => Route::FileParts(id),
            ["files", id, "download"] => Route::FileDownload(id),
            ["files", id, "confirm-download"] => Route::FileConfirm(id),
            ["files", id, "share"] => Route::FileShare(id),
            ["files", id, "restore"] => Route::FileRestore(id),
            ["auth", "approval", "request"] => Route::ApprovalRequest,
            ["auth", "approval", "pending"] => Route::ApprovalPending,
            ["auth", "approval", id] => Route::Approval(id),
            ["auth", "biometric", "respond"] => Route::ApprovalRespond,
            ["sync", "clipboard"] => Route::Clipboard,
            ["sync", "clipboard", "latest"] => Route::ClipboardLatest,
            ["sync", "clipboard", "history"] => Route::ClipboardHistory,
            ["sync", "clipboard", "preferences"] => Route::ClipboardPrefs,
            ["sync", "clipboard", "items", id] => Route::ClipboardItem(id),
            ["sync", "settings"] => Route::Settings,
            ["sync", "settings", "policies"] => Route::SettingsPolicies,
            ["sync", "settings", "policies", ns] => Route::SettingsPolicy(ns),
            ["sync", "settings", "conflicts"] => Route::SettingsConflicts,
            ["sync", "settings", "conflicts", id, "resolve"] => Route::SettingsResolve(id),
            ["sync", "settings", "resolutions"] => Route::SettingsResolutions,
            ["sync", "batch"] => Route::SyncBatch,
            ["sync", "handoff"] => Route::Handoffs,
            ["sync", "handoff", key] => Route::Handoff(key),
            ["sync", "handoff", key, "take"] => Route::HandoffTake(key),
            ["remote", "session", "request"] => Route::RemoteRequest,
            ["remote", "session", id] => Route::RemoteSession(id),
            ["remote", "session", id, "approve"] => Route::RemoteApprove(id),
            ["remote", "session", id, "deny"] => Route::RemoteDeny(id),
            ["remote", "session", id, "heartbeat"] => Route::RemoteHeartbeat(id),
            ["remote", "session", id, "input"] => Route::RemoteInput(id),
            ["remote", "sessions"] => Route::RemoteSessions,
            ["remote", "ice-servers"] => Route::IceServers,
            ["test", "purge-files"] => Route::TestPurgeFiles,
            _ => return None,
        })
    }

    /// Routes a caller reaches without an access token: signing in, a new device asking for
    /// approval and polling with its own secret, the socket (its one-use ticket), and the test
    /// purge (it checks the token at the real time, not the moved clock).
    fn public(&self) -> bool {
        matches!(
            self,
            Route::Health
                | Route::Ready
                | Route::Prelogin
                | Route::Register
                | Route::Login
                | Route::Refresh
                | Route::Recover
                | Route::RecoverReset
                | Route::PasskeySignInOptions
                | Route::PasskeySignIn
                | Route::ApprovalRequest
                | Route::Approval(_)
                | Route::Realtime
                | Route::TestPurgeFiles
        )
    }

    /// Whether an answer may be kept for replay under an Idempotency-Key: every change but
    /// those whose answer holds a secret (a device's new tokens, a socket ticket, presigned
    /// URLs), which the server keeps only hashed or not at all, deleting the account (its
    /// keys go with it; a retry finds it gone), and what carries the password's proof (a kept
    /// request hash would be an unpeppered check of it).
    fn replayable(&self, method: &Method) -> bool {
        *method != Method::GET
            && !matches!(
                self,
                Route::DeviceRegister
                    | Route::RealtimeTicket
                    | Route::FileParts(_)
                    | Route::Account
                    | Route::AccountKey
                    | Route::AccountPassword
                    | Route::AccountRecovery
                    | Route::PasskeyRegister
            )
    }

    fn methods(&self) -> &'static [Method] {
        match self {
            Route::Health
            | Route::Ready
            | Route::Devices
            | Route::Events
            | Route::Realtime
            | Route::Files
            | Route::FilesShared
            | Route::FileMetadata(_)
            | Route::FileUpload(_)
            | Route::FileDownload(_)
            | Route::ApprovalPending
            | Route::Approval(_)
            | Route::ClipboardLatest
            | Route::SettingsPolicies
            | Route::SettingsConflicts
            | Route::SettingsResolutions
            | Route::Handoffs
            | Route::RemoteSessions
            | Route::AccountActivity
            | Route::Passkeys
            | Route::IceServers => &[Method::GET],
            Route::Passkey(_) => &[Method::DELETE],
            Route::RemoteSession(_) | Route::AccountSessions => &[Method::GET, Method::DELETE],
            Route::AccountSession(_) => &[Method::DELETE],
            Route::Account => &[Method::GET, Method::DELETE],
            Route::AccountKey | Route::AccountRecovery => &[Method::PUT],
            Route::File(_) => &[Method::DELETE],
            Route::ClipboardHistory | Route::ClipboardItem(_) => &[Method::GET, Method::DELETE],
            Route::ClipboardPrefs => &[Method::GET, Method::PUT],
            Route::SettingsPolicy(_) => &[Method::PUT],
            Route::Settings => &[Method::GET, Method::POST],
            Route::Handoff(_) => &[Method::PUT, Method::DELETE],
            Route::Device(_) => &[Method::GET, Method::PUT, Method::DELETE],
            Route::DeviceTrustTarget(..) => &[Method::DELETE],
            _ => &[Method::POST],
        }
    }
}

impl<P: Ports> Core<P> {
    pub fn new(ports: P, config: Config) -> Self {
        Core {
            ports,
            config,
            verified: tokens::VerifiedTokens::default(),
        }
    }

    /// The request as handlers see it, with time and client address settled.
    pub(crate) fn rq<'r>(&self, req: &'r Request<Vec<u8>>, ctx: RequestContext) -> Rq<'r> {
        Rq {
            method: req.method(),
            headers: req.headers(),
            query: req.uri().query(),
            body: req.body(),
            now_ms: self.now_ms(req.headers()),
            account: ctx.account.clone(),
            client_ip: self.client_ip(req.headers(), ctx),
        }
    }

    pub async fn handle(&self, req: Request<Vec<u8>>, ctx: RequestContext) -> Response<Vec<u8>> {
        let rq = self.rq(&req, ctx);
        let path = req.uri().path();
        let Some(route) = Route::find(path) else {
            return web::no_route(path);
        };
        if !route.methods().contains(rq.method) {
            let allowed: Vec<&str> = route.methods().iter().map(Method::as_str).collect();
            let mut resp = error_response(&ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!(
                    "{} is not allowed here; use {}",
                    rq.method,
                    allowed.join(", ")
                ),
            ));
            if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                resp.headers_mut().insert(http::header::ALLOW, v);
            }
            return resp;
        }
        if route.public() {
            return web::render(self.dispatch(route, &rq).await);
        }
        // Authenticate before any input is read, so a caller without a valid token learns only
        // that (the handlers check the session itself with their first reads).
        let claims = match self.bearer_claims(&rq) {
            Ok(c) => c,
            Err(e) => return error_response(&e),
        };
        let caller = access_log::Caller {
            account_id: claims.sub.clone(),
            device_id: claims.did.clone(),
        };
        let mut resp = self.handle_as(route, &rq, &claims, path).await;
        resp.extensions_mut().insert(caller);
        resp
    }

    /// A request whose access token was checked.
    async fn handle_as(
        &self,
        route: Route<'_>,
        rq: &Rq<'_>,
        claims: &tokens::AccessClaims,
        path: &str,
    ) -> Response<Vec<u8>> {
        if !route.replayable(rq.method) {
            return web::render(self.dispatch(route, rq).await);
        }
        // Every change takes an Idempotency-Key: a retry with the key gets the first answer
        // and changes nothing twice. Per account and per method and path (one key on two
        // devices' paths is two requests).
        let operation = format!("{} {path}", rq.method);
        let result = match self.claim(rq, &claims.sub, &operation).await {
            Ok(idempotency::Claimed::Replay(reply)) => Ok(reply),
            Ok(idempotency::Claimed::Run(claim)) => {
                let result = self.dispatch(route, rq).await;
                self.settle(claim, result).await
            }
            Err(e) => Err(e),
        };
        web::render(result)
    }

    async fn dispatch(&self, route: Route<'_>, rq: &Rq<'_>) -> ApiResult<web::Reply> {
        match route {
            Route::Health => web::Reply::ok(serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
            })),
            Route::Ready => self.ready().await,
            Route::Prelogin => self.prelogin(rq).await,
            Route::Register => self.register(rq).await,
            Route::Login => self.login(rq).await,
            Route::Refresh => self.refresh(rq).await,
            Route::Logout => self.logout(rq).await,
            Route::AccountSessions => match *rq.method {
                Method::GET => self.list_sessions(rq).await,
                _ => self.end_other_sessions(rq).await,
            },
            Route::AccountSession(id) => self.end_session(rq, id).await,
            Route::Account => match *rq.method {
                Method::GET => self.get_account(rq).await,
                _ => self.delete_account(rq).await,
            },
            Route::AccountKey => self.keep_wrapped_key(rq).await,
            Route::AccountPassword => self.change_password(rq).await,
            Route::AccountRecovery => self.set_recovery(rq).await,
            Route::AccountActivity => self.list_activity(rq).await,
            Route::Recover => self.recover(rq).await,
            Route::PasskeyRegisterOptions => self.passkey_register_options(rq).await,
            Route::PasskeyRegister => self.passkey_register(rq).await,
            Route::PasskeySignInOptions => self.passkey_sign_in_options(rq).await,
            Route::PasskeySignIn => self.passkey_sign_in(rq).await,
            Route::Passkeys => self.passkeys(rq).await,
            Route::Passkey(id) => self.remove_passkey(rq, id).await,
            Route::RecoverReset => self.reset_password(rq).await,
            Route::DeviceRegister => self.register_device(rq).await,
            Route::Devices => self.list_devices(rq).await,
            Route::Device(id) => match *rq.method {
                Method::GET => self.get_device(rq, id).await,
                Method::PUT => self.update_device(rq, id).await,
                _ => self.remove_device(rq, id).await,
            },
            Route::DeviceTrust(id) => self.add_trust(rq, id).await,
            Route::DeviceTrustTarget(id, target) => self.remove_trust(rq, id, target).await,
            Route::Events => self.events(rq).await,
            Route::RealtimeTicket => self.realtime_ticket(rq).await,
            Route::FilesInitiate => self.initiate_upload(rq).await,
            Route::FilesPartDone => self.record_part(rq).await,
            Route::FilesComplete => self.complete_upload(rq).await,
            Route::Files => self.list_files(rq).await,
            Route::FilesShared => self.shared_files(rq).await,
            Route::File(id) => self.delete_file(rq, id).await,
            Route::FileMetadata(id) => self.file_metadata(rq, id).await,
            Route::FileUpload(id) => self.upload_status(rq, id).await,
            Route::FileParts(id) => self.presign_parts(rq, id).await,
            Route::FileDownload(id) => self.download_file(rq, id).await,
            Route::FileConfirm(id) => self.confirm_download(rq, id).await,
            Route::FileShare(id) => self.share_file(rq, id).await,
            Route::FileRestore(id) => self.restore_file(rq, id).await,
            Route::ApprovalRequest => self.request_approval(rq).await,
            Route::ApprovalPending => self.pending_approvals(rq).await,
            Route::Approval(id) => self.poll_approval(rq, id).await,
            Route::ApprovalRespond => self.respond_approval(rq).await,
            Route::Clipboard => self.post_clipboard(rq).await,
            Route::ClipboardLatest => self.latest_clipboard(rq).await,
            Route::ClipboardHistory if *rq.method == Method::GET => {
                self.clipboard_history(rq).await
            }
            Route::ClipboardHistory => self.clear_clipboard(rq).await,
            Route::ClipboardPrefs => self.clipboard_prefs(rq).await,
            Route::ClipboardItem(id) if *rq.method == Method::GET => {
                self.clipboard_item(rq, id).await
            }
            Route::ClipboardItem(id) => self.delete_clipboard_item(rq, id).await,
            Route::Settings if *rq.method == Method::GET => self.get_settings(rq).await,
            Route::Settings => self.put_setting(rq).await,
            Route::SettingsPolicies => self.settings_policies(rq, None).await,
            Route::SettingsPolicy(ns) => self.settings_policies(rq, Some(ns)).await,
            Route::SettingsConflicts => self.settings_conflicts(rq).await,
            Route::SettingsResolve(id) => self.resolve_conflict(rq, id).await,
            Route::SettingsResolutions => self.settings_resolutions(rq).await,
            Route::SyncBatch => self.sync_batch(rq).await,
            Route::Handoffs => self.list_handoffs(rq).await,
            Route::Handoff(key) if *rq.method == Method::PUT => self.save_handoff(rq, key).await,
            Route::Handoff(key) => self.delete_handoff(rq, key).await,
            Route::HandoffTake(key) => self.take_handoff(rq, key).await,
            Route::RemoteRequest => self.request_remote(rq).await,
            Route::RemoteSession(id) if *rq.method == Method::GET => self.get_remote(rq, id).await,
            Route::RemoteSession(id) => self.end_remote(rq, id).await,
            Route::RemoteApprove(id) => self.answer_remote(rq, id, true).await,
            Route::RemoteDeny(id) => self.answer_remote(rq, id, false).await,
            Route::RemoteHeartbeat(id) => self.heartbeat_remote(rq, id).await,
            Route::RemoteInput(id) => self.relay_input(rq, id).await,
            Route::RemoteSessions => self.list_remote(rq).await,
            Route::IceServers => self.ice_servers(rq).await,
            // Lets the black-box suite run the scheduled purge at a moved clock, on the caller's
            // own account only (tests run side by side); absent outside test mode.
            Route::TestPurgeFiles if self.config.test_mode => {
                // The token is checked at the real time: a month ahead it would have expired.
                let real = Rq {
                    now_ms: self.ports.clock().now_ms(),
                    client_ip: rq.client_ip.clone(),
                    account: rq.account.clone(),
                    ..*rq
                };
                let caller = self.caller(&real).await?;
                let (files_purged, uploads_aborted) =
                    self.purge_files(rq.now_ms, Some(&caller.user_id)).await?;
                web::Reply::ok(serde_json::json!({
                    "files_purged": files_purged,
                    "uploads_aborted": uploads_aborted,
                }))
            }
            Route::TestPurgeFiles => Err(ApiError::not_found("route")),
            // Hosts that hold sockets upgrade this route before core sees it.
            Route::Realtime => Err(ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "GET /realtime is a WebSocket: send Upgrade: websocket (or poll GET /events)",
            )),
        }
    }

    fn now_ms(&self, headers: &http::HeaderMap) -> i64 {
        let now = self.ports.clock().now_ms();
        if !self.config.test_mode {
            return now;
        }
        // Within a thousand years either way: the times stay ones every host stores exactly.
        const MAX_OFFSET_MS: i64 = 1000 * 366 * 24 * 3600 * 1000;
        let offset = headers
            .get("x-udc-test-clock-offset-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            .clamp(-MAX_OFFSET_MS, MAX_OFFSET_MS);
        now.saturating_add(offset)
    }

    fn client_ip(&self, headers: &http::HeaderMap, ctx: RequestContext) -> Option<String> {
        if self.config.test_mode {
            if let Some(ip) = headers
                .get("x-udc-test-client-ip")
                .and_then(|v| v.to_str().ok())
            {
                return Some(ip.to_owned());
            }
        }
        ctx.client_ip
    }

    /// A fresh random UUID (v4) from the host's randomness.
    pub fn new_id(&self) -> ApiResult<String> {
        let mut bytes = [0u8; 16];
        self.ports
            .random()
            .fill(&mut bytes)
            .map_err(ApiError::internal)?;
        Ok(uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string())
    }
}
