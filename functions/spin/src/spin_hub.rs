//! The hub port on Spin: no sockets can be held, so the hub is its durable log and presence in
//! Spin SQLite, which devices read with `GET /events`. Core writes events in its own batches
//! (`logs_in_sql`), each a transaction begun IMMEDIATE, so concurrent instances hand out
//! sequence numbers in commit order (a poller never skips one).

use std::rc::Rc;

use spin_sdk::sqlite::Connection;
use udc_core::{Clock, HubError, Row, SqlError, SystemClock, Value};
use udc_hub::{DevicePresence, EventsPage, Hub, Relay, Revoked, SqlStore, SyncSql};

pub struct SpinDb(Rc<Connection>);

impl SyncSql for &SpinDb {
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        crate::spin_exec::rows(&self.0, sql, &params)
    }
}

pub struct SpinHub(SpinDb);

impl SpinHub {
    /// On the request's connection (the SQL port's).
    pub fn on(conn: Rc<Connection>) -> SpinHub {
        SpinHub(SpinDb(conn))
    }

    fn hub(&self, user_id: &str) -> Hub<SqlStore<&SpinDb>> {
        Hub::new(
            SqlStore {
                exec: &self.0,
                user_id: user_id.to_owned(),
            },
            [],
        )
    }
}

impl udc_core::Hub for SpinHub {
    /// The log is in the component's database: core writes events in its batches.
    fn logs_in_sql(&self) -> bool {
        true
    }

    /// Nothing to send (devices poll the log); the log may need pruning.
    async fn logged(&self, user_id: &str, count: usize) -> Result<(), HubError> {
        self.hub(user_id)
            .retain(count as u64, SystemClock.now_ms())
            .map_err(HubError::new)
    }

    /// Ephemeral traffic needs an open socket, which Spin cannot hold.
    async fn relay(&self, _user_id: &str, _relay: Relay) -> Result<usize, HubError> {
        Ok(0)
    }

    async fn presence(&self, user_id: &str) -> Result<Vec<DevicePresence>, HubError> {
        self.hub(user_id).presence().map_err(HubError::new)
    }

    /// Nothing to close: Spin holds no sockets, and the revoked token can no longer poll.
    async fn revoke(&self, _user_id: &str, _revoked: Revoked) -> Result<(), HubError> {
        Ok(())
    }

    async fn events_after(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
    ) -> Result<EventsPage, HubError> {
        self.hub(user_id)
            .events_after(device_id, after)
            .map_err(HubError::new)
    }
}
