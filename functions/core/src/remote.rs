//! Remote control sessions: one device of an account asks to see (and drive) another that trusts
//! it; the target's owner approves or denies; either side ends it; it also ends at its maximum
//! duration or when heartbeats stop. Every session row is its own audit record. The media and
//! input flow peer to peer over WebRTC (signals through the hub); `input` relays input through
//! the server when no peer-to-peer path exists.

use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use udc_client::events::{
    InputEvent, Mode, RemoteInput, RemoteSession, SessionEnd, SessionEvent, SessionState,
};
use udc_hub::names;
use udc_hub::{NewEvent, PresenceState, Relay};

use crate::activity::{Actor, Entry, If, Kind};
use crate::auth::Caller;
use crate::config::Turn;
use crate::error::{ApiError, ApiResult};
use crate::events::{payload, Change, When};
use crate::ports::{Http, Hub, Ports, Row, Sql, Stmt};
use crate::web::{json_body, limit_param, Reply};
use crate::{rows, validate, Core, Rq};

/// A request nobody answers within this long expires.
pub const ANSWER_WITHIN_MS: i64 = 60 * 1000;
/// Devices send a heartbeat every 5 s; three missed ends the session.
pub const HEARTBEAT_EVERY_SECS: i64 = 5;
pub const HEARTBEAT_LOST_MS: i64 = 15 * 1000;
pub const DEFAULT_DURATION_SECS: i64 = 3600;
pub const MAX_DURATION_SECS: i64 = 8 * 3600;
const MAX_INPUTS: usize = 64;
/// How long minted TURN credentials last.
const TURN_TTL_SECS: i64 = 3600;

/// The session's columns, read back.
fn mode(raw: &str) -> ApiResult<Mode> {
    Mode::parse(raw).ok_or_else(|| ApiError::internal(format!("a session in mode {raw:?}")))
}

