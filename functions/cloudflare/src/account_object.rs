//! `UserHub`: one account's Durable Object. It holds the account's data in its own SQLite —
//! core's whole schema, migrated on first use — runs core over it for every request the Worker
//! routes here, and is the account's hub: presence, the event log (in the same SQLite, so a
//! change and its event are one transaction) and signaling, with the WebSocket Hibernation API
//! (sockets carry their connection in an attachment, so an evicted object rebuilds everything
//! from storage). Its alarm serves the hub's heartbeats and the account's hourly upkeep.
//!
//! Only the Worker reaches it (through its namespace binding). A client's request arrives with
//! `FORWARDED` set by the Worker; the rest are the hub's own routes, which the Worker's core (the
//! directory's and whatever an account left in D1) calls: `/take`, `/relay`, `/presence`,
//! `/revoke`, `/erase`, `/events`.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use udc_core::access_log::{Caller, ErrorCode};
use udc_core::{error_response, request_id, ApiError, Core, RequestContext, RequestId, Sql};
use udc_hub::{
    Conn, ConnId, DevicePresence, EventsPage, Hub, HubFrame, Outboxed, Output, Relay, Revoked,
    SqlStore, StoreError,
};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::d1::D1Sql;
use crate::log_event;
use crate::object_sql::ObjectSql;
use crate::object_store;
use crate::ports::{AnyHub, AnySql, CfPorts};

/// Set by the Worker on a client's request it routes here (a client's own header of the name
/// never arrives: the Worker sets it on every request it forwards and on no other).
pub const FORWARDED: &str = "x-udc-forwarded";
/// The account the object is, on every request from the Worker.
pub const ACCOUNT: &str = "x-udc-account";
/// How the Worker knew the account of a client's request (`Route`).
pub const ROUTE: &str = "x-udc-route";
/// On the answer to a request that names an account this object is not (and never was): the
/// Worker answers it itself.
pub const NOT_HERE: &str = "x-udc-not-here";
/// On the answer to a forwarded request, for the Worker's log line of it (core's answer
/// carries them as extensions, which do not cross the hop); the Worker removes them.
pub const LOG_ACCOUNT: &str = "x-udc-log-account";
pub const LOG_DEVICE: &str = "x-udc-log-device";
pub const LOG_ERROR: &str = "x-udc-log-error";

/// How the Worker knew a request's account: what the object may do for it on first contact.
#[derive(Clone, Copy, PartialEq)]
pub enum Route {
    /// A token signed for it, or the directory: an account that is (or was made).
    Known,
    /// The request names it, nothing vouches for it (a refresh token's prefix, a passkey's user
    /// handle): an object that holds nothing, of an account D1 does not hold either, writes
    /// nothing and says so (`NOT_HERE`).
    Named,
    /// A sign-up to an email nobody holds, sent to a new account's object: nothing stays of it
    /// unless the account is made.
    New,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Known => "known",
            Route::Named => "named",
            Route::New => "new",
        }
    }

    fn of(value: Option<String>) -> Route {
        match value.as_deref() {
            Some("named") => Route::Named,
            Some("new") => Route::New,
            _ => Route::Known,
        }
    }
}

/// Kept in the object's storage once D1 holds nothing more of its account.
const MOVED_FROM_D1: &str = "moved_from_d1";
/// The object's account, kept in its storage.
const ACCOUNT_KEY: &str = "account";
/// When the account's upkeep is next due, kept in storage: an instance woken by its alarm is
/// new, and must know whether the upkeep is what woke it.
const UPKEEP_KEY: &str = "upkeep_at";

/// The account's upkeep (core's maintenance over its own storage) runs this often.
const UPKEEP_EVERY_MS: i64 = 3600 * 1000;

#[derive(Serialize, Deserialize)]
struct Attachment {
    conn: ConnId,
    device_id: String,
    session_id: String,
    /// The id of the request that opened the socket, for its log lines.
    #[serde(default)]
    request_id: String,
}

fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

