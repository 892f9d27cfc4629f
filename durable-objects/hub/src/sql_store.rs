//! `SqlStore`: the hub's storage on any synchronous SQLite (Durable Object storage, rusqlite,
//! Spin), in the tables of `schema/migrations/0002_hub.sql`, scoped to one account.

use serde_json::Value as Json;

use crate::protocol::{Audience, Logged, NewEvent, Outboxed, PresenceState};
use crate::store::{DevicePresence, HubStore, StoreError};
use udc_sql::{Row, SqlError, Value};

/// The schema, for drivers that create it themselves (the Durable Object, on start).
pub const SCHEMA: &str = include_str!("../../../schema/migrations/0002_hub.sql");
/// The later column those drivers add once (a second run fails with "duplicate column").
pub const AUDIENCE_COLUMN: &str = include_str!("../../../schema/migrations/0007_hub_audience.sql");
/// The trigger that keeps `hub_seq` as events are stored (one statement; `IF NOT EXISTS`).
pub const SEQ_TRIGGER: &str = include_str!("../../../schema/migrations/0008_hub_seq.sql");
/// The last outbox id taken, per account (one statement; `IF NOT EXISTS`).
pub const OUTBOX_TAKEN: &str = include_str!("../../../schema/migrations/0010_hub_outbox.sql");
/// The hub's files in order, for a database made fresh (tests; hosts run core's migrations).
pub const FRESH_SCHEMA: [&str; 4] = [SCHEMA, AUDIENCE_COLUMN, SEQ_TRIGGER, OUTBOX_TAKEN];

/// An INSERT of one event under the next sequence number (`SEQ_TRIGGER` moves `hub_seq` on):
/// `$head` opens the row source, `$data` is the data column's expression, `$tail` ends it.
/// Parameters: `EventTable::Log.head_params`, then whatever `$data` takes.
macro_rules! log_event_sql {
    ($head:literal, $data:literal, $tail:literal) => {
        concat!(
            "INSERT INTO hub_events (user_id, seq, at, event, target_device_id, audience, data) ",
            $head,
            "?, coalesce((SELECT last_seq FROM hub_seq WHERE user_id = ?), 0) + 1, ?, ?, ?, ?, ",
            $data,
            $tail
        )
    };
}

/// The same INSERT into the outbox (`0009_event_outbox.sql`), which numbers its rows itself.
/// Parameters: `EventTable::Outbox.head_params`, then whatever `$data` takes.
macro_rules! outbox_event_sql {
    ($head:literal, $data:literal, $tail:literal) => {
        concat!(
            "INSERT INTO event_outbox (user_id, at, event, target_device_id, audience, data) ",
            $head,
            "?, ?, ?, ?, ?, ",
            $data,
            $tail
        )
    };
}

/// The hub's own append.
const APPEND: &str = log_event_sql!("VALUES (", "?", ") RETURNING seq");

/// Where a change's events are written in its batch: the account's log itself where it shares
/// core's database (udc-server, Spin), else the outbox the hub is sent from (the Worker). The
/// statements are the same but for the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventTable {
    Log,
    Outbox,
}

impl EventTable {
    /// An event in a change's batch that reports it whatever the batch did.
    pub fn always(self) -> &'static str {
        match self {
            EventTable::Log => log_event_sql!("VALUES (", "?", ")"),
            EventTable::Outbox => outbox_event_sql!("VALUES (", "?", ")"),
        }
    }

    /// An event in a change's batch, right after the statement it reports: stored only when
    /// that statement changed a row (`changes()` is the count of the statement completed last;
    /// an event after a skipped event is skipped too).
    pub fn if_changed(self) -> &'static str {
        match self {
            EventTable::Log => log_event_sql!("SELECT ", "?", " WHERE changes() > 0"),
            EventTable::Outbox => outbox_event_sql!("SELECT ", "?", " WHERE changes() > 0"),
        }
    }

    /// An event whose data gets, at the JSON path given after the data, how many rows the
    /// statement before it changed.
    pub fn counting(self) -> &'static str {
        match self {
            EventTable::Log => log_event_sql!("VALUES (", "json_set(?, ?, changes())", ")"),
            EventTable::Outbox => {
                outbox_event_sql!("VALUES (", "json_set(?, ?, changes())", ")")
            }
        }
    }

    /// The parameters every statement above starts with, the data last.
    pub fn params(self, user_id: &str, at: i64, new: &NewEvent) -> Result<Vec<Value>, StoreError> {
        let mut params = self.head_params(user_id, at, new)?;
        params.push(new.data.to_string().into());
        Ok(params)
    }

    /// `params` but the data, for `log_event_select!` and `outbox_event_select!`: the user id
    /// (twice for the log, whose number is read by it), the time, the event's name, its one
    /// target (for code from before the audience column), its audience.
    pub fn head_params(
        self,
        user_id: &str,
        at: i64,
        new: &NewEvent,
    ) -> Result<Vec<Value>, StoreError> {
        let audience = match &new.to {
            Audience::All => None,
            Audience::Devices(ids) => {
                Some(serde_json::to_string(ids).map_err(|e| StoreError(format!("audience: {e}")))?)
            }
        };
        // For code from before the audience column (a rolled-back deployment): the one device,
        // or for several a value no device id equals, so it delivers to nobody rather than to
        // everybody.
        let target = match &new.to {
            Audience::All => None,
            Audience::Devices(ids) if ids.len() == 1 => ids.first().map(String::as_str),
            Audience::Devices(_) => Some(SEVERAL_DEVICES),
        };
        let mut params = vec![user_id.into()];
        if self == EventTable::Log {
            params.push(user_id.into());
        }
        params.extend([
            at.into(),
            new.event.as_str().into(),
            target.into(),
            audience.into(),
        ]);
        Ok(params)
    }
}