fn state(raw: &str) -> ApiResult<SessionState> {
    SessionState::parse(raw)
        .ok_or_else(|| ApiError::internal(format!("a session in state {raw:?}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    target_device_id: String,
    mode: Mode,
    /// Seconds; default one hour, at most eight.
    max_duration: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputBody {
    events: Vec<Value>,
}

/// A session row as decisions need it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub requester: String,
    pub target: String,
    pub mode: Mode,
    pub max_duration_secs: i64,
    pub state: SessionState,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub ended_by: Option<String>,
    pub requester_seen_at: Option<i64>,
    pub target_seen_at: Option<i64>,
    pub relayed_inputs: i64,
}

macro_rules! select_sessions {
    ($tail:literal) => {
        select_sessions!("", $tail)
    };
    // `extra` columns come after the session's own (index 14 on).
    ($extra:literal, $tail:literal) => {
        concat!(
            "SELECT id, requester_device_id, target_device_id, mode, max_duration_secs, state, created_at, ",
            "answered_at, ended_at, end_reason, ended_by_device_id, requester_seen_at, target_seen_at, ",
            "relayed_inputs",
            $extra,
            " FROM remote_sessions ",
            $tail
        )
    };
}

fn session(row: &Row) -> ApiResult<Session> {
    Ok(Session {
        id: rows::text(row, 0)?,
        requester: rows::text(row, 1)?,
        target: rows::text(row, 2)?,
        mode: mode(&rows::text(row, 3)?)?,
        max_duration_secs: rows::int(row, 4)?,
        state: state(&rows::text(row, 5)?)?,
        created_at: rows::int(row, 6)?,
        answered_at: rows::opt_int(row, 7)?,
        ended_at: rows::opt_int(row, 8)?,
        end_reason: rows::opt_text(row, 9)?,
        ended_by: rows::opt_text(row, 10)?,
        requester_seen_at: rows::opt_int(row, 11)?,
        target_seen_at: rows::opt_int(row, 12)?,
        relayed_inputs: rows::int(row, 13)?,
    })
}

impl Session {
    /// Whether time alone has ended it, and how: unanswered, past its duration, or silent.
    pub fn lapsed(&self, now: i64) -> Option<(SessionState, &'static str)> {
        match self.state {
            SessionState::Pending if now >= self.created_at + ANSWER_WITHIN_MS => {
                Some((SessionState::Expired, "not_answered"))
            }
            SessionState::Active => {
                let started = self.answered_at.unwrap_or(self.created_at);
                let last = self
                    .requester_seen_at
                    .unwrap_or(started)
                    .min(self.target_seen_at.unwrap_or(started));
                if now >= started + self.max_duration_secs * 1000 {
                    Some((SessionState::Ended, "max_duration"))
                } else if now >= last + HEARTBEAT_LOST_MS {
                    Some((SessionState::Ended, "heartbeat_lost"))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn view(&self, now: i64) -> RemoteSession {
        let ts = |t: Option<i64>| t.map(rows::timestamp);
        let remaining_secs = (self.state == SessionState::Active).then(|| {
            let started = self.answered_at.unwrap_or(self.created_at);
            ((started + self.max_duration_secs * 1000 - now).max(0) + 999) / 1000
        });
        RemoteSession {
            id: self.id.clone(),
            requester_device_id: self.requester.clone(),
            target_device_id: self.target.clone(),
            mode: self.mode,
            max_duration: self.max_duration_secs,
            state: self.state,
            created_at: rows::timestamp(self.created_at),
            answered_at: ts(self.answered_at),
            ended_at: ts(self.ended_at),
            end_reason: self.end_reason.clone(),
            ended_by_device_id: self.ended_by.clone(),
            remaining_secs,
            heartbeat_every: HEARTBEAT_EVERY_SECS,
            relayed_inputs: self.relayed_inputs,
        }
    }
}

/// One input event, checked: pointer positions are fractions of the captured screen, so
/// differing resolutions map correctly.
/// Modifier names as browsers and the agent send them (case ignored).
const MODIFIERS: [&str; 7] = [
    "shift", "control", "ctrl", "alt", "altgraph", "meta", "super",
];
/// One wheel event scrolls at most this many steps either way.
const MAX_WHEEL_STEPS: i64 = 100;

fn check_input(e: &Value, i: usize) -> ApiResult<InputEvent> {
    let bad = |what: &str| ApiError::invalid(format!("events[{i}]: {what}"));
    let fraction = |k: &str| {
        e[k].as_f64()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| bad(&format!("{k}: a number from 0 to 1")))
    };
    let fields: &[&str] = match e["type"].as_str() {
        Some("pointer_move") => &["type", "x", "y"],
        Some("pointer_button") => &["type", "button", "down"],
        Some("wheel") => &["type", "dx", "dy"],
        Some("key") => &["type", "key", "down", "modifiers"],
        _ => &[],
    };
    // What the server does not know it does not pass on.
    if let Some(unknown) = e
        .as_object()
        .and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str())))
    {
        if !fields.is_empty() {
            return Err(bad(&format!("{unknown}: not a field of this event")));
        }
    }
    match e["type"].as_str() {
        Some("pointer_move") => {
            fraction("x")?;
            fraction("y")?;
        }
        Some("pointer_button") => {
            if !matches!(e["button"].as_str(), Some("left" | "middle" | "right"))
                || !e["down"].is_boolean()
            {
                return Err(bad("button: left, middle or right, with down: true|false"));
            }
        }
        Some("wheel") => {
            let step = |k: &str| {
                e[k].as_i64()
                    .is_some_and(|v| (-MAX_WHEEL_STEPS..=MAX_WHEEL_STEPS).contains(&v))
            };
            if !step("dx") || !step("dy") {
                return Err(bad(&format!(
                    "wheel: integer dx and dy, -{MAX_WHEEL_STEPS} to {MAX_WHEEL_STEPS}"
                )));
            }
        }
        Some("key") => {
            let key = e["key"].as_str().unwrap_or_default();
            if key.is_empty() || key.chars().count() > 32 || !e["down"].is_boolean() {
                return Err(bad(
                    "key: a key name (1 to 32 characters) with down: true|false",
                ));
            }
            let modifiers_ok = match e.get("modifiers") {
                None => true,
                Some(Value::Array(m)) => {
                    m.len() <= 8
                        && m.iter().all(|v| {
                            v.as_str().is_some_and(|s| {
                                MODIFIERS.contains(&s.to_ascii_lowercase().as_str())
                            })
                        })
                }
                Some(_) => false,
            };
            if !modifiers_ok {
                return Err(bad(&format!(
                    "modifiers: a list of {}",
                    MODIFIERS.join(", ")
                )));
            }
        }
        _ => return Err(bad("type: pointer_move, pointer_button, wheel or key")),
    }
    // Checked above; what is relayed is the typed event the target reads.
    serde_json::from_value(e.clone()).map_err(|err| bad(&err.to_string()))
}

impl<P: Ports> Core<P> {
    /// The caller and the account's session `id` (brought up to date with the clock).
    async fn caller_and_session(
        &self,
        rq: &Rq<'_>,
        id: &str,
    ) -> ApiResult<(Caller, String, Session)> {
        let id = validate::id(id, "remote session")?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    select_sessions!("WHERE id = ? AND user_id = ?"),
                    vec![id.as_str().into(), c.user_id.as_str().into()],
                )]
            })
            .await?;
        let device = caller.device()?.to_owned();
        let row = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("remote session"))?;
        let s = self
            .settle_lapsed(&caller.user_id, session(row)?, rq.now_ms)
            .await?;
        Ok((caller, device, s))
    }

    /// The scheduler's sweep: live sessions that time has ended and nobody has asked about
    /// since (both devices gone) are settled, so the audit trail and the account's devices hear
    /// how they ended. How many it ended.
    pub(crate) async fn settle_lapsed_sessions(&self, now: i64) -> ApiResult<u64> {
        let rows = self
            .ports
            .sql()
            .query(Stmt::new(
                select_sessions!(
                    ", user_id",
                    "WHERE state IN ('pending', 'active') ORDER BY created_at LIMIT 1000"
                ),
                vec![],
            ))
            .await?;
        let mut ended = 0;
        for row in &rows {
            let s = session(row)?;
            if s.lapsed(now).is_some() {
                let settled = self.settle_lapsed(&rows::text(row, 14)?, s, now).await?;
                ended += u64::from(settled.ended_at == Some(now));
            }
        }
        Ok(ended)
    }

    /// Ends a session time has ended (a lost race is harmless: someone else ended it).
    async fn settle_lapsed(&self, user: &str, mut s: Session, now: i64) -> ApiResult<Session> {
        let Some((state, reason)) = s.lapsed(now) else {
            return Ok(s);
        };
        let changed = self.end(user, &s, state, reason, None, now).await?;
        if changed {
            s.state = state;
            s.end_reason = Some(reason.to_owned());
            s.ended_at = Some(now);
        }
        Ok(s)
    }

    /// Moves a live session to an end state; publishes `session_end` when it had started.
    async fn end(
        &self,
        user: &str,
        s: &Session,
        state: SessionState,
        reason: &str,
        by: Option<&str>,
        now: i64,
    ) -> ApiResult<bool> {
        let mut change = Change::new(vec![Stmt::new(
            "UPDATE remote_sessions SET state = ?, end_reason = ?, ended_by_device_id = ?, ended_at = ? \
             WHERE id = ? AND state = ?",
            vec![state.as_str().into(), reason.into(), by.into(), now.into(), s.id.as_str().into(), s.state.as_str().into()],
        )]);
        if s.state == SessionState::Active || by.is_some() {
            let data = payload(&SessionEnd {
                session_id: s.id.clone(),
                reason: reason.to_owned(),
                ended_by_device_id: by.map(str::to_owned),
            })?;
            // Both sides stop at once; the rest of the account sees it too.
            change.event(
                user,
                NewEvent::to_all(names::REMOTE_SESSION_END, data),
                When::Changed,
            );
        }
        // The end stands whether or not the sockets heard of it now: devices replay the log.
        Ok(self.commit(change).await?.one(0))
    }

    pub(crate) async fn request_remote(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let body: RequestBody = json_body(rq.headers, rq.body)?;
        let target = validate::body_id("target_device_id", &body.target_device_id)?;
        let duration = body.max_duration.unwrap_or(DEFAULT_DURATION_SECS);
        if !(60..=MAX_DURATION_SECS).contains(&duration) {
            return Err(ApiError::invalid(format!(
                "max_duration: 60 to {MAX_DURATION_SECS} seconds"
            )));
        }
        let (caller, found) = self
            .caller_with(rq, |c| {
                let me = c.device_id.clone().unwrap_or_default();
                vec![Stmt::new(
                    "SELECT d.id, EXISTS (SELECT 1 FROM trust_links t WHERE t.device_id = d.id AND t.target_device_id = ?) \
                     FROM devices d WHERE d.id = ? AND d.user_id = ? AND d.removed_at IS NULL",
                    vec![me.as_str().into(), target.as_str().into(), c.user_id.as_str().into()],
                )]
            })
            .await?;
        let me = caller.device()?.to_owned();
        let row = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("device"))?;
        if target == me {
            return Err(ApiError::unprocessable(
                "target_device_id: a device cannot control itself",
            ));
        }
        if rows::int(row, 1)? != 1 {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_trusted",
                "the target device does not trust this device; trust it from the target first",
            ));
        }
        let presence = self.ports.hub().presence(&caller.user_id).await?;
        let online = presence
            .iter()
            .any(|p| p.device_id == target && p.state != PresenceState::Offline);
        if !online {
            return Err(ApiError::conflict(
                "device_offline",
                "the target device is not online",
            ));
        }
        let id = self.new_id()?;
        let now = rq.now_ms;
        let s = Session {
            id: id.clone(),
            requester: me.clone(),
            target: target.clone(),
            mode: body.mode,
            max_duration_secs: duration,
            state: SessionState::Pending,
            created_at: now,
            answered_at: None,
            ended_at: None,
            end_reason: None,
            ended_by: None,
            requester_seen_at: None,
            target_seen_at: None,
            relayed_inputs: 0,
        };
        let view = s.view(now);
        let done = self
            .commit(
                Change::new(vec![Stmt::new(
                "INSERT INTO remote_sessions (id, user_id, requester_device_id, target_device_id, mode, \
                 max_duration_secs, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                vec![
                    id.as_str().into(),
                    caller.user_id.as_str().into(),
                    me.as_str().into(),
                    target.as_str().into(),
                    body.mode.as_str().into(),
                    duration.into(),
                    now.into(),
                ],
)]).with_event(
                    &caller.user_id,
                    NewEvent::to_devices(
                        names::REMOTE_REQUEST,
                        vec![target.clone()],
                        payload(&SessionEvent {
                            session: view.clone(),
                        })?,
                    ),
                    When::Always,
                ),
            )
            .await?;
        Ok(Reply::json(StatusCode::CREATED, SessionEvent { session: view })?.warn(done.warning))
    }

    /// The target's owner answers.
    pub(crate) async fn answer_remote(
        &self,
        rq: &Rq<'_>,
        id: &str,
        approve: bool,
    ) -> ApiResult<Reply> {
        let (caller, me, mut s) = self.caller_and_session(rq, id).await?;
        if me != s.target {
            return Err(ApiError::forbidden(
                "only the target device answers a remote control request",
            ));
        }
        if s.state != SessionState::Pending {
            return Err(ApiError::conflict(
                "session_not_pending",
                format!(
                    "this session is {} ({})",
                    s.state,
                    s.end_reason.as_deref().unwrap_or("answered")
                ),
            ));
        }
        let now = rq.now_ms;
        let (state, reason) = if approve {
            (SessionState::Active, None)
        } else {
            (SessionState::Denied, Some("denied"))
        };
        // The session as it will be, for its events (written with the change) and the answer.
        s.state = state;
        s.answered_at = Some(now);
        s.end_reason = reason.map(str::to_owned);
        s.requester_seen_at = Some(now);
        s.target_seen_at = Some(now);
        let view = s.view(now);
        let user = caller.user_id.as_str();
        let name = if approve {
            names::REMOTE_APPROVED
        } else {
            names::REMOTE_DENIED
        };
        let mut change = Change::new(vec![Stmt::new(
            "UPDATE remote_sessions SET state = ?, answered_at = ?, end_reason = ?, ended_at = ?, \
                 requester_seen_at = ?, target_seen_at = ? WHERE id = ? AND state = 'pending'",
            vec![
                state.as_str().into(),
                now.into(),
                reason.into(),
                (!approve).then_some(now).into(),
                now.into(),
                now.into(),
                s.id.as_str().into(),
            ],
        )]);
        if approve {
            change.push(
                Entry::new(Kind::RemoteSession)
                    .on(&s.requester)
                    .with(serde_json::json!({ "session_id": s.id, "mode": s.mode.as_str() }))
                    .stmt(rq, user, Actor::from(&caller), If::Changed),
            );
        }
        change.event(
            user,
            NewEvent::to_devices(
                name,
                vec![s.requester.clone()],
                payload(&SessionEvent {
                    session: view.clone(),
                })?,
            ),
            When::Changed,
        );
        if approve {
            change.event(
                user,
                NewEvent::to_all(
                    names::REMOTE_SESSION_START,
                    payload(&SessionEvent {
                        session: view.clone(),
                    })?,
                ),
                When::Changed,
            );
        }
        let done = self.commit(change).await?;
        if !done.one(0) {
            return Err(ApiError::conflict(
                "session_not_pending",
                "this session was answered meanwhile",
            ));
        }
        Ok(Reply::ok(SessionEvent { session: view })?.warn(done.warning))
    }

    pub(crate) async fn get_remote(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (_, _, s) = self.caller_and_session(rq, id).await?;
        Reply::ok(SessionEvent {
            session: s.view(rq.now_ms),
        })
    }

    /// Either side ends it (the requester may also withdraw an unanswered request).
    pub(crate) async fn end_remote(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (caller, me, s) = self.caller_and_session(rq, id).await?;
        let reason = if me == s.requester {
            if s.state == SessionState::Pending {
                "canceled"
            } else {
                "requester_ended"
            }
        } else if me == s.target {
            "target_ended"
        } else {
            return Err(ApiError::forbidden(
                "only the two devices of a session end it",
            ));
        };
        if !s.state.live() {
            // Already over: ending is idempotent.
            return Reply::ok(SessionEvent {
                session: s.view(rq.now_ms),
            });
        }
        let now = rq.now_ms;
        let state = if s.state == SessionState::Pending {
            SessionState::Expired
        } else {
            SessionState::Ended
        };
        self.end(&caller.user_id, &s, state, reason, Some(&me), now)
            .await?;
        let (_, _, s) = self.caller_and_session(rq, id).await?;
        Reply::ok(SessionEvent {
            session: s.view(now),
        })
    }

    /// Each side says it is still there, every 5 s while the session is live.
    pub(crate) async fn heartbeat_remote(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (_, me, mut s) = self.caller_and_session(rq, id).await?;
        let stmt = if me == s.requester {
            s.requester_seen_at = Some(rq.now_ms);
            "UPDATE remote_sessions SET requester_seen_at = ? WHERE id = ? AND state = 'active'"
        } else if me == s.target {
            s.target_seen_at = Some(rq.now_ms);
            "UPDATE remote_sessions SET target_seen_at = ? WHERE id = ? AND state = 'active'"
        } else {
            return Err(ApiError::forbidden(
                "only the two devices of a session send its heartbeats",
            ));
        };
        if s.state != SessionState::Active {
            return Err(ApiError::conflict(
                "session_not_active",
                format!(
                    "this session is {} ({})",
                    s.state,
                    s.end_reason.as_deref().unwrap_or("not started")
                ),
            ));
        }
        self.ports
            .sql()
            .batch(vec![Stmt::new(
                stmt,
                vec![rq.now_ms.into(), s.id.as_str().into()],
            )])
            .await?;
        Reply::ok(SessionEvent {
            session: s.view(rq.now_ms),
        })
    }

    /// Input relayed through the account's hub, for when no peer-to-peer path exists.
    pub(crate) async fn relay_input(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let (caller, me, s) = self.caller_and_session(rq, id).await?;
        if me != s.requester {
            return Err(ApiError::forbidden(
                "only the controlling device sends input",
            ));
        }
        if s.state != SessionState::Active {
            return Err(ApiError::conflict(
                "session_not_active",
                format!("this session is {}", s.state),
            ));
        }
        if s.mode != Mode::ViewAndControl {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "view_only",
                "this session is view only: input is not allowed",
            ));
        }
        let body: InputBody = json_body(rq.headers, rq.body)?;
        if body.events.is_empty() || body.events.len() > MAX_INPUTS {
            return Err(ApiError::invalid(format!(
                "events: 1 to {MAX_INPUTS} input events"
            )));
        }
        let events = body
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| check_input(e, i))
            .collect::<ApiResult<Vec<InputEvent>>>()?;
        let count = events.len() as i64;
        // Keystrokes are never stored: relayed to the target's open sockets, or refused.
        let reached = self
            .ports
            .hub()
            .relay(
                &caller.user_id,
                Relay {
                    device_id: s.target.clone(),
                    event: names::REMOTE_INPUT.into(),
                    data: payload(&RemoteInput {
                        session_id: s.id.clone(),
                        events,
                    })?,
                },
            )
            .await?;
        if reached == 0 {
            return Err(ApiError::conflict(
                "device_offline",
                "the target has no open socket to relay input to (on Spin none can be held): \
                 send input on the session's data channel",
            ));
        }
        // The input is delivered: a failure to count it must not make the client send it again.
        let counted = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "UPDATE remote_sessions SET relayed_inputs = relayed_inputs + ?, requester_seen_at = ? WHERE id = ? AND state = 'active'",
                vec![count.into(), rq.now_ms.into(), s.id.as_str().into()],
            )])
            .await
            .err()
            .map(|e| format!("counting relayed input: {e}"));
        Ok(Reply::json(
            StatusCode::ACCEPTED,
            serde_json::json!({ "relayed": count }),
        )?
        .warn(counted))
    }

    /// The audit trail: the account's sessions, newest first.
    pub(crate) async fn list_remote(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let limit = limit_param(rq.query, 50, 200)?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    select_sessions!(
                        "WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?"
                    ),
                    vec![c.user_id.as_str().into(), limit.into()],
                )]
            })
            .await?;
        let mut list = Vec::new();
        for row in found.first().map(Vec::as_slice).unwrap_or_default() {
            let s = self
                .settle_lapsed(&caller.user_id, session(row)?, rq.now_ms)
                .await?;
            list.push(s.view(rq.now_ms));
        }
        Reply::ok(serde_json::json!({ "sessions": list }))
    }

    /// STUN from configuration; with a TURN relay configured, short-lived credentials for it.
    pub(crate) async fn ice_servers(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let device = caller.device()?;
        let mut servers = vec![serde_json::json!({ "urls": self.config.stun_urls })];
        match &self.config.turn {
            None => {}
            Some(Turn::Cloudflare { key_id, api_token }) => {
                servers.push(self.cloudflare_turn(key_id, api_token).await?)
            }
            Some(Turn::SharedSecret { urls, secret }) => servers.push(shared_secret_turn(
                urls,
                secret,
                device,
                rq.now_ms / 1000 + TURN_TTL_SECS,
            )?),
        }
        Reply::ok(serde_json::json!({ "ice_servers": servers, "ttl": TURN_TTL_SECS }))
    }

    /// Credentials minted by Cloudflare Realtime TURN for the key.
    async fn cloudflare_turn(&self, key_id: &str, api_token: &str) -> ApiResult<Value> {
        let req = http::Request::builder()
            .method("POST")
            .uri(format!(
                "https://rtc.live.cloudflare.com/v1/turn/keys/{key_id}/credentials/generate"
            ))
            .header("authorization", format!("Bearer {api_token}"))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({ "ttl": TURN_TTL_SECS })
                    .to_string()
                    .into_bytes(),
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let resp = self.ports.http().send(req).await?;
        let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        match body.get("iceServers") {
            Some(ice) if resp.status().is_success() => Ok(ice.clone()),
            _ => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "turn_unavailable",
                format!("the TURN service answered {}", resp.status()),
            )),
        }
    }
}

