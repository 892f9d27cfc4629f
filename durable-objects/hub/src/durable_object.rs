//! `UserHub`: the Durable Object that drives one account's hub on Cloudflare. It uses the
//! WebSocket Hibernation API — sockets are accepted through the state, each carries its
//! connection id and device in an attachment and a device tag — SQLite storage for the log and
//! presence, and an alarm for heartbeats, so an idle account costs nothing and an evicted
//! object rebuilds everything from storage and attachments.
//!
//! Only the udc Worker talks to it (through its namespace binding); clients never reach these
//! routes directly: `/connect` (upgrade), `/take` (a change's events from core's outbox), `/erase`
//! (the account was deleted), `/relay`, `/presence`, `/revoke`, `/events`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue,
    State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::machine::{Conn, ConnId, Hub, Output};
use crate::protocol::{HubFrame, Outboxed, Relay, Revoked};
use crate::sql_store::{SqlStore, SyncSql, AUDIENCE_COLUMN, OUTBOX_TAKEN, SCHEMA, SEQ_TRIGGER};
use crate::store::StoreError;
use udc_sql::{Row, SqlError, Value};

/// Rows in a Durable Object belong to its one account; the column keeps the shared schema.
const ACCOUNT: &str = "self";

#[derive(Serialize, Deserialize)]
struct Attachment {
    conn: ConnId,
    device_id: String,
    session_id: String,
    /// The id of the request that opened the socket, for its log lines (sockets opened before
    /// it was kept have none).
    #[serde(default)]
    request_id: String,
}

/// A line of the Worker's log, JSON like its request lines (Workers Logs indexes the fields).
fn log(fields: serde_json::Value) {
    worker::console_log!("{fields}");
}

pub struct DoSql(SqlStorage);

impl SyncSql for DoSql {
    fn rows(&self, sql: &str, params: Vec<Value>) -> std::result::Result<Vec<Row>, SqlError> {
        let bindings = params
            .into_iter()
            .map(|v| match v {
                Value::Null => SqlStorageValue::Null,
                Value::Integer(n) => SqlStorageValue::Integer(n),
                Value::Real(f) => SqlStorageValue::Float(f),
                Value::Text(s) => SqlStorageValue::String(s),
            })
            .collect::<Vec<_>>();
        let cursor = self.0.exec(sql, bindings).map_err(SqlError::new)?;
        cursor
            .raw()
            .map(|row| {
                let row = row.map_err(SqlError::new)?;
                Ok(row
                    .into_iter()
                    .map(|v| match v {
                        SqlStorageValue::Integer(n) => Value::Integer(n),
                        SqlStorageValue::Float(f) => Value::Real(f),
                        SqlStorageValue::Boolean(b) => Value::Integer(i64::from(b)),
                        SqlStorageValue::String(s) => Value::Text(s),
                        SqlStorageValue::Null | SqlStorageValue::Blob(_) => Value::Null,
                    })
                    .collect())
            })
            .collect()
    }
}

#[durable_object]
pub struct UserHub {
    state: State,
    /// Built on first use after every (re)start, from storage and the sockets' attachments.
    hub: RefCell<Option<Hub<SqlStore<DoSql>>>>,
    sockets: RefCell<HashMap<ConnId, WebSocket>>,
    next_conn: Cell<u64>,
    /// The account was deleted (`/erase`): the close events of its sockets, arriving after,
    /// must not build the hub and store anything again.
    erased: Cell<bool>,
}

fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

fn store_err(e: StoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

impl UserHub {
    fn with_hub<T>(
        &self,
        f: impl FnOnce(&mut Hub<SqlStore<DoSql>>) -> std::result::Result<(T, Vec<Output>), StoreError>,
    ) -> Result<(T, Vec<Output>)> {
        let mut slot = self.hub.borrow_mut();
        if slot.is_none() {
            let sql = self.state.storage().sql();
            for stmt in SCHEMA.split(";\n").filter(|s| s.contains("CREATE")) {
                sql.exec(stmt, None)
                    .map_err(|e| worker::Error::RustError(format!("hub schema: {e}")))?;
            }
            // Added once; on every later start SQLite says the column exists.
            if let Err(e) = sql.exec(AUDIENCE_COLUMN.trim(), None) {
                if !e.to_string().contains("duplicate column") {
                    return Err(worker::Error::RustError(format!("hub schema: {e}")));
                }
            }
            for stmt in [SEQ_TRIGGER, OUTBOX_TAKEN] {
                sql.exec(stmt.trim(), None)
                    .map_err(|e| worker::Error::RustError(format!("hub schema: {e}")))?;
            }
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
                    exec: DoSql(sql),
                    user_id: ACCOUNT.to_owned(),
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
        let mut alarm = None;
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
                Output::Alarm(at) => alarm = Some(at),
            }
        }
        if let Some(at) = alarm {
            self.state.storage().set_alarm(at).await?;
        }
        Ok(())
    }

    fn new_conn(&self) -> ConnId {
        // Unique across restarts (the clock moves on while the counter resets), and below 2^53:
        // attachments pass through JavaScript numbers.
        let n = self.next_conn.get().wrapping_add(1);
        self.next_conn.set(n);
        (now_ms() as u64) * 1000 + n % 1000
    }

    async fn accept_socket(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let (Some(device_id), Some(session_id)) = (param("device"), param("session")) else {
            return Response::error("device and session required", 400);
        };
        let resume_after = param("resume_after").and_then(|v| v.parse::<u64>().ok());
        let request_id = param("request_id").unwrap_or_default();
        let pair = WebSocketPair::new()?;
        let conn = self.new_conn();
        self.state
            .accept_websocket_with_tags(&pair.server, &[device_id.as_str()]);
        pair.server.serialize_attachment(Attachment {
            conn,
            device_id: device_id.clone(),
            session_id: session_id.clone(),
            request_id: request_id.clone(),
        })?;
        self.with_hub(|_| Ok(((), Vec::new())))?;
        self.sockets.borrow_mut().insert(conn, pair.server);
        let ((), out) = self.with_hub(|hub| {
            Ok((
                (),
                hub.connect(conn, &device_id, &session_id, resume_after, now_ms())?,
            ))
        })?;
        self.dispatch(out).await?;
        log(serde_json::json!({
            "level": "info", "message": "socket open",
            "request_id": request_id, "device_id": device_id,
        }));
        Response::from_websocket(pair.client)
    }

    fn conn_of(ws: &WebSocket) -> Option<ConnId> {
        ws.deserialize_attachment::<Attachment>()
            .ok()
            .flatten()
            .map(|a| a.conn)
    }
}

