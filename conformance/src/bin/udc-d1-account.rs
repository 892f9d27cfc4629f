//! Makes an account the way the Worker made them before each account had its own Durable
//! Object: core over D1 itself (here the local D1's SQLite file, with wrangler stopped), its
//! events left in D1's outbox as after a send that failed. The upgrade test
//! (`conformance/tests/upgrade.rs`) then finds it moved into its object on first use.
//!
//! `udc-d1-account <d1.sqlite> <dev.vars> <out.json>`: the account (email, password
//! `udc_conformance::PASSWORD`), a device, a clipboard item, and a refresh token of the kind
//! made before tokens named their account (with its row in `refresh_directory`, as migration
//! 0017 leaves one). The email has no row in `account_directory`, as for an account the Worker
//! before made after that migration ran (the migration comes before the deploy): the move
//! must write it. It has more devices than the move reads from D1 at once, and a trigger in
//! D1 writes while the move removes what it copied, as a Worker of the version before could
//! during a deploy: one more activity entry of the account (the move must bring it too), and a
//! device of another account in the rowid of a device the move copied (the move must leave it).
//! What the test needs is written to out.json.

use std::sync::Mutex;

use http::Request;
use serde_json::{json, Value as Json};
use udc_core::{
    Clock, Config, Core, HubError, OsRandom, Ports, RequestContext, Row, Sql, SqlError, Stmt,
    SystemClock,
};
use udc_hub::{DevicePresence, EventsPage, Relay, Revoked};

/// Devices written straight into D1 beside the one registered: more than two of the move's pages.
const EXTRA_DEVICES: usize = 1_200;

struct D1File(Mutex<rusqlite::Connection>);

