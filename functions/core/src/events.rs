//! A change's events, written with it. Where the account's log lives in core's database
//! (udc-server, Spin), each event is a statement in the change's own batch, right after the
//! statement it reports: the change and its event commit together or not at all, so a crash can
//! neither lose the event of a change made nor log one for a change not made, and no sequence
//! number is taken without its event. Where the log is apart (the Worker's Durable Object), the
//! same statements write the events to an outbox in core's database instead, and core sends
//! the outbox to the hub after the batch, the hub taking each event once by its outbox id: what
//! a failed send leaves there goes with the account's next change or the scheduled run
//! (docs/ARCHITECTURE.md, "A change and its events commit together").

use udc_hub::sql_store::{outboxed, EventTable, OUTBOX_COLUMNS, OUTBOX_PAGE};
use udc_hub::{Audience, NewEvent};

use crate::error::{ApiError, ApiResult};
use crate::ports::{Clock, Hub, HubError, Ports, Row, Sql, Stmt, Value};
use crate::Core;

/// Events sent to the hub per call; an account's outbox holds more only after the hub was
/// unreachable a while.
const OUTBOX_BATCH: i64 = 100;
/// At most this many batches per send: the rest go with the next.
const OUTBOX_BATCHES_PER_SEND: usize = 10;

/// When an event is stored, judged by the statement pushed before it. Several events after one
/// statement share its condition (in SQL each looks at the one before it, which stored or not
/// on the same condition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum When {
    /// Whatever the statement did.
    Always,
    /// Only if the statement changed a row.
    Changed,
    /// Always, with how many rows the statement changed under this key of the event's data
    /// (first after its statement).
    Counting(&'static str),
}

struct Pending {
    /// The statement it reports, by index.
    after: usize,
    user: String,
    what: Logged,
}

enum Logged {
    /// An event built before the batch.
    Built { when: When, event: NewEvent },
    /// An event whose data SQL computes in the batch.
    Selected {
        event: NewEvent,
        sql: SelectedSql,
        params: Vec<Value>,
    },
}

/// An event INSERT whose data a SELECT computes, in its two forms: after
/// `udc_hub::log_event_select!()` and after `udc_hub::outbox_event_select!()`, the same
/// expression with the same parameters (which follow the head's).
pub(crate) struct SelectedSql {
    pub log: &'static str,
    pub outbox: &'static str,
}

/// The statements of one change, and the events that report it.
#[derive(Default)]
pub(crate) struct Change {
    stmts: Vec<Stmt>,
    events: Vec<Pending>,
}

/// A committed change: each of its statements' changed rows (its events' left out, so indexes
/// are those of the statements pushed), and a warning when its events were logged but could
/// not be sent (the change stands; devices replay them).
pub(crate) struct Committed {
    pub changes: Vec<u64>,
    pub warning: Option<String>,
}

impl Committed {
    /// Whether statement `i` changed exactly one row.
    pub fn one(&self, i: usize) -> bool {
        self.changes.get(i) == Some(&1)
    }
}

impl Change {
    pub fn new(stmts: Vec<Stmt>) -> Change {
        Change {
            stmts,
            events: Vec::new(),
        }
    }

    pub fn push(&mut self, stmt: Stmt) {
        self.stmts.push(stmt);
    }

    pub fn extend(&mut self, stmts: impl IntoIterator<Item = Stmt>) {
        self.stmts.extend(stmts);
    }

    /// An event reporting the statement pushed last. An event for no device (a copy in an
    /// account where nobody else receives) is not stored.
    pub fn event(&mut self, user: &str, event: NewEvent, when: When) {
        if matches!(&event.to, Audience::Devices(none) if none.is_empty()) {
            return;
        }
        self.events.push(Pending {
            after: self.stmts.len().saturating_sub(1),
            user: user.to_owned(),
            what: Logged::Built { when, event },
        });
    }

    /// An event whose data `sql` computes inside the batch, reporting the statement pushed
    /// last (`event`'s data is not used).
    pub fn event_selected(
        &mut self,
        user: &str,
        event: NewEvent,
        sql: SelectedSql,
        params: Vec<Value>,
    ) {
        self.events.push(Pending {
            after: self.stmts.len().saturating_sub(1),
            user: user.to_owned(),
            what: Logged::Selected { event, sql, params },
        });
    }

    /// Builder form of `event`.
    pub fn with_event(mut self, user: &str, event: NewEvent, when: When) -> Change {
        self.event(user, event, when);
        self
    }
}

/// The account's oldest events waiting in the outbox, a batch of them.
fn outbox_page(user: &str) -> Stmt {
    Stmt::new(OUTBOX_PAGE, vec![user.into(), OUTBOX_BATCH.into()])
}

/// An event's data from its typed payload (`udc_client::events`).
pub(crate) fn payload(data: &impl serde::Serialize) -> ApiResult<serde_json::Value> {
    serde_json::to_value(data).map_err(|e| ApiError::internal(format!("event data: {e}")))
}