impl DurableObject for UserHub {
    fn new(state: State, _env: Env) -> Self {
        UserHub {
            state,
            hub: RefCell::new(None),
            sockets: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            erased: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        match path.as_str() {
            "/connect" => self.accept_socket(req).await,
            "/take" => {
                let batch: Vec<Outboxed> = req.json().await?;
                // One synchronous step: the object's storage commits its writes together, so
                // the events and the last id taken are kept or lost as one.
                let (taken, out) = self.with_hub(|hub| hub.take_outboxed(batch, now_ms()))?;
                self.dispatch(out).await?;
                Response::from_json(&serde_json::json!({ "taken": taken }))
            }
            "/relay" => {
                let relay: Relay = req.json().await?;
                let (reached, out) = self.with_hub(|hub| {
                    let out = hub.relay(relay, now_ms());
                    Ok((out.len(), out))
                })?;
                self.dispatch(out).await?;
                Response::from_json(&serde_json::json!({ "reached": reached }))
            }
            "/erase" => {
                // The account was deleted: its sockets close, then everything it stored here
                // goes (the log, presence, the outbox's last id, the alarm).
                let ((), out) =
                    self.with_hub(|hub| Ok(((), hub.revoke(&Revoked::Account, now_ms())?)))?;
                self.dispatch(out).await?;
                self.erased.set(true);
                self.sockets.borrow_mut().clear();
                *self.hub.borrow_mut() = None;
                let storage = self.state.storage();
                storage.delete_alarm().await?;
                storage.delete_all().await?;
                Response::empty()
            }
            "/presence" => {
                let (presence, _) = self.with_hub(|hub| Ok((hub.presence()?, Vec::new())))?;
                Response::from_json(&presence)
            }
            "/revoke" => {
                let revoked: Revoked = req.json().await?;
                let ((), out) = self.with_hub(|hub| Ok(((), hub.revoke(&revoked, now_ms())?)))?;
                self.dispatch(out).await?;
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
                    self.with_hub(|hub| Ok((hub.events_after(&device, after)?, Vec::new())))?;
                Response::from_json(&page)
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        if self.erased.get() {
            return Ok(());
        }
        let Some(conn) = Self::conn_of(&ws) else {
            return Ok(());
        };
        self.sockets
            .borrow_mut()
            .entry(conn)
            .or_insert_with(|| ws.clone());
        let out = match message {
            WebSocketIncomingMessage::String(text) => {
                self.with_hub(|hub| Ok(((), hub.frame(conn, &text, now_ms())?)))?
                    .1
            }
            WebSocketIncomingMessage::Binary(_) => {
                let _ = ws.send_with_str(
                    HubFrame::error("malformed_frame", "frames are JSON text").to_text(),
                );
                Vec::new()
            }
        };
        self.dispatch(out).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        if self.erased.get() {
            return Ok(());
        }
        let Some(conn) = Self::conn_of(&ws) else {
            return Ok(());
        };
        if let Ok(Some(a)) = ws.deserialize_attachment::<Attachment>() {
            log(serde_json::json!({
                "level": "info", "message": "socket closed",
                "request_id": a.request_id, "device_id": a.device_id, "code": code,
            }));
        }
        self.sockets.borrow_mut().remove(&conn);
        let _ = ws.close(Some(1000), Some("closed"));
        let ((), out) = self.with_hub(|hub| Ok(((), hub.closed(conn, now_ms())?)))?;
        self.dispatch(out).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        if self.erased.get() {
            return Ok(());
        }
        let Some(conn) = Self::conn_of(&ws) else {
            return Ok(());
        };
        self.sockets.borrow_mut().remove(&conn);
        let ((), out) = self.with_hub(|hub| Ok(((), hub.closed(conn, now_ms())?)))?;
        self.dispatch(out).await
    }

    async fn alarm(&self) -> Result<Response> {
        let ((), out) = self.with_hub(|hub| Ok(((), hub.alarm(now_ms())?)))?;
        self.dispatch(out).await?;
        Response::empty()
    }
}