fn store_err(e: StoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

/// What the object's parts share: the hub machine, its sockets, and the account.
pub struct Shared {
    state: State,
    sql: ObjectSql,
    /// Known from the first request the Worker sends (and kept in storage for the alarm and
    /// sockets of an object that restarted).
    account: RefCell<Option<String>>,
    /// Built on first use after every (re)start, from storage and the sockets' attachments.
    hub: RefCell<Option<Hub<SqlStore<ObjectSql>>>>,
    sockets: RefCell<HashMap<ConnId, WebSocket>>,
    next_conn: Cell<u64>,
    /// When the hub wants its alarm (heartbeats), if it does.
    hub_alarm: Cell<Option<i64>>,
    /// When the account's upkeep is next due (`UPKEEP_KEY`); `None` once there is no account.
    upkeep_at: Cell<Option<i64>>,
}

impl Shared {
    fn account(&self) -> Result<String> {
        self.account
            .borrow()
            .clone()
            .ok_or_else(|| worker::Error::RustError("the object does not know its account".into()))
    }

    fn with_hub<T>(
        &self,
        f: impl FnOnce(
            &mut Hub<SqlStore<ObjectSql>>,
        ) -> std::result::Result<(T, Vec<Output>), StoreError>,
    ) -> Result<(T, Vec<Output>)> {
        let mut slot = self.hub.borrow_mut();
        if slot.is_none() {
            let now = now_ms();
            let mut sockets = self.sockets.borrow_mut();
            let mut conns = Vec::new();
            for ws in self.state.get_websockets() {
                if let Ok(Some(a)) = ws.deserialize_attachment::<Attachment>() {
                    // Heartbeat times are not kept across eviction: each socket gets a fresh window.
                    conns.push((
                        a.conn,
                        Conn {
                            device_id: a.device_id,
                            session_id: a.session_id,
                            last_heartbeat: now,
                        },
                    ));
                    sockets.insert(a.conn, ws);
                }
            }
            *slot = Some(Hub::new(
                SqlStore {
                    exec: self.sql.clone(),
                    user_id: self.account()?,
                },
                conns,
            ));
        }
        match slot.as_mut() {
            Some(hub) => f(hub).map_err(store_err),
            None => Err(worker::Error::RustError("hub not built".into())),
        }
    }

    async fn dispatch(&self, outputs: Vec<Output>) -> Result<()> {
        let mut wanted = None;
        for output in outputs {
            match output {
                Output::Send(conn, text) => {
                    if let Some(ws) = self.sockets.borrow().get(&conn) {
                        // A socket that is already gone is cleaned up by its close event.
                        let _ = ws.send_with_str(&text);
                    }
                }
                Output::Close(conn, code, reason) => {
                    if let Some(ws) = self.sockets.borrow_mut().remove(&conn) {
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Output::Alarm(at) => wanted = Some(at),
            }
        }
        if let Some(at) = wanted {
            self.hub_alarm.set(Some(at));
            self.set_alarm().await?;
        }
        Ok(())
    }

    /// One alarm serves both: the earlier of the hub's and the upkeep's.
    async fn set_alarm(&self) -> Result<()> {
        let at = match (self.hub_alarm.get(), self.upkeep_at.get()) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Ok(()),
        };
        self.state.storage().set_alarm(at).await
    }

    fn new_conn(&self) -> ConnId {
        // Unique across restarts (the clock moves on while the counter resets), and below 2^53:
        // attachments pass through JavaScript numbers.
        let n = self.next_conn.get().wrapping_add(1);
        self.next_conn.set(n);
        (now_ms() as u64) * 1000 + n % 1000
    }

    fn conn_of(ws: &WebSocket) -> Option<ConnId> {
        ws.deserialize_attachment::<Attachment>()
            .ok()
            .flatten()
            .map(|a| a.conn)
    }
}

/// Core's answer with what the Worker's log line of it needs as headers (`LOG_ACCOUNT`...).
fn for_the_log(mut resp: http::Response<Vec<u8>>) -> http::Response<Vec<u8>> {
    let caller = resp.extensions().get::<Caller>().cloned();
    let error = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    let fields = [
        (LOG_ACCOUNT, caller.as_ref().map(|c| c.account_id.as_str())),
        (
            LOG_DEVICE,
            caller.as_ref().and_then(|c| c.device_id.as_deref()),
        ),
        (LOG_ERROR, error),
    ];
    for (name, value) in fields {
        if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// Core's hub port inside the object: the machine itself, no hop.
pub struct ObjectHub(Rc<Shared>);

impl udc_core::Hub for ObjectHub {
    /// The log is in the object's SQLite, beside the account's data: core writes a change's
    /// events in the change's own transaction.
    fn logs_in_sql(&self) -> bool {
        true
    }

    async fn logged(
        &self,
        _user_id: &str,
        count: usize,
    ) -> std::result::Result<(), udc_core::HubError> {
        let (_, out) = self
            .0
            .with_hub(|hub| Ok(((), hub.logged(count as u64, now_ms())?)))
            .map_err(udc_core::HubError::new)?;
        self.0.dispatch(out).await.map_err(udc_core::HubError::new)
    }

    async fn relay(
        &self,
        _user_id: &str,
        relay: Relay,
    ) -> std::result::Result<usize, udc_core::HubError> {
        let (reached, out) = self
            .0
            .with_hub(|hub| {
                let out = hub.relay(relay, now_ms());
                Ok((out.len(), out))
            })
            .map_err(udc_core::HubError::new)?;
        self.0
            .dispatch(out)
            .await
            .map_err(udc_core::HubError::new)?;
        Ok(reached)
    }

    async fn presence(
        &self,
        _user_id: &str,
    ) -> std::result::Result<Vec<DevicePresence>, udc_core::HubError> {
        self.0
            .with_hub(|hub| Ok((hub.presence()?, Vec::new())))
            .map(|(p, _)| p)
            .map_err(udc_core::HubError::new)
    }

    async fn revoke(
        &self,
        _user_id: &str,
        revoked: Revoked,
    ) -> std::result::Result<(), udc_core::HubError> {
        let (_, out) = self
            .0
            .with_hub(|hub| Ok(((), hub.revoke(&revoked, now_ms())?)))
            .map_err(udc_core::HubError::new)?;
        self.0.dispatch(out).await.map_err(udc_core::HubError::new)
    }

    async fn events_after(
        &self,
        _user_id: &str,
        device_id: &str,
        after: u64,
    ) -> std::result::Result<EventsPage, udc_core::HubError> {
        self.0
            .with_hub(|hub| Ok((hub.events_after(device_id, after)?, Vec::new())))
            .map(|(p, _)| p)
            .map_err(udc_core::HubError::new)
    }
}

#[durable_object]
pub struct UserHub {
    shared: Rc<Shared>,
    env: Env,
    /// Core over this object's storage, built (and the storage migrated, and what the account
    /// left in D1 moved in) on the first request of each instance: it keeps its checked tokens
    /// for the instance's life.
    core: OnceCell<Core<CfPorts>>,
    /// The account was deleted and erased here (`/erase`): the close events of its sockets,
    /// arriving after, must not build the hub and store anything again.
    erased: Cell<bool>,
}

impl UserHub {
    /// Learns the account from the Worker's request, or from storage (an alarm, a socket's
    /// message after a restart).
    async fn know_account(&self, req: Option<&Request>) -> Result<String> {
        if let Some(account) = self.stored_account().await? {
            return Ok(account);
        }
        let account = match req {
            Some(req) => req.headers().get(ACCOUNT)?,
            None => None,
        }
        .ok_or_else(|| worker::Error::RustError("the object has no account yet".into()))?;
        self.shared
            .state
            .storage()
            .put(ACCOUNT_KEY, &account)
            .await?;
        *self.shared.account.borrow_mut() = Some(account.clone());
        Ok(account)
    }

    /// The account this object holds, if it holds one yet.
    async fn stored_account(&self) -> Result<Option<String>> {
        if let Some(account) = self.shared.account.borrow().clone() {
            return Ok(Some(account));
        }
        let stored = self
            .shared
            .state
            .storage()
            .get::<String>(ACCOUNT_KEY)
            .await?;
        if let Some(account) = &stored {
            *self.shared.account.borrow_mut() = Some(account.clone());
        }
        Ok(stored)
    }

    /// Core over this object's storage, ready (see `core`); `new`: the object of an account
    /// being made, which D1 never held.
    async fn core(&self, req: Option<&Request>, new: bool) -> Result<&Core<CfPorts>> {
        if let Some(core) = self.core.get() {
            return Ok(core);
        }
        let account = self.know_account(req).await?;
        let config = crate::config(&self.env).map_err(worker::Error::RustError)?;
        let directory = D1Sql(self.env.d1("DB")?);
        // No other event of the object runs meanwhile: two first requests would both move the
        // account's rows in.
        let prepared = self
            .shared
            .state
            .block_concurrency_while(prepare_storage(
                self.shared.clone(),
                D1Sql(self.env.d1("DB")?),
                account.clone(),
                new,
            ))
            .await?;
        prepared.map_err(|e| {
            worker::Error::RustError(format!("preparing the account's storage: {e}"))
        })?;
        let core = Core::new(
            CfPorts {
                sql: AnySql::Object(self.shared.sql.clone()),
                directory,
                hub: AnyHub::Object(ObjectHub(self.shared.clone())),
            },
            config,
        );
        // Another request of this instance may have built it meanwhile: either is the same.
        let _ = self.core.set(core);
        self.schedule_upkeep().await?;
        self.core
            .get()
            .ok_or_else(|| worker::Error::RustError("core not built".into()))
    }

    /// Learns when the account's upkeep is due, and schedules it if it never was.
    async fn schedule_upkeep(&self) -> Result<()> {
        let storage = self.shared.state.storage();
        match storage.get::<i64>(UPKEEP_KEY).await? {
            Some(at) => self.shared.upkeep_at.set(Some(at)),
            None => self.upkeep_next(now_ms() + UPKEEP_EVERY_MS).await?,
        }
        Ok(())
    }

    /// The next upkeep at `at`, kept and in the alarm.
    async fn upkeep_next(&self, at: i64) -> Result<()> {
        self.shared.upkeep_at.set(Some(at));
        self.shared.state.storage().put(UPKEEP_KEY, at).await?;
        self.shared.set_alarm().await
    }

    /// Whether D1 still holds this account (made before accounts had their objects).
    async fn in_d1(&self, account: &str) -> Result<bool> {
        let rows = D1Sql(self.env.d1("DB")?)
            .query(udc_core::Stmt::new(
                "SELECT 1 FROM users WHERE id = ?",
                vec![account.into()],
            ))
            .await
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        Ok(!rows.is_empty())
    }

    /// A client's request, routed here by the Worker.
    async fn serve(&self, req: Request) -> Result<Response> {
        if self.erased.get() {
            return crate::to_worker_response(
                error_response(&ApiError::unauthorized(
                    "unauthorized",
                    "this account no longer exists",
                )),
                "",
            );
        }
        let route = Route::of(req.headers().get(ROUTE)?);
        let first = self.stored_account().await?.is_none();
        if first && route == Route::Named {
            let named = req.headers().get(ACCOUNT)?.unwrap_or_default();
            if !self.in_d1(&named).await? {
                // Nothing is written for a name nobody holds: the Worker answers it.
                let headers = worker::Headers::new();
                headers.set(NOT_HERE, "1")?;
                return Ok(Response::empty()?.with_status(421).with_headers(headers));
            }
        }
        let new = first && route == Route::New;
        let core = self.core(Some(&req), new).await?;
        // The Worker's id for the request: its answer carries it, the object's log lines too.
        let request_id = RequestId::pick(req.headers().get(request_id::HEADER)?.as_deref(), None);
        let ctx = RequestContext {
            client_ip: req.headers().get("cf-connecting-ip")?,
            account: Some(self.shared.account()?),
        };
        let upgrade = req
            .headers()
            .get("upgrade")?
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let req = crate::to_http(req).await?;
        let resp = if upgrade && req.uri().path() == "/realtime" {
            match core.authorize_realtime(&req, ctx).await {
                Ok(grant) => return self.accept_socket(grant, request_id.as_str()).await,
                Err(err) => error_response(&err),
            }
        } else {
            core.handle(req, ctx).await
        };
        if new && !resp.status().is_success() {
            // A sign-up that made no account (bad input, a limit, its email taken meanwhile)
            // leaves nothing behind.
            self.erased.set(true);
            let storage = self.shared.state.storage();
            storage.delete_alarm().await?;
            storage.delete_all().await?;
        }
        crate::to_worker_response(
            request_id::stamp(for_the_log(resp), &request_id),
            request_id.as_str(),
        )
    }

    async fn accept_socket(
        &self,
        grant: udc_core::RealtimeGrant,
        request_id: &str,
    ) -> Result<Response> {
        let shared = &self.shared;
        let pair = WebSocketPair::new()?;
        let conn = shared.new_conn();
        shared
            .state
            .accept_websocket_with_tags(&pair.server, &[grant.device_id.as_str()]);
        pair.server.serialize_attachment(Attachment {
            conn,
            device_id: grant.device_id.clone(),
            session_id: grant.session_id.clone(),
            request_id: request_id.to_owned(),
        })?;
        shared.with_hub(|_| Ok(((), Vec::new())))?;
        shared.sockets.borrow_mut().insert(conn, pair.server);
        let ((), out) = shared.with_hub(|hub| {
            Ok((
                (),
                hub.connect(
                    conn,
                    &grant.device_id,
                    &grant.session_id,
                    grant.resume_after,
                    now_ms(),
                )?,
            ))
        })?;
        shared.dispatch(out).await?;
        log_event(
            false,
            "socket open",
            serde_json::json!({ "request_id": request_id, "device_id": grant.device_id }),
        );
        Response::from_websocket(pair.client)
    }

    /// The hub's own routes, for the Worker's core.
    async fn hub_route(&self, mut req: Request) -> Result<Response> {
        // The hub's tables are core's: the storage is made ready (and the account moved in
        // from D1, which the caller's core works on) before the machine reads them.
        self.core(Some(&req), false).await?;
        let shared = &self.shared;
        match req.path().as_str() {
            "/take" => {
                let batch: Vec<Outboxed> = req.json().await?;
                // One synchronous step: the object's storage commits its writes together, so
                // the events and the last id taken are kept or lost as one.
                let (taken, out) = shared.with_hub(|hub| hub.take_outboxed(batch, now_ms()))?;
                shared.dispatch(out).await?;
                Response::from_json(&serde_json::json!({ "taken": taken }))
            }
            "/relay" => {
                let relay: Relay = req.json().await?;
                let (reached, out) = shared.with_hub(|hub| {
                    let out = hub.relay(relay, now_ms());
                    Ok((out.len(), out))
                })?;
                shared.dispatch(out).await?;
                Response::from_json(&serde_json::json!({ "reached": reached }))
            }
            "/erase" => {
                // The account was deleted where its data was (D1, before it moved here): its
                // sockets close, then everything stored here goes.
                let ((), out) =
                    shared.with_hub(|hub| Ok(((), hub.revoke(&Revoked::Account, now_ms())?)))?;
                shared.dispatch(out).await?;
                self.erased.set(true);
                shared.sockets.borrow_mut().clear();
                *shared.hub.borrow_mut() = None;
                let storage = shared.state.storage();
                storage.delete_alarm().await?;
                storage.delete_all().await?;
                Response::empty()
            }
            "/presence" => {
                let (presence, _) = shared.with_hub(|hub| Ok((hub.presence()?, Vec::new())))?;
                Response::from_json(&presence)
            }
            "/revoke" => {
                let revoked: Revoked = req.json().await?;
                let ((), out) = shared.with_hub(|hub| Ok(((), hub.revoke(&revoked, now_ms())?)))?;
                shared.dispatch(out).await?;
                Response::empty()
            }
            "/events" => {
                let url = req.url()?;
                let param = |name: &str| {
                    url.query_pairs()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                };
                let device = param("device").unwrap_or_default();
                let after = param("after")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let (page, _) =
                    shared.with_hub(|hub| Ok((hub.events_after(&device, after)?, Vec::new())))?;
                Response::from_json(&page)
            }
            _ => Response::error("not found", 404),
        }
    }

    /// Before a socket's event: the account known and its storage ready.
    async fn ready(&self) -> Result<bool> {
        if self.erased.get() {
            return Ok(false);
        }
        self.core(None, false).await?;
        Ok(true)
    }
}

/// Core's migrations on the object's storage, and the account's rows moved in from D1 where it
/// lived before it had its object (once: storage remembers that D1 holds nothing more). A
/// failure is a value: as an error, `block_concurrency_while` would reset the object.
async fn prepare_storage(
    shared: Rc<Shared>,
    d1: D1Sql,
    account: String,
    new: bool,
) -> Result<std::result::Result<(), String>> {
    let sql = &shared.sql;
    if let Err(e) = object_store::migrate(sql, &account, now_ms()).await {
        return Ok(Err(e.to_string()));
    }
    let storage = shared.state.storage();
    if new {
        // A new account's: D1 never held it.
        return Ok(storage
            .put(MOVED_FROM_D1, true)
            .await
            .map_err(|e| e.to_string()));
    }
    if storage
        .get::<bool>(MOVED_FROM_D1)
        .await
        .ok()
        .flatten()
        .is_some()
    {
        return Ok(Ok(()));
    }
    let outputs = RefCell::new(Vec::new());
    let moved = object_store::move_from_d1(sql, &d1, &account, |batch| {
        let (_, out) = shared
            .with_hub(|hub| hub.take_outboxed(batch, now_ms()))
            .map_err(udc_core::SqlError::new)?;
        outputs.borrow_mut().extend(out);
        Ok(())
    })
    .await;
    let moved = match moved {
        Ok(moved) => moved,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if let Err(e) = shared.dispatch(outputs.into_inner()).await {
        return Ok(Err(e.to_string()));
    }
    if let object_store::Moved::Rows(rows) = moved {
        log_event(
            false,
            "account moved from D1 into its object",
            serde_json::json!({ "rows": rows }),
        );
    }
    Ok(storage
        .put(MOVED_FROM_D1, true)
        .await
        .map_err(|e| e.to_string()))
}

impl DurableObject for UserHub {
    fn new(state: State, env: Env) -> Self {
        let sql = ObjectSql::new(&state);
        UserHub {
            shared: Rc::new(Shared {
                state,
                sql,
                account: RefCell::new(None),
                hub: RefCell::new(None),
                sockets: RefCell::new(HashMap::new()),
                next_conn: Cell::new(0),
                hub_alarm: Cell::new(None),
                upkeep_at: Cell::new(None),
            }),
            env,
            core: OnceCell::new(),
            erased: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.headers().has(FORWARDED)? {
            let request_id = req.headers().get(request_id::HEADER)?.unwrap_or_default();
            match self.serve(req).await {
                Ok(resp) => Ok(resp),
                // Logged (with the request's id) by `to_worker_response`; the answer says no more.
                Err(e) => crate::to_worker_response(
                    error_response(&ApiError::internal(format!("in the account's object: {e}"))),
                    &request_id,
                ),
            }
        } else {
            self.hub_route(req).await
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        if !self.ready().await? {
            return Ok(());
        }
        let Some(conn) = Shared::conn_of(&ws) else {
            return Ok(());
        };
        let shared = &self.shared;
        shared
            .sockets
            .borrow_mut()
            .entry(conn)
            .or_insert_with(|| ws.clone());
        let out = match message {
            WebSocketIncomingMessage::String(text) => {
                shared
                    .with_hub(|hub| Ok(((), hub.frame(conn, &text, now_ms())?)))?
                    .1
            }
            WebSocketIncomingMessage::Binary(_) => {
                let _ = ws.send_with_str(
                    HubFrame::error("malformed_frame", "frames are JSON text").to_text(),
                );
                Vec::new()
            }
        };
        shared.dispatch(out).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        if !self.ready().await? {
            return Ok(());
        }
        let Some(conn) = Shared::conn_of(&ws) else {
            return Ok(());
        };
        if let Ok(Some(a)) = ws.deserialize_attachment::<Attachment>() {
            log_event(
                false,
                "socket closed",
                serde_json::json!({ "request_id": a.request_id, "device_id": a.device_id, "code": code }),
            );
        }
        let shared = &self.shared;
        shared.sockets.borrow_mut().remove(&conn);
        let _ = ws.close(Some(1000), Some("closed"));
        let ((), out) = shared.with_hub(|hub| Ok(((), hub.closed(conn, now_ms())?)))?;
        shared.dispatch(out).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        if !self.ready().await? {
            return Ok(());
        }
        let Some(conn) = Shared::conn_of(&ws) else {
            return Ok(());
        };
        let shared = &self.shared;
        shared.sockets.borrow_mut().remove(&conn);
        let ((), out) = shared.with_hub(|hub| Ok(((), hub.closed(conn, now_ms())?)))?;
        shared.dispatch(out).await
    }

    async fn alarm(&self) -> Result<Response> {
        if !self.ready().await? {
            return Response::empty();
        }
        let shared = &self.shared;
        let now = now_ms();
        shared.hub_alarm.set(None);
        let ((), out) = shared.with_hub(|hub| Ok(((), hub.alarm(now)?)))?;
        shared.dispatch(out).await?;
        if shared.upkeep_at.get().is_some_and(|at| at <= now) {
            let core = self.core(None, false).await?;
            let fields = match core.account_maintenance(now).await {
                Ok(swept) => {
                    serde_json::json!({ "job": "account upkeep", "swept": format!("{swept:?}") })
                }
                Err(e) => {
                    serde_json::json!({ "job": "account upkeep", "error": e.internal.unwrap_or(e.message) })
                }
            };
            log_event(fields.get("error").is_some(), "scheduled job done", fields);
            // An account erased (or a sign-up that never made it) has nothing left to keep.
            let lives = core
                .ports
                .sql
                .query(udc_core::Stmt::new(
                    "SELECT 1 FROM users WHERE id = ?",
                    vec![shared.account()?.into()],
                ))
                .await
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            if lives.is_empty() {
                shared.upkeep_at.set(None);
                shared.state.storage().delete(UPKEEP_KEY).await?;
            } else {
                self.upkeep_next(now + UPKEEP_EVERY_MS).await?;
            }
        }
        shared.set_alarm().await?;
        Response::empty()
    }
}