/// A credential for a TURN server that shares `secret` with udc (coturn's `use-auth-secret`):
/// the user name says until when (Unix seconds) and for which device, the password is the
/// HMAC-SHA1 of the name under the secret, in base64. The server checks both without asking.
fn shared_secret_turn(
    urls: &[String],
    secret: &[u8],
    device: &str,
    expires_at: i64,
) -> ApiResult<Value> {
    use base64::Engine;
    use hmac::Mac;
    let username = format!("{expires_at}:{device}");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok(serde_json::json!({ "urls": urls, "username": username, "credential": credential }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_secret_turn_credential_is_coturns_rest_scheme() {
        // Worked out apart (Python's hmac): base64(HMAC-SHA1(secret, "expiry:device")).
        let v = shared_secret_turn(
            &["turn:127.0.0.1:3478".to_owned()],
            b"a-turn-secret-of-32-characters!!",
            "0b5c9a0e-0000-4000-8000-000000000001",
            1_700_003_600,
        )
        .unwrap();
        assert_eq!(
            v["username"],
            "1700003600:0b5c9a0e-0000-4000-8000-000000000001"
        );
        assert_eq!(v["credential"], "85tWk25D4Ia7j6/TYWQXWa4stfg=");
        assert_eq!(v["urls"][0], "turn:127.0.0.1:3478");
    }

    fn active(at: i64) -> Session {
        Session {
            id: "s".into(),
            requester: "r".into(),
            target: "t".into(),
            mode: Mode::ViewOnly,
            max_duration_secs: 120,
            state: SessionState::Active,
            created_at: at - 1000,
            answered_at: Some(at),
            ended_at: None,
            end_reason: None,
            ended_by: None,
            requester_seen_at: Some(at),
            target_seen_at: Some(at),
            relayed_inputs: 0,
        }
    }

    #[test]
    fn sessions_lapse_unanswered_silent_or_past_their_duration() {
        let mut s = active(0);
        assert_eq!(s.lapsed(14_999), None);
        assert_eq!(
            s.lapsed(15_000),
            Some((SessionState::Ended, "heartbeat_lost"))
        );
        s.requester_seen_at = Some(110_000);
        s.target_seen_at = Some(118_000);
        assert_eq!(s.lapsed(119_000), None);
        assert_eq!(
            s.lapsed(120_000),
            Some((SessionState::Ended, "max_duration"))
        );
        s.state = SessionState::Pending;
        assert_eq!(s.lapsed(s.created_at + ANSWER_WITHIN_MS - 1), None);
        assert_eq!(
            s.lapsed(s.created_at + ANSWER_WITHIN_MS),
            Some((SessionState::Expired, "not_answered"))
        );
        s.state = SessionState::Ended;
        assert_eq!(s.lapsed(i64::MAX / 2), None);
    }

    #[test]
    fn input_events_are_checked() {
        for ok in [
            serde_json::json!({ "type": "pointer_move", "x": 0.5, "y": 1 }),
            serde_json::json!({ "type": "pointer_button", "button": "left", "down": true }),
            serde_json::json!({ "type": "wheel", "dx": 0, "dy": -3 }),
            serde_json::json!({ "type": "key", "key": "a", "down": false, "modifiers": ["shift"] }),
        ] {
            assert!(check_input(&ok, 0).is_ok(), "{ok}");
        }
        for bad in [
            serde_json::json!({ "type": "pointer_move", "x": 1.5, "y": 0 }),
            serde_json::json!({ "type": "pointer_button", "button": "back", "down": true }),
            serde_json::json!({ "type": "key", "key": "", "down": true }),
            serde_json::json!({ "type": "shell", "cmd": "rm" }),
        ] {
            assert!(check_input(&bad, 0).is_err(), "{bad}");
        }
    }
}
