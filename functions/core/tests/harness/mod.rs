//! core in process over a real SQLite file, for tests of its handlers that the black-box suite
//! cannot reach (time moved by hours, the hub failing on cue, what the database holds). The
//! hub is udc-hub's machine built per call as on Spin (no sockets), on the same file, or on a
//! file of its own as the Worker's Durable Object (`harness_apart`); there is no object store.
// A test harness: it fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use http::Request;
use rusqlite::Connection;
use udc_core::{
    Clock, Config, Core, HttpError, HubError, OsRandom, RequestContext, Row, Sql, SqlError, Stmt,
    SystemClock, Value,
};
use udc_hub::{DevicePresence, EventsPage, Hub, Relay, Revoked, SqlStore, SyncSql};

/// The SQL port on one connection: a batch is one transaction.
pub struct Db(Mutex<Connection>);

impl Db {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sql for Db {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        udc_sql::rusqlite::rows(&self.conn(), stmt.sql, &stmt.params)
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(SqlError::new)?;
        let mut changes = Vec::with_capacity(stmts.len());
        for stmt in &stmts {
            changes.push(udc_sql::rusqlite::execute(&tx, stmt.sql, &stmt.params)?);
        }
        tx.commit().map_err(SqlError::new)?;
        Ok(changes)
    }
}

/// The hub's own connection: to core's file, or to its own (`harness_apart`).
pub struct HubDb(Mutex<Connection>);

impl SyncSql for &HubDb {
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        let conn = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        udc_sql::rusqlite::rows(&conn, sql, &params)
    }
}

/// The hub port, no sockets: the log in core's database, or `apart` in the hub's own (core
/// writing to its outbox). `unreachable` makes every send fail, as a hub that cannot be reached
/// after a change committed; `answer_lost` makes the hub take what it is sent and the answer
/// never arrive.
pub struct TestHub {
    db: HubDb,
    apart: bool,
    pub unreachable: Cell<bool>,
    pub answer_lost: Cell<bool>,
}

impl TestHub {
    fn machine(&self, user_id: &str) -> Hub<SqlStore<&HubDb>> {
        Hub::new(
            SqlStore {
                exec: &self.db,
                user_id: user_id.to_owned(),
            },
            [],
        )
    }

    fn reach(&self) -> Result<(), HubError> {
        if self.unreachable.get() {
            return Err(HubError("unreachable".into()));
        }
        Ok(())
    }
}

impl udc_core::Hub for TestHub {
    fn logs_in_sql(&self) -> bool {
        !self.apart
    }
    async fn take_outboxed(
        &self,
        user_id: &str,
        batch: Vec<udc_hub::Outboxed>,
    ) -> Result<u64, HubError> {
        self.reach()?;
        let (taken, _) = self
            .machine(user_id)
            .take_outboxed(batch, SystemClock.now_ms())
            .map_err(HubError::new)?;
        if self.answer_lost.get() {
            return Err(HubError("the hub's answer was lost".into()));
        }
        Ok(taken)
    }
    async fn logged(&self, user_id: &str, count: usize) -> Result<(), HubError> {
        self.reach()?;
        self.machine(user_id)
            .logged(count as u64, SystemClock.now_ms())
            .map(|_| ())
            .map_err(HubError::new)
    }
    async fn relay(&self, _: &str, _: Relay) -> Result<usize, HubError> {
        Ok(0)
    }
    async fn presence(&self, user_id: &str) -> Result<Vec<DevicePresence>, HubError> {
        self.machine(user_id).presence().map_err(HubError::new)
    }
    async fn revoke(&self, _: &str, _: Revoked) -> Result<(), HubError> {
        Ok(())
    }
    async fn forget_account(&self, user_id: &str) -> Result<(), HubError> {
        self.reach()?;
        if self.apart {
            let conn = self.db.0.lock().unwrap_or_else(PoisonError::into_inner);
            for table in ["hub_events", "hub_seq", "hub_presence", "hub_outbox"] {
                conn.execute(&format!("DELETE FROM {table} WHERE user_id = ?"), [user_id])
                    .map_err(HubError::new)?;
            }
        }
        Ok(())
    }
    async fn events_after(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
    ) -> Result<EventsPage, HubError> {
        self.machine(user_id)
            .events_after(device_id, after)
            .map_err(HubError::new)
    }
}

/// No object store in these tests.
pub struct NoStore;