/// The start of an INSERT of one event into the log whose data a SELECT computes in the batch
/// (for data only the database knows then): append the data expression, its `FROM` and
/// `WHERE`. Parameters: `EventTable::Log.head_params`, then the expression's.
#[macro_export]
macro_rules! log_event_select {
    () => {
        concat!(
            "INSERT INTO hub_events (user_id, seq, at, event, target_device_id, audience, data) ",
            "SELECT ?, coalesce((SELECT last_seq FROM hub_seq WHERE user_id = ?), 0) + 1, ?, ?, ?, ?, "
        )
    };
}

/// `log_event_select!` into the outbox. Parameters: `EventTable::Outbox.head_params`, then the
/// expression's.
#[macro_export]
macro_rules! outbox_event_select {
    () => {
        concat!(
            "INSERT INTO event_outbox (user_id, at, event, target_device_id, audience, data) ",
            "SELECT ?, ?, ?, ?, ?, "
        )
    };
}

/// The account's oldest events waiting in the outbox, while the account lives (a deleted
/// account's hub has forgotten it; nothing may fill it again). Parameters: the user id, how
/// many.
pub const OUTBOX_PAGE: &str = "SELECT id, at, event, target_device_id, audience, data \
     FROM event_outbox WHERE user_id = ? \
     AND EXISTS (SELECT 1 FROM users WHERE id = event_outbox.user_id AND deleted_at IS NULL) \
     ORDER BY id LIMIT ?";

/// `OUTBOX_PAGE`'s columns, in order.
pub const OUTBOX_COLUMNS: [&str; 6] = ["id", "at", "event", "target_device_id", "audience", "data"];

/// A row of `OUTBOX_PAGE`: the event to send under its outbox id.
pub fn outboxed(row: &[Value]) -> Result<Outboxed, StoreError> {
    let l = logged(row)?;
    Ok(Outboxed {
        id: l.seq,
        event: NewEvent {
            event: l.event,
            to: l.to,
            data: l.data,
        },
    })
}

/// One statement at a time, with `?` parameters; rows positional.
pub trait SyncSql {
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError>;
}

pub struct SqlStore<E: SyncSql> {
    pub exec: E,
    pub user_id: String,
}

fn int(row: &[Value], i: usize) -> Result<i64, StoreError> {
    match row.get(i) {
        Some(Value::Integer(n)) => Ok(*n),
        // A driver that hands numbers over as floats (JavaScript's) may give a whole one so.
        Some(Value::Real(f)) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(StoreError(format!(
            "column {i}: expected integer, got {other:?}"
        ))),
    }
}

fn text(row: &[Value], i: usize) -> Result<Option<String>, StoreError> {
    match row.get(i) {
        Some(Value::Text(s)) => Ok(Some(s.clone())),
        Some(Value::Null) => Ok(None),
        other => Err(StoreError(format!(
            "column {i}: expected text, got {other:?}"
        ))),
    }
}

/// `target_device_id` of an event for more than one device (its `audience` lists them).
const SEVERAL_DEVICES: &str = "*";

fn audience(row: &[Value]) -> Result<Audience, StoreError> {
    Ok(match (text(row, 3)?, text(row, 4)?) {
        (_, Some(list)) => Audience::Devices(
            serde_json::from_str(&list).map_err(|e| StoreError(format!("audience: {e}")))?,
        ),
        (Some(one), None) => Audience::Devices(vec![one]),
        (None, None) => Audience::All,
    })
}

fn logged(row: &[Value]) -> Result<Logged, StoreError> {
    let data = text(row, 5)?.unwrap_or_default();
    Ok(Logged {
        seq: int(row, 0)? as u64,
        at: int(row, 1)?,
        event: text(row, 2)?.unwrap_or_default(),
        to: audience(row)?,
        data: serde_json::from_str(&data).unwrap_or(Json::Null),
    })
}

