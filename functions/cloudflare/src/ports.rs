//! The ports of both cores the Worker runs — its own (over D1) and each account object's (over
//! the object's SQLite) — as one type, so core's code is in the Worker once (two port types
//! would compile all of it twice: +117 KB gzip measured).

use udc_core::{Clock, Hub, HubError, OsRandom, Ports, Row, Sql, SqlError, Stmt};
use udc_hub::{DevicePresence, EventsPage, Outboxed, Relay, Revoked};

use crate::account_object::ObjectHub;
use crate::d1::D1Sql;
use crate::fetch::WorkerHttp;
use crate::hub::WorkerHub;
use crate::object_sql::ObjectSql;

pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }
}

/// Where a core keeps its data: D1 (the Worker's), or an account object's own SQLite.
pub enum AnySql {
    D1(D1Sql),
    Object(ObjectSql),
}

impl Sql for AnySql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        match self {
            AnySql::D1(d1) => d1.query(stmt).await,
            AnySql::Object(object) => object.query(stmt).await,
        }
    }

    async fn query_many(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, SqlError> {
        match self {
            AnySql::D1(d1) => d1.query_many(stmts).await,
            AnySql::Object(object) => object.query_many(stmts).await,
        }
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        match self {
            AnySql::D1(d1) => d1.batch(stmts).await,
            AnySql::Object(object) => object.batch(stmts).await,
        }
    }

    async fn batch_then_read(
        &self,
        stmts: Vec<Stmt>,
        read: Stmt,
        columns: &[&str],
    ) -> Result<(Vec<u64>, Vec<Row>), SqlError> {
        match self {
            AnySql::D1(d1) => d1.batch_then_read(stmts, read, columns).await,
            AnySql::Object(object) => object.batch_then_read(stmts, read, columns).await,
        }
    }
}

/// The hub a core reaches: through the account's object (the Worker's core), or the object's
/// own (in the object).
pub enum AnyHub {
    Worker(WorkerHub),
    Object(ObjectHub),
}

impl Hub for AnyHub {
    fn logs_in_sql(&self) -> bool {
        match self {
            AnyHub::Worker(hub) => hub.logs_in_sql(),
            AnyHub::Object(hub) => hub.logs_in_sql(),
        }
    }

    async fn logged(&self, user_id: &str, count: usize) -> Result<(), HubError> {
        match self {
            AnyHub::Worker(hub) => hub.logged(user_id, count).await,
            AnyHub::Object(hub) => hub.logged(user_id, count).await,
        }
    }

    async fn take_outboxed(&self, user_id: &str, batch: Vec<Outboxed>) -> Result<u64, HubError> {
        match self {
            AnyHub::Worker(hub) => hub.take_outboxed(user_id, batch).await,
            AnyHub::Object(hub) => hub.take_outboxed(user_id, batch).await,
        }
    }

    async fn relay(&self, user_id: &str, relay: Relay) -> Result<usize, HubError> {
        match self {
            AnyHub::Worker(hub) => hub.relay(user_id, relay).await,
            AnyHub::Object(hub) => hub.relay(user_id, relay).await,
        }
    }

    async fn presence(&self, user_id: &str) -> Result<Vec<DevicePresence>, HubError> {
        match self {
            AnyHub::Worker(hub) => hub.presence(user_id).await,
            AnyHub::Object(hub) => hub.presence(user_id).await,
        }
    }

    async fn revoke(&self, user_id: &str, revoked: Revoked) -> Result<(), HubError> {
        match self {
            AnyHub::Worker(hub) => hub.revoke(user_id, revoked).await,
            AnyHub::Object(hub) => hub.revoke(user_id, revoked).await,
        }
    }

    async fn forget_account(&self, user_id: &str) -> Result<(), HubError> {
        match self {
            AnyHub::Worker(hub) => hub.forget_account(user_id).await,
            AnyHub::Object(hub) => hub.forget_account(user_id).await,
        }
    }

    async fn events_after(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
    ) -> Result<EventsPage, HubError> {
        match self {
            AnyHub::Worker(hub) => hub.events_after(user_id, device_id, after).await,
            AnyHub::Object(hub) => hub.events_after(user_id, device_id, after).await,
        }
    }
}

pub struct CfPorts {
    pub sql: AnySql,
    /// D1, for both.
    pub directory: D1Sql,
    pub hub: AnyHub,
}

impl Ports for CfPorts {
    type Sql = AnySql;
    type Directory = D1Sql;
    type Clock = WorkerClock;
    type Random = OsRandom;
    type Hub = AnyHub;
    type Http = WorkerHttp;
    fn sql(&self) -> &AnySql {
        &self.sql
    }
    fn directory(&self) -> &D1Sql {
        &self.directory
    }
    fn hub(&self) -> &AnyHub {
        &self.hub
    }
    fn http(&self) -> &WorkerHttp {
        &WorkerHttp
    }
    fn clock(&self) -> &WorkerClock {
        &WorkerClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}