impl udc_core::Http for NoStore {
    async fn send(&self, _: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, HttpError> {
        Err(HttpError("no object store in these tests".into()))
    }
}

pub struct TestPorts {
    pub sql: Db,
    pub hub: TestHub,
    http: NoStore,
}

impl udc_core::Ports for TestPorts {
    type Sql = Db;
    type Directory = Db;
    type Clock = SystemClock;
    type Random = OsRandom;
    type Hub = TestHub;
    type Http = NoStore;
    fn sql(&self) -> &Db {
        &self.sql
    }
    fn directory(&self) -> &Db {
        &self.sql
    }
    fn hub(&self) -> &TestHub {
        &self.hub
    }
    fn http(&self) -> &NoStore {
        &self.http
    }
    fn clock(&self) -> &SystemClock {
        &SystemClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}

/// A core on a fresh, migrated database in its own directory (removed when dropped).
pub struct Harness {
    pub core: Core<TestPorts>,
    pub dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A core whose hub's log shares its database (udc-server, Spin).
pub fn harness(name: &str) -> Harness {
    build(name, false)
}

/// A core whose hub keeps its log in a database of its own, as the Worker's Durable Object.
pub fn harness_apart(name: &str) -> Harness {
    build(name, true)
}

fn build(name: &str, apart: bool) -> Harness {
    let dir = std::env::temp_dir().join(format!("udc-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("udc.sqlite3");
    let open = |path: &std::path::Path| {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .unwrap();
        conn
    };
    let sql = Db(Mutex::new(open(&path)));
    pollster::block_on(udc_core::migrations::apply(&sql, 0)).unwrap();
    let config = Config::from_lookup(|k| match k {
        udc_core::config::JWT_PRIVATE_KEY
        | udc_core::config::AUTH_PEPPER
        | udc_core::config::DECOY_KEY => {
            Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into())
        }
        _ => None,
    })
    .unwrap();
    let hub_db = if apart {
        let conn = open(&dir.join("hub.sqlite3"));
        for file in udc_hub::sql_store::FRESH_SCHEMA {
            conn.execute_batch(file).unwrap();
        }
        conn
    } else {
        open(&path)
    };
    let ports = TestPorts {
        sql,
        hub: TestHub {
            db: HubDb(Mutex::new(hub_db)),
            apart,
            unreachable: Cell::new(false),
            answer_lost: Cell::new(false),
        },
        http: NoStore,
    };
    Harness {
        core: Core::new(ports, config),
        dir,
    }
}

pub const AUTH_KEY: &str = "c2VjcmV0LWF1dGgta2V5LXRoYXQtaXMtMzItYnl0ZXM="; // 32 bytes

pub fn register_body(email: &str) -> serde_json::Value {
    serde_json::json!({
        "email": email,
        "kdf": {"algorithm": "argon2id", "memory_kib": 19456, "iterations": 2, "parallelism": 1,
                "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        "auth_key": AUTH_KEY,
    })
}

/// A new account of `email` with a device named "Desk": the account's id and the device's
/// access token.
pub async fn account_with_device(core: &Core<TestPorts>, email: &str) -> (String, String) {
    let (status, signed) = post(core, "/auth/register", None, register_body(email)).await;
    assert_eq!(status, 201, "{signed}");
    let (status, device) = post(
        core,
        "/devices/register",
        signed["tokens"]["access_token"].as_str(),
        serde_json::json!({ "name": "Desk", "platform": "linux" }),
    )
    .await;
    assert_eq!(status, 201, "{device}");
    let user = signed["user"]["id"].as_str().unwrap().to_owned();
    let token = device["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (user, token)
}

/// `POST path` with a JSON body, as `token` when given: the status and the JSON answer.
pub async fn post(
    core: &Core<TestPorts>,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    call(core, "POST", path, token, Some(body)).await
}

/// `method path`, with a JSON body when given, as `token` when given: the status and the JSON
/// answer.
pub async fn call(
    core: &Core<TestPorts>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let resp = core
        .handle(req.body(body).unwrap(), RequestContext::default())
        .await;
    let json = serde_json::from_slice(resp.body()).unwrap_or_default();
    (resp.status().as_u16(), json)
}

/// The first column of every row `sql` returns, as text.
pub async fn texts(core: &Core<TestPorts>, sql: &'static str) -> Vec<String> {
    core.ports
        .sql
        .query(Stmt::new(sql, vec![]))
        .await
        .unwrap()
        .iter()
        .map(|r| udc_core::rows::text(r, 0).unwrap())
        .collect()
}

/// The first column of every row `sql` returns from the hub's own database, as text.
pub fn hub_texts(core: &Core<TestPorts>, sql: &str) -> Vec<String> {
    let conn = core.ports.hub.db.0.lock().unwrap();
    udc_sql::rusqlite::rows(&conn, sql, &[])
        .unwrap()
        .iter()
        .map(|r| udc_core::rows::text(r, 0).unwrap())
        .collect()
}

/// Now, by the clock the hosts use.
pub fn now() -> i64 {
    SystemClock.now_ms()
}