fn event_stmt(p: &Pending, table: EventTable, at: i64) -> ApiResult<Stmt> {
    let internal = |e: udc_hub::StoreError| ApiError::internal(e.to_string());
    match &p.what {
        Logged::Built { when, event } => {
            let mut params = table.params(&p.user, at, event).map_err(internal)?;
            let sql = match when {
                When::Always => table.always(),
                When::Changed => table.if_changed(),
                When::Counting(key) => {
                    params.push(format!("$.{key}").into());
                    table.counting()
                }
            };
            Ok(Stmt::new(sql, params))
        }
        Logged::Selected { event, sql, params } => {
            let mut all = table.head_params(&p.user, at, event).map_err(internal)?;
            all.extend(params.iter().cloned());
            let sql = match table {
                EventTable::Log => sql.log,
                EventTable::Outbox => sql.outbox,
            };
            Ok(Stmt::new(sql, all))
        }
    }
}

impl<P: Ports> Core<P> {
    /// Runs a change in one batch with its events (see the module comment).
    pub(crate) async fn commit(&self, change: Change) -> ApiResult<Committed> {
        let Change { stmts, events } = change;
        if events.is_empty() {
            let changes = self.ports.sql().batch(stmts).await?;
            return Ok(Committed {
                changes,
                warning: None,
            });
        }
        let hub = self.ports.hub();
        let table = if hub.logs_in_sql() {
            EventTable::Log
        } else {
            EventTable::Outbox
        };
        // The log's own clock: retention and replay read `at` against it.
        let at = self.ports.clock().now_ms();
        let mut all = Vec::with_capacity(stmts.len() + events.len());
        let mut is_event = Vec::with_capacity(all.capacity());
        let mut pending = events.iter().peekable();
        for (i, stmt) in stmts.into_iter().enumerate() {
            all.push(stmt);
            is_event.push(false);
            while let Some(p) = pending.next_if(|p| p.after == i) {
                all.push(event_stmt(p, table, at)?);
                is_event.push(true);
            }
        }
        // A change's events are all for one account; counted per account all the same.
        let mut logged: Vec<(&str, usize)> = Vec::new();
        for p in &events {
            match logged.iter_mut().find(|(u, _)| *u == p.user) {
                Some((_, n)) => *n += 1,
                None => logged.push((&p.user, 1)),
            }
        }
        // Where the events go through the outbox, the batch also reads its first page: the
        // events reach the hub one round trip sooner.
        let (counts, mut first_page) = match (table, logged.first()) {
            (EventTable::Outbox, Some((user, _))) => {
                let (counts, page) = self
                    .ports
                    .sql()
                    .batch_then_read(all, outbox_page(user), &OUTBOX_COLUMNS)
                    .await?;
                (counts, Some(page))
            }
            _ => (self.ports.sql().batch(all).await?, None),
        };
        let changes = counts
            .into_iter()
            .zip(is_event)
            .filter(|(_, event)| !event)
            .map(|(n, _)| n)
            .collect();
        let mut warning = None;
        for (user, count) in logged {
            let sent = match table {
                EventTable::Log => hub.logged(user, count).await,
                EventTable::Outbox => self.send_outbox(user, first_page.take()).await,
            };
            if let Err(e) = sent {
                warning = Some(e.to_string());
            }
        }
        Ok(Committed { changes, warning })
    }

    /// Sends the account's outbox to its hub, oldest first, and forgets what the hub took.
    /// Requests of one account may send at once: the hub takes each id once, in order, as ids
    /// grow in the order their changes committed and each send reads the outbox after its own
    /// change committed.
    /// `first_page`: the outbox's first page, when the caller has read it already.
    pub(crate) async fn send_outbox(
        &self,
        user: &str,
        mut first_page: Option<Vec<Row>>,
    ) -> Result<(), HubError> {
        let sql = self.ports.sql();
        let outbox = |e: crate::ports::SqlError| HubError(format!("outbox: {e}"));
        for _ in 0..OUTBOX_BATCHES_PER_SEND {
            let rows = match first_page.take() {
                Some(rows) => rows,
                None => sql.query(outbox_page(user)).await.map_err(outbox)?,
            };
            let batch = rows
                .iter()
                .map(|r| outboxed(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(HubError::new)?;
            let Some(last) = batch.last().map(|o| o.id) else {
                return Ok(());
            };
            let full = batch.len() as i64 == OUTBOX_BATCH;
            let taken = self.ports.hub().take_outboxed(user, batch).await?;
            // The hub answers the last id it ever took; only those sent here are forgotten.
            let forget = i64::try_from(taken.min(last)).unwrap_or(i64::MAX);
            sql.batch(vec![Stmt::new(
                "DELETE FROM event_outbox WHERE user_id = ? AND id <= ?",
                vec![user.into(), forget.into()],
            )])
            .await
            .map_err(outbox)?;
            if !full {
                break;
            }
        }
        Ok(())
    }
}
