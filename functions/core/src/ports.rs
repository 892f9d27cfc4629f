//! The ports: everything udc-core needs from the world. Each host (Workers, Spin, udc-server)
//! supplies adapters; core itself does no I/O.
//!
//! No `Send` bounds: Workers and Spin run single-threaded wasm (docs/ARCHITECTURE.md, "Pure
//! core, thin hosts").
#![allow(async_fn_in_trait)]

use std::fmt;

pub use udc_sql::{Row, SqlError, Stmt, Value};

/// The SQL executor. D1 has no interactive transactions, so multi-step changes are one
/// `batch` (all or nothing) with conditional SQL; callers check the per-statement change counts.
pub trait Sql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError>;
    /// Independent reads in one round trip where the platform allows it (D1: concurrently);
    /// each statement's rows, in order.
    async fn query_many(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, SqlError> {
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            out.push(self.query(stmt).await?);
        }
        Ok(out)
    }
    /// Runs every statement in one transaction; returns the number of rows each one changed.
    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError>;
    /// `batch`, then `read` (whose result columns are `columns`, in order) after its last
    /// statement: in the same round trip where the platform can (D1 answers a batch's reads by
    /// column name), else in two.
    async fn batch_then_read(
        &self,
        stmts: Vec<Stmt>,
        read: Stmt,
        columns: &[&str],
    ) -> Result<(Vec<u64>, Vec<Row>), SqlError> {
        let _ = columns;
        let changes = self.batch(stmts).await?;
        Ok((changes, self.query(read).await?))
    }
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// Cryptographically secure random bytes.
pub trait Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct HubError(pub String);

impl HubError {
    /// Wraps any host error (a store, a Durable Object call) as a hub error.
    pub fn new(e: impl fmt::Display) -> HubError {
        HubError(e.to_string())
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hub: {}", self.0)
    }
}

/// The account's realtime hub (a Durable Object on Cloudflare, in process in udc-server,
/// the polled log on Spin).
pub trait Hub {
    /// Whether the account's event log lives in core's own database (udc-server, Spin): then a
    /// change's events are written to it in the change's batch (`crate::events`), and `logged`
    /// tells the hub to send them. Elsewhere (the Worker, whose hub is a Durable Object apart
    /// from D1) they are written to the outbox in the batch, and sent with `take_outboxed`.
    fn logs_in_sql(&self) -> bool;
    /// At most `count` events were written to the account's log in core's batch: send them to
    /// open sockets, and keep the log's retention.
    async fn logged(&self, user_id: &str, count: usize) -> Result<(), HubError>;
    /// Where the log is apart from core's database (`!logs_in_sql`): logs and sends the
    /// account's events from the outbox, oldest first, each id once, and answers the last id
    /// the hub has taken (`udc_hub::Hub::take_outboxed`). Elsewhere core never calls it.
    async fn take_outboxed(
        &self,
        user_id: &str,
        batch: Vec<udc_hub::Outboxed>,
    ) -> Result<u64, HubError> {
        let _ = (user_id, batch);
        Err(HubError(
            "this host writes events to the log in core's batches".into(),
        ))
    }
    /// Ephemeral traffic (relayed input) to one device's open sockets, never logged; how many
    /// sockets it reached.
    async fn relay(&self, user_id: &str, relay: udc_hub::Relay) -> Result<usize, HubError>;
    async fn presence(&self, user_id: &str) -> Result<Vec<udc_hub::DevicePresence>, HubError>;
    /// Closes at once every socket whose access ended: a removed device's, an ended session's.
    async fn revoke(&self, user_id: &str, revoked: udc_hub::Revoked) -> Result<(), HubError>;
    /// The account was deleted: closes every socket it has and, where the log is apart from
    /// core's database, erases the log and presence (where they are in core's database, core
    /// deletes their rows with the account's).
    async fn forget_account(&self, user_id: &str) -> Result<(), HubError> {
        self.revoke(user_id, udc_hub::Revoked::Account).await
    }
    async fn events_after(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
    ) -> Result<udc_hub::EventsPage, HubError>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpError(pub String);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "outbound http: {}", self.0)
    }
}

/// Outbound HTTP: the few requests core itself makes (to the object store, already signed).
/// A transport error is an `Err`; any HTTP status is an `Ok`.
pub trait Http {
    async fn send(&self, req: http::Request<Vec<u8>>)
        -> Result<http::Response<Vec<u8>>, HttpError>;
}

/// The bundle a host hands to [`crate::Core`].
pub trait Ports {
    type Sql: Sql;
    /// What crosses accounts: the `account_directory` and `approval_directory` tables, and the
    /// sign-in throttles (`login_throttle`: an address guessing at many accounts). The
    /// same database as `sql` where one database holds every account (udc-server, Spin); D1
    /// where each account's data is in its own Durable Object.
    type Directory: Sql;
    type Clock: Clock;
    type Random: Random;
    type Hub: Hub;
    type Http: Http;
    fn sql(&self) -> &Self::Sql;
    fn directory(&self) -> &Self::Directory;
    fn hub(&self) -> &Self::Hub;
    fn http(&self) -> &Self::Http;
    fn clock(&self) -> &Self::Clock;
    fn random(&self) -> &Self::Random;
}

/// The clock of hosts with a system clock (udc-server, Spin). Not for wasm32-unknown-unknown,
/// which has none: the Worker reads JavaScript's `Date`.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The platform's CSPRNG through getrandom (the OS, WASI, or `crypto.getRandomValues` on Workers).
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        getrandom::fill(buf).map_err(|e| e.to_string())
    }
}
