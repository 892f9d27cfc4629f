//! udc-server's in-process hub: every account's `udc_hub::Hub` machine over the server's
//! SQLite, the open sockets' outboxes, and the alarms. It is also core's `Hub` port.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use udc_core::{Clock, HubError, RealtimeGrant, SystemClock};
use udc_hub::{
    ConnId, DevicePresence, EventsPage, Hub, Output, Relay, Revoked, SqlStore, StoreError, SyncSql,
};
use udc_sql::{Row, SqlError, Value};

use crate::metrics::{HubCounts, METRICS};

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
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        // A panic elsewhere cannot leave a half-run statement behind: recover the connection.
        let conn = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        udc_sql::rusqlite::rows(&conn, sql, &params)
    }
}

struct Socket {
    user_id: String,
    outbox: UnboundedSender<Outgoing>,
}

type AccountHub = Arc<Mutex<Hub<SqlStore<HubDb>>>>;

/// What every account shares. Its lock is held only for map lookups and sends, never across
/// the hub machine's work, so one account's failure cannot stall or poison the others.
#[derive(Default)]
struct State {
    hubs: HashMap<String, AccountHub>,
    sockets: HashMap<ConnId, Socket>,
    alarms: HashMap<String, i64>,
    next_conn: ConnId,
}

pub struct ServerHub {
    db: HubDb,
    state: Mutex<State>,
}

/// Close code for sockets whose account hub failed: reconnect and resume.
const CLOSE_HUB_FAILED: u16 = 1011;

impl ServerHub {
    pub fn open(path: &std::path::Path) -> Result<ServerHub, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        // Synced at every commit (SQLite's default), like core's connection: a device may have
        // an event's number before a power cut, and the log must never hand it out again.
        conn.execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|e| e.to_string())?;
        Ok(ServerHub {
            db: HubDb(Arc::new(Mutex::new(conn))),
            state: Mutex::new(State::default()),
        })
    }

    /// The shared maps. Nothing that can panic runs under this lock, so a poisoned one still
    /// holds consistent maps.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A machine for the account with no sockets: its state is all in SQLite.
    fn machine(&self, user_id: &str) -> Hub<SqlStore<HubDb>> {
        Hub::new(
            SqlStore {
                exec: self.db.clone(),
                user_id: user_id.to_owned(),
            },
            [],
        )
    }

    fn account(&self, user_id: &str) -> AccountHub {
        self.state()
            .hubs
            .entry(user_id.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(self.machine(user_id))))
            .clone()
    }

    /// Runs `f` on the account's machine, then delivers what it asked for, in order. Locks are
    /// taken account first, then the shared maps, never the reverse.
    fn with_hub<T>(
        &self,
        user_id: &str,
        f: impl FnOnce(&mut Hub<SqlStore<HubDb>>) -> Result<(T, Vec<Output>), StoreError>,
    ) -> Result<T, HubError> {
        let account = self.account(user_id);
        let mut hub = account.lock().unwrap_or_else(PoisonError::into_inner);
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut hub)));
        let mut state = self.state();
        let (value, outputs) = match ran {
            Ok(result) => result.map_err(HubError::new)?,
            Err(_) => {
                // A bug in one account's handling: start its machine afresh (everything but the
                // open sockets is in SQLite) and close its sockets so they reconnect.
                *hub = self.machine(user_id);
                state.alarms.remove(user_id);
                let conns: Vec<ConnId> = state
                    .sockets
                    .iter()
                    .filter(|(_, s)| s.user_id == user_id)
                    .map(|(c, _)| *c)
                    .collect();
                for conn in conns {
                    if let Some(s) = state.sockets.remove(&conn) {
                        let _ = s
                            .outbox
                            .send(Outgoing::Close(CLOSE_HUB_FAILED, "hub failed".into()));
                    }
                }
                return Err(HubError("the account's hub failed; it restarts".into()));
            }
        };
        for output in outputs {
            match output {
                Output::Send(conn, text) => {
                    if let Some(s) = state.sockets.get(&conn) {
                        // A socket whose task has ended is cleaned up by its own close.
                        let _ = s.outbox.send(Outgoing::Text(text));
                        METRICS.frame_sent();
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
        // Nothing lives only in memory: a hub without sockets is rebuilt from SQLite on demand.
        // Only the map and this call hold it (counted under the maps' lock, where every lookup
        // happens), so no other call is about to use the machine being dropped.
        if hub.connections().is_empty() && Arc::strong_count(&account) == 2 {
            state.hubs.remove(user_id);
            state.alarms.remove(user_id);
        }
        Ok(value)
    }

    /// Open sockets, and accounts whose machine is in memory (those with sockets).
    pub fn counts(&self) -> HubCounts {
        let state = self.state();
        HubCounts {
            sockets: state.sockets.len(),
            hubs: state.hubs.len(),
        }
    }

    pub fn connect(
        &self,
        grant: &RealtimeGrant,
    ) -> Result<(ConnId, UnboundedReceiver<Outgoing>), HubError> {
        let user_id = grant.user_id.as_str();
        let (tx, rx) = unbounded_channel();
        let conn = {
            let mut state = self.state();
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
            Ok((
                (),
                hub.connect(
                    conn,
                    &grant.device_id,
                    &grant.session_id,
                    grant.resume_after,
                    now,
                )?,
            ))
        })?;
        Ok((conn, rx))
    }

    fn user_of(&self, conn: ConnId) -> Option<String> {
        self.state().sockets.get(&conn).map(|s| s.user_id.clone())
    }

    pub fn frame(&self, conn: ConnId, text: &str) -> Result<(), HubError> {
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        let now = SystemClock.now_ms();
        self.with_hub(&user, |hub| Ok(((), hub.frame(conn, text, now)?)))
    }

    pub fn closed(&self, conn: ConnId, user_id: &str) -> Result<(), HubError> {
        self.state().sockets.remove(&conn);
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| Ok(((), hub.closed(conn, now)?)))
    }

    /// Runs every alarm that is due.
    pub fn tick(&self) {
        let now = SystemClock.now_ms();
        let due: Vec<String> = self
            .state()
            .alarms
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(u, _)| u.clone())
            .collect();
        for user in due {
            if let Err(e) = self.with_hub(&user, |hub| Ok(((), hub.alarm(now)?))) {
                tracing::error!(account_id = user.as_str(), error = %e, "hub alarm failed");
            }
        }
    }
}

