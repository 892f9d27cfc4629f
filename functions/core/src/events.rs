//! A change's events, written with it. Where the account's log lives in core's database
//! (udc-server, Spin), each event is a statement in the change's own batch, right after the
//! statement it reports: the change and its event commit together or not at all, so a crash can
//! neither lose the event of a change made nor log one for a change not made, and no sequence
//! number is taken without its event. Where the log is apart (the Worker's Durable Object), the
//! same events are published after the batch commits, on the same conditions
//! (docs/ARCHITECTURE.md, "A change and its events commit together").

use udc_hub::sql_store::{
    log_head_params, log_params, LOG_EVENT, LOG_EVENT_COUNTING, LOG_EVENT_IF_CHANGED,
};
use udc_hub::{Audience, NewEvent};

use crate::error::{ApiError, ApiResult};
use crate::ports::{Clock, Hub, Ports, Sql, Stmt, Value};
use crate::Core;

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
    /// An event whose data SQL computes in the batch (`udc_hub::log_event_select!`; its
    /// parameters after the head's): stored where the log shares core's database only, the
    /// handler publishing the same data elsewhere.
    Selected {
        event: NewEvent,
        sql: &'static str,
        params: Vec<Value>,
    },
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
    /// last (see `Logged::Selected`; `event`'s data is not used).
    pub fn event_selected(
        &mut self,
        user: &str,
        event: NewEvent,
        sql: &'static str,
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

fn log_stmt(p: &Pending, at: i64) -> ApiResult<Stmt> {
    let internal = |e: udc_hub::StoreError| ApiError::internal(e.to_string());
    match &p.what {
        Logged::Built { when, event } => {
            let mut params = log_params(&p.user, at, event).map_err(internal)?;
            let sql = match when {
                When::Always => LOG_EVENT,
                When::Changed => LOG_EVENT_IF_CHANGED,
                When::Counting(key) => {
                    params.push(format!("$.{key}").into());
                    LOG_EVENT_COUNTING
                }
            };
            Ok(Stmt::new(sql, params))
        }
        Logged::Selected { event, sql, params } => {
            let mut all = log_head_params(&p.user, at, event).map_err(internal)?;
            all.extend(params.iter().cloned());
            Ok(Stmt::new(sql, all))
        }
    }
}

impl<P: Ports> Core<P> {
    /// Runs a change in one batch with its events (see the module comment).
    pub(crate) async fn commit(&self, change: Change) -> ApiResult<Committed> {
        let Change { stmts, events } = change;
        let hub = self.ports.hub();
        if events.is_empty() {
            let changes = self.ports.sql().batch(stmts).await?;
            return Ok(Committed {
                changes,
                warning: None,
            });
        }
        if hub.logs_in_sql() {
            // The log's own clock: retention and replay read `at` against it.
            let at = self.ports.clock().now_ms();
            let mut all = Vec::with_capacity(stmts.len() + events.len());
            let mut is_event = Vec::with_capacity(all.capacity());
            let mut pending = events.iter().peekable();
            for (i, stmt) in stmts.into_iter().enumerate() {
                all.push(stmt);
                is_event.push(false);
                while let Some(p) = pending.next_if(|p| p.after == i) {
                    all.push(log_stmt(p, at)?);
                    is_event.push(true);
                }
            }
            let counts = self.ports.sql().batch(all).await?;
            let changes = counts
                .into_iter()
                .zip(is_event)
                .filter(|(_, event)| !event)
                .map(|(n, _)| n)
                .collect();
            // A change's events are all for one account; counted per account all the same.
            let mut logged: Vec<(&str, usize)> = Vec::new();
            for p in &events {
                match logged.iter_mut().find(|(u, _)| *u == p.user) {
                    Some((_, n)) => *n += 1,
                    None => logged.push((&p.user, 1)),
                }
            }
            let mut warning = None;
            for (user, count) in logged {
                if let Err(e) = hub.logged(user, count).await {
                    warning = Some(e.to_string());
                }
            }
            return Ok(Committed { changes, warning });
        }
        let changes = self.ports.sql().batch(stmts).await?;
        let mut warning = None;
        for p in events {
            let reported = changes.get(p.after).copied().unwrap_or(0);
            let Logged::Built { when, mut event } = p.what else {
                continue;
            };
            match when {
                When::Changed if reported == 0 => continue,
                When::Counting(key) => {
                    if let Some(data) = event.data.as_object_mut() {
                        data.insert(key.to_owned(), reported.into());
                    }
                }
                _ => {}
            }
            if let Err(e) = hub.publish(&p.user, event).await {
                warning = Some(e.to_string());
            }
        }
        Ok(Committed { changes, warning })
    }
}
