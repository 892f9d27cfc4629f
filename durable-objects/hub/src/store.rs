//! The hub's storage port. Synchronous on purpose: Durable Object SQLite storage, rusqlite and
//! Spin SQLite all answer synchronously, so the machine can read and write in one step.

use crate::protocol::{Logged, NewEvent, PresenceState};

#[derive(Debug, Clone, PartialEq)]
pub struct StoreError(pub String);

impl From<udc_sql::SqlError> for StoreError {
    fn from(e: udc_sql::SqlError) -> Self {
        StoreError(e.0)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hub store: {}", self.0)
    }
}

/// What the hub remembers of each device between connections.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DevicePresence {
    pub device_id: String,
    pub state: PresenceState,
    /// Milliseconds since the epoch of the last frame or connection.
    pub last_seen: i64,
    /// The last sequence number the device acknowledged.
    pub acked_seq: u64,
}

pub trait HubStore {
    /// Stores the event under the next sequence number and returns it.
    fn append(&mut self, at: i64, event: &NewEvent) -> Result<Logged, StoreError>;
    /// Up to `limit` events after `seq`, oldest first.
    fn after(&self, seq: u64, limit: usize) -> Result<Vec<Logged>, StoreError>;
    /// The oldest retained sequence number (None when nothing is kept) and the last assigned.
    fn bounds(&self) -> Result<(Option<u64>, u64), StoreError>;
    /// Drops events stored before `before_at`, and all but the newest `keep` ones.
    fn prune(&mut self, before_at: i64, keep: u64) -> Result<(), StoreError>;
    /// The last outbox id logged (0 before any).
    fn outbox_taken(&self) -> Result<u64, StoreError>;
    fn set_outbox_taken(&mut self, id: u64) -> Result<(), StoreError>;
    fn presence(&self, device_id: &str) -> Result<Option<DevicePresence>, StoreError>;
    fn all_presence(&self) -> Result<Vec<DevicePresence>, StoreError>;
    fn set_presence(&mut self, presence: &DevicePresence) -> Result<(), StoreError>;
}
