//! udc-hub: one hub per user. Presence, the durable ordered event log with resume, and the
//! signaling relay between the user's devices — as a state machine (`machine`) over a storage
//! port (`store`), driven by each account's Durable Object on Cloudflare (`functions/cloudflare`) and in process
//! by udc-server.

pub mod machine;
pub mod names;
pub mod protocol;
pub mod sql_store;
pub mod store;

pub use machine::{Conn, ConnId, EventsPage, Hub, Output};
pub use protocol::{
    Audience, ClientFrame, Event, HubFrame, Logged, NewEvent, Outboxed, PresenceState, Relay,
    Revoked,
};
pub use sql_store::{SqlStore, SyncSql};
pub use store::{DevicePresence, HubStore, StoreError};