fn presence(row: &[Value]) -> Result<DevicePresence, StoreError> {
    Ok(DevicePresence {
        device_id: text(row, 0)?.unwrap_or_default(),
        state: PresenceState::parse(&text(row, 1)?.unwrap_or_default()),
        last_seen: int(row, 2)?,
        acked_seq: int(row, 3)? as u64,
    })
}

impl<E: SyncSql> SqlStore<E> {
    fn user(&self) -> Value {
        Value::Text(self.user_id.clone())
    }
}

impl<E: SyncSql> HubStore for SqlStore<E> {
    fn append(&mut self, at: i64, new: &NewEvent) -> Result<Logged, StoreError> {
        // One statement takes the next number and stores the event: nothing can take a
        // number without storing its event.
        let stored = self
            .exec
            .rows(APPEND, EventTable::Log.params(&self.user_id, at, new)?)?;
        let seq = stored
            .first()
            .map(|r| int(r, 0))
            .transpose()?
            .ok_or_else(|| StoreError("no sequence number".into()))?;
        Ok(Logged {
            seq: seq as u64,
            at,
            event: new.event.clone(),
            to: new.to.clone(),
            data: new.data.clone(),
        })
    }

    fn after(&self, seq: u64, limit: usize) -> Result<Vec<Logged>, StoreError> {
        self.exec
            .rows(
                "SELECT seq, at, event, target_device_id, audience, data FROM hub_events \
                 WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                // A cursor past what SQLite can hold is past every event.
                vec![
                    self.user(),
                    i64::try_from(seq).unwrap_or(i64::MAX).into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            )?
            .iter()
            .map(|r| logged(r))
            .collect()
    }

    fn bounds(&self) -> Result<(Option<u64>, u64), StoreError> {
        let rows = self.exec.rows(
            "SELECT (SELECT min(seq) FROM hub_events WHERE user_id = ?), \
                    (SELECT last_seq FROM hub_seq WHERE user_id = ?)",
            vec![self.user(), self.user()],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError("no bounds row".into()))?;
        // NULL when the log or the counter has no row yet.
        let oldest = match row.first() {
            Some(Value::Null) => None,
            _ => Some(int(row, 0)? as u64),
        };
        let last = match row.get(1) {
            Some(Value::Null) => 0,
            _ => int(row, 1)? as u64,
        };
        Ok((oldest, last))
    }

    fn prune(&mut self, before_at: i64, keep: u64) -> Result<(), StoreError> {
        let (_, last) = self.bounds()?;
        let keep_from = last.saturating_sub(keep) as i64;
        self.exec.rows(
            "DELETE FROM hub_events WHERE user_id = ? AND (at < ? OR seq <= ?)",
            vec![self.user(), before_at.into(), keep_from.into()],
        )?;
        Ok(())
    }

    fn outbox_taken(&self) -> Result<u64, StoreError> {
        let rows = self.exec.rows(
            "SELECT taken FROM hub_outbox WHERE user_id = ?",
            vec![self.user()],
        )?;
        Ok(match rows.first() {
            Some(row) => int(row, 0)? as u64,
            None => 0,
        })
    }

    fn set_outbox_taken(&mut self, id: u64) -> Result<(), StoreError> {
        self.exec.rows(
            "INSERT INTO hub_outbox (user_id, taken) VALUES (?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET taken = max(taken, excluded.taken)",
            vec![self.user(), i64::try_from(id).unwrap_or(i64::MAX).into()],
        )?;
        Ok(())
    }

    fn presence(&self, device_id: &str) -> Result<Option<DevicePresence>, StoreError> {
        self.exec
            .rows(
                "SELECT device_id, state, last_seen, acked_seq FROM hub_presence WHERE user_id = ? AND device_id = ?",
                vec![self.user(), device_id.into()],
            )?
            .first()
            .map(|r| presence(r))
            .transpose()
    }

    fn all_presence(&self) -> Result<Vec<DevicePresence>, StoreError> {
        self.exec
            .rows(
                "SELECT device_id, state, last_seen, acked_seq FROM hub_presence WHERE user_id = ? ORDER BY device_id",
                vec![self.user()],
            )?
            .iter()
            .map(|r| presence(r))
            .collect()
    }

    fn set_presence(&mut self, p: &DevicePresence) -> Result<(), StoreError> {
        self.exec.rows(
            "INSERT INTO hub_presence (user_id, device_id, state, last_seen, acked_seq) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (user_id, device_id) DO UPDATE SET state = excluded.state, \
             last_seen = excluded.last_seen, acked_seq = excluded.acked_seq",
            vec![
                self.user(),
                p.device_id.as_str().into(),
                p.state.as_str().into(),
                p.last_seen.into(),
                (p.acked_seq as i64).into(),
            ],
        )?;
        Ok(())
    }
}