impl udc_core::Hub for ServerHub {
    /// The log is in the server's database: core writes events in its batches.
    fn logs_in_sql(&self) -> bool {
        true
    }

    async fn logged(&self, user_id: &str, count: usize) -> Result<(), HubError> {
        let now = SystemClock.now_ms();
        if self.state().hubs.contains_key(user_id) {
            let started = std::time::Instant::now();
            let done = self.with_hub(user_id, |hub| Ok(((), hub.logged(count as u64, now)?)));
            METRICS.events_logged(count, started.elapsed());
            return done;
        }
        METRICS.events_logged(count, std::time::Duration::ZERO);
        // No machine, no sockets to send to (its devices replay); the log may need pruning.
        self.machine(user_id)
            .retain(count as u64, now)
            .map_err(HubError::new)
    }

    async fn relay(&self, user_id: &str, relay: Relay) -> Result<usize, HubError> {
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| {
            let out = hub.relay(relay, now);
            Ok((out.len(), out))
        })
    }

    async fn presence(&self, user_id: &str) -> Result<Vec<DevicePresence>, HubError> {
        self.with_hub(user_id, |hub| Ok((hub.presence()?, Vec::new())))
    }

    async fn revoke(&self, user_id: &str, revoked: Revoked) -> Result<(), HubError> {
        let now = SystemClock.now_ms();
        self.with_hub(user_id, |hub| Ok(((), hub.revoke(&revoked, now)?)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user: &str) -> RealtimeGrant {
        RealtimeGrant {
            user_id: user.into(),
            device_id: format!("{user}-device"),
            session_id: format!("{user}-session"),
            resume_after: None,
        }
    }

    fn closed(rx: &mut UnboundedReceiver<Outgoing>) -> Option<u16> {
        let mut code = None;
        while let Ok(out) = rx.try_recv() {
            if let Outgoing::Close(c, _) = out {
                code = Some(c);
            }
        }
        code
    }

    /// A bug in one account's handling costs that account its open sockets (they reconnect),
    /// never every account's hub.
    #[test]
    fn a_panic_in_one_accounts_hub_harms_no_other() {
        let dir = std::env::temp_dir().join(format!("udc-hub-panic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hub.sqlite3");
        let conn = Connection::open(&path).unwrap();
        for file in udc_hub::sql_store::FRESH_SCHEMA {
            conn.execute_batch(file).unwrap();
        }
        let hub = ServerHub::open(&path).unwrap();
        let (_, mut broken) = hub.connect(&grant("u1")).unwrap();
        let (_, mut healthy) = hub.connect(&grant("u2")).unwrap();
        closed(&mut healthy);

        let failed = hub.with_hub("u1", |_| -> Result<((), Vec<Output>), StoreError> {
            panic!("a bug in one account's handling")
        });
        assert!(failed.is_err());
        assert_eq!(closed(&mut broken), Some(CLOSE_HUB_FAILED));

        // An event core logs for each account, as in a change's batch.
        let log = |user: &str| {
            let event = udc_hub::NewEvent::to_all("device.updated", serde_json::json!({}));
            let params = udc_hub::sql_store::EventTable::Log
                .params(user, 0, &event)
                .unwrap();
            udc_sql::rusqlite::execute(
                &conn,
                udc_hub::sql_store::EventTable::Log.always(),
                &params,
            )
            .unwrap();
            pollster::block_on(udc_core::Hub::logged(&hub, user, 1)).unwrap();
        };
        log("u2");
        assert!(matches!(healthy.try_recv(), Ok(Outgoing::Text(_))));
        assert_eq!(closed(&mut healthy), None);
        // The failed account's hub is rebuilt from SQLite on its next use.
        log("u1");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