impl D1File {
    fn lock(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Sql for D1File {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        udc_sql::rusqlite::rows(&self.lock(), stmt.sql, &stmt.params)
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(SqlError::new)?;
        let mut changes = Vec::new();
        for stmt in stmts {
            udc_sql::rusqlite::rows(&tx, stmt.sql, &stmt.params)?;
            changes.push(tx.changes());
        }
        tx.commit().map_err(SqlError::new)?;
        Ok(changes)
    }
}

/// The hub as the Worker reached it then (the account's object, apart from D1), failing: a
/// change's events stay in the outbox.
struct Unreachable;

impl udc_core::Hub for Unreachable {
    fn logs_in_sql(&self) -> bool {
        false
    }
    async fn logged(&self, _: &str, _: usize) -> Result<(), HubError> {
        Ok(())
    }
    async fn take_outboxed(&self, _: &str, _: Vec<udc_hub::Outboxed>) -> Result<u64, HubError> {
        Err(HubError("the hub is unreachable".into()))
    }
    async fn relay(&self, _: &str, _: Relay) -> Result<usize, HubError> {
        Ok(0)
    }
    async fn presence(&self, _: &str) -> Result<Vec<DevicePresence>, HubError> {
        Ok(Vec::new())
    }
    async fn revoke(&self, _: &str, _: Revoked) -> Result<(), HubError> {
        Ok(())
    }
    async fn events_after(&self, _: &str, _: &str, _: u64) -> Result<EventsPage, HubError> {
        Err(HubError("the hub is unreachable".into()))
    }
}

struct NoStore;

impl udc_core::Http for NoStore {
    async fn send(
        &self,
        _: Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, udc_core::HttpError> {
        Err(udc_core::HttpError("no object store here".into()))
    }
}

struct D1Ports {
    d1: D1File,
    hub: Unreachable,
}

impl Ports for D1Ports {
    type Sql = D1File;
    type Directory = D1File;
    type Clock = SystemClock;
    type Random = OsRandom;
    type Hub = Unreachable;
    type Http = NoStore;
    fn sql(&self) -> &D1File {
        &self.d1
    }
    fn directory(&self) -> &D1File {
        &self.d1
    }
    fn hub(&self) -> &Unreachable {
        &self.hub
    }
    fn http(&self) -> &NoStore {
        &NoStore
    }
    fn clock(&self) -> &SystemClock {
        &SystemClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}

async fn call(core: &Core<D1Ports>, path: &str, token: Option<&str>, body: Json) -> Json {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request");
    let resp = core.handle(req, RequestContext::default()).await;
    let answer: Json = serde_json::from_slice(resp.body()).unwrap_or_default();
    assert!(resp.status().is_success(), "{path}: {answer}");
    answer
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [d1, vars, out] = args.as_slice() else {
        panic!("usage: udc-d1-account <d1.sqlite> <dev.vars> <out.json>");
    };
    let vars = std::fs::read_to_string(vars).expect("dev.vars");
    let config = Config::from_lookup(|name| {
        // wrangler.toml's [vars] beside the secrets.
        if name == udc_core::config::JWT_KID {
            return Some("udc-1".into());
        }
        vars.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    })
    .expect("config");
    let conn = rusqlite::Connection::open(d1).expect("the D1 file");
    let core = Core::new(
        D1Ports {
            d1: D1File(Mutex::new(conn)),
            hub: Unreachable,
        },
        config,
    );

    let email = udc_conformance::unique_email();
    let kdf = udc_agent::kdf::KdfParams::new_random().expect("kdf");
    let keys = udc_agent::kdf::derive(udc_conformance::PASSWORD, &kdf).expect("derive");
    let signed = call(
        &core,
        "/auth/register",
        None,
        json!({ "email": email, "kdf": kdf, "auth_key": keys.auth_key_b64() }),
    )
    .await;
    let user_id = signed["user"]["id"].as_str().expect("user id").to_owned();
    let device = call(
        &core,
        "/devices/register",
        signed["tokens"]["access_token"].as_str(),
        json!({ "name": "Desk from D1", "platform": "linux" }),
    )
    .await;
    let token = device["tokens"]["access_token"].as_str().expect("token");
    let sealed = "A".repeat(64);
    let item = call(
        &core,
        "/sync/clipboard",
        Some(token),
        json!({ "content_type": "text/plain", "size": 8, "ciphertext": sealed }),
    )
    .await;

    // A refresh token of the device's session as made before tokens named their account.
    let old_token = format!("udcr_{}", uuid::Uuid::new_v4().simple());
    let hash = udc_core::tokens::refresh_hash(&old_token);
    let session = udc_core::tokens::verify_access(&core.config, SystemClock.now_ms(), token)
        .expect("the device's token")
        .sid;
    let expires = SystemClock.now_ms() + 30 * 24 * 3600 * 1000;
    core.ports
        .d1
        .batch(vec![
            Stmt::new(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                vec![hash.as_str().into(), session.into(), SystemClock.now_ms().into(), expires.into()],
            ),
            Stmt::new(
                "INSERT INTO refresh_directory (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
                vec![hash.into(), user_id.as_str().into(), expires.into()],
            ),
            Stmt::new(
                "DELETE FROM account_directory WHERE user_id = ?",
                vec![user_id.as_str().into()],
            ),
        ])
        .await
        .expect("the old refresh token");
    let device_id = device["device"]["id"].as_str().expect("device id");
    {
        let conn = core.ports.d1.lock();
        let tx = conn.unchecked_transaction().expect("a transaction");
        for n in 0..EXTRA_DEVICES {
            tx.execute(
                "INSERT INTO devices (id, user_id, name, platform, os_version, app_version, capabilities, \
                 created_at, updated_at, last_seen_at) SELECT ?, user_id, 'Extra desk ' || ?, platform, \
                 os_version, app_version, capabilities, created_at, updated_at, last_seen_at \
                 FROM devices WHERE id = ?",
                rusqlite::params![uuid::Uuid::new_v4().to_string(), n, device_id],
            )
            .expect("an extra device");
        }
        tx.commit().expect("commit");
    }
    // Another account in D1, with no device yet.
    let other = call(
        &core,
        "/auth/register",
        None,
        json!({ "email": udc_conformance::unique_email(), "kdf": kdf, "auth_key": keys.auth_key_b64() }),
    )
    .await;
    let other_id = other["user"]["id"].as_str().expect("user id").to_owned();
    // The move writes the account's email into the directory in the same D1 batch that removes
    // what it copied. Written then: an activity entry of the account (a table with no foreign
    // key); and, as a Worker of the version before could, the account's newest device removed
    // and a device of the other account added, which takes the rowid freed (devices' rowids
    // are SQLite's max + 1).
    let late_activity: i64 = {
        let conn = core.ports.d1.lock();
        let id = conn
            .query_row(
                "SELECT coalesce(max(id), 0) + 1000 FROM account_activity",
                [],
                |r| r.get(0),
            )
            .expect("an activity id");
        conn.execute_batch(&format!(
            "CREATE TRIGGER udc_test_late_write AFTER INSERT ON account_directory \
             WHEN NEW.user_id = '{user_id}' BEGIN \
             INSERT INTO account_activity (id, user_id, at, kind, detail) \
             VALUES ({id}, NEW.user_id, {now}, 'password_changed', '{{}}'); \
             DELETE FROM devices WHERE rowid = (SELECT max(rowid) FROM devices); \
             INSERT INTO devices (id, user_id, name, platform, os_version, app_version, capabilities, \
             created_at, updated_at, last_seen_at) SELECT '{late_device}', '{other_id}', 'Late desk', \
             platform, os_version, app_version, capabilities, created_at, updated_at, last_seen_at \
             FROM devices WHERE id = '{device_id}'; END;",
            now = SystemClock.now_ms(),
            late_device = uuid::Uuid::new_v4(),
        ))
        .expect("the trigger");
        id
    };
    let saved = json!({
        "email": email,
        "user_id": user_id,
        "device_id": device["device"]["id"],
        "clipboard_item": item["item"]["id"],
        "refresh_token": old_token,
        "devices": EXTRA_DEVICES + 1,
        "late_activity": late_activity,
        "other_user_id": other_id,
    });
    std::fs::write(out, serde_json::to_vec_pretty(&saved).expect("json")).expect("out.json");
    println!("{saved}");
}
