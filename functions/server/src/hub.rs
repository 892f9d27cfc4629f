//! udc-server's in-process hub: every account's `udc_hub::Hub` machine over the server's
//! SQLite, the open sockets' outboxes, and the alarms. It is also core's `Hub` port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::types::Value as Sqlv;
use rusqlite::{params_from_iter, Connection};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use udc_core::{Clock, HubError, SystemClock};
use udc_hub::{
    ConnId, DevicePresence, EventsPage, Hub, NewEvent, Output, SqlStore, SqlValue, StoreError,
    SyncSql,
};

/// What a socket task is told to do.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Close(u16, String),
}

/// The hub's own connection to the server's database (SQLite allows many, WAL keeps them apart).
#[derive(Clone)]
pub struct HubDb(Arc<Mutex<Connection>>);

impl SyncSql for HubDb {
    fn rows(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let err = |e: rusqlite::Error| StoreError(e.to_string());
        let conn = self
            .0
            .lock()
            .map_err(|_| StoreError("hub database lock poisoned".into()))?;
        let mut stmt = conn.prepare_cached(sql).map_err(err)?;
        let width = stmt.column_count();
        let params = params.into_iter().map(|v| match v {
            SqlValue::Null => Sqlv::Null,
            SqlValue::Integer(n) => Sqlv::Integer(n),
            SqlValue::Text(s) => Sqlv::Text(s),
        });
        let mut rows = stmt.query(params_from_iter(params)).map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get::<_, Sqlv>(i).map_err(err)? {
                    Sqlv::Integer(n) => SqlValue::Integer(n),
                    Sqlv::Text(s) => SqlValue::Text(s),
                    Sqlv::Real(f) => SqlValue::Integer(f as i64),
                    Sqlv::Null | Sqlv::Blob(_) => SqlValue::Null,
                });
            }
            out.push(values);
        }
        Ok(out)
    }
}

struct Socket {
    user_id: String,
    outbox: UnboundedSender<Outgoing>,
}

#[derive(Default)]
struct State {
    hubs: HashMap<String, Hub<SqlStore<HubDb>>>,
    sockets: HashMap<ConnId, Socket>,
    alarms: HashMap<String, i64>,
    next_conn: ConnId,
}

pub struct ServerHub {
    db: HubDb,
    state: Mutex<State>,
}

impl ServerHub {
    pub fn open(path: &std::path::Path) -> Result<ServerHub, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|e| e.to_string())?;
        Ok(ServerHub {
            db: HubDb(Arc::new(Mutex::new(conn))),
            state: Mutex::new(State::default()),
        })
    }

    /// Runs `f` on the account's machine, then delivers what it asked for.
    fn with_hub<T>(
        &self,
        user_id: &str,
        f: impl FnOnce(&mut Hub<SqlStore<HubDb>>) -> Result<(T, Vec<Output>), StoreError>,
    ) -> Result<T, HubError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| HubError("hub lock poisoned".into()))?;
        let db = self.db.clone();
        let hub = state.hubs.entry(user_id.to_owned()).or_insert_with(|| {
            Hub::new(
                SqlStore {
                    exec: db,
                    user_id: user_id.to_owned(),
                },
                [],
            )
        });
        let (value, outputs) = f(hub).map_err(HubError::new)?;
        let idle = hub.connections().is_empty();
        for output in outputs {
            match output {
                Output::Send(conn, text) => {
                    if let Some(s) = state.sockets.get(&conn) {
                        // A socket whose task has ended is cleaned up by its own close.
                        let _ = s.outbox.send(Outgoing::Text(text));
                    }
                }
                Output::Close(conn, code, reason) => {
                    if let Some(s) = state.sockets.remove(&conn) {
                        let _ = s.outbox.send(Outgoing::Close(code, reason));
                    }
                }
                Output::Alarm(at) => {
                    state.alarms.insert(user_id.to_owned(), at);
                }
            }
        }
        if idle {
            // Nothing lives only in memory: a hub without sockets is rebuilt from SQLite on demand.
            state.hubs.remove(user_id);
            state.alarms.remove(user_id);
        }
        Ok(value)
    }

    pub fn connect(
        &self,
        user_id: &str,
        device_id: &str,
        resume_after: Option<u64>,
    ) -> Result<(ConnId, UnboundedReceiver<Outgoing>), HubError> {
        let (tx, rx) = unbounded_channel();
        let conn = {
            let mut state = self
                .state
                .lock()
                .map_err(|_| HubError("hub lock poisoned".into()))?;
            state.next_conn += 1;
            let conn = state.next_conn;
            state.sockets.insert(
                conn,
                Socket {
                    user_id: user_id.to_owned(),
                    outbox: tx,
                },
            );
            conn
        };
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| {
            Ok(((), hub.connect(conn, device_id, resume_after, now)?))
        })?;
        Ok((conn, rx))
    }

    fn user_of(&self, conn: ConnId) -> Option<String> {
        self.state
            .lock()
            .ok()?
            .sockets
            .get(&conn)
            .map(|s| s.user_id.clone())
    }

    pub fn frame(&self, conn: ConnId, text: &str) -> Result<(), HubError> {
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        let now = SystemClock.now_ms();
        self.with_hub(&user, |hub| Ok(((), hub.frame(conn, text, now)?)))
    }

    pub fn closed(&self, conn: ConnId, user_id: &str) -> Result<(), HubError> {
        if let Ok(mut state) = self.state.lock() {
            state.sockets.remove(&conn);
        }
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| Ok(((), hub.closed(conn, now)?)))
    }

    /// Runs every alarm that is due.
    pub fn tick(&self) {
        let now = SystemClock.now_ms();
        let due: Vec<String> = match self.state.lock() {
            Ok(state) => state
                .alarms
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(u, _)| u.clone())
                .collect(),
            Err(_) => return,
        };
        for user in due {
            if let Err(e) = self.with_hub(&user, |hub| Ok(((), hub.alarm(now)?))) {
                eprintln!("udc-server: hub alarm for {user}: {e}");
            }
        }
    }
}

impl udc_core::Hub for ServerHub {
    async fn publish(&self, user_id: &str, event: NewEvent) -> Result<(), HubError> {
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| {
            let (_, out) = hub.publish(event, now)?;
            Ok(((), out))
        })
    }

    async fn presence(&self, user_id: &str) -> Result<Vec<DevicePresence>, HubError> {
        self.with_hub(user_id, |hub| Ok((hub.presence()?, Vec::new())))
    }

    async fn disconnect(&self, user_id: &str, device_id: &str) -> Result<(), HubError> {
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| Ok(((), hub.disconnect(device_id, now)?)))
    }

    async fn events_after(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
    ) -> Result<EventsPage, HubError> {
        self.with_hub(user_id, |hub| {
            Ok((hub.events_after(device_id, after)?, Vec::new()))
        })
    }
}
