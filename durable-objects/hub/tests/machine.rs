//! The hub machine on real SQLite (the schema the hosts use), with time as an input: what the
//! black-box suite cannot wait for — heartbeat timeouts, retention, resync — is driven here.
// A test file: its helpers, like its tests, fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rusqlite::Connection;
use serde_json::json;
use udc_hub::machine::{ALARM_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, RETAIN_EVENTS, RETAIN_MS};
use udc_hub::protocol::close;
use udc_hub::sql_store::{AUDIENCE_COLUMN, FRESH_SCHEMA, SCHEMA, SEQ_TRIGGER};
use udc_hub::*;
use udc_sql::{Row, SqlError, Value};

#[derive(Clone)]
struct Db(Rc<RefCell<Connection>>);

impl SyncSql for Db {
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        udc_sql::rusqlite::rows(&self.0.borrow(), sql, &params)
    }
}

fn hub() -> Hub<SqlStore<Db>> {
    hub_and_db().0
}

/// A hub and its database, for writing to the log as core does, beside the hub.
fn hub_and_db() -> (Hub<SqlStore<Db>>, Db) {
    let conn = Connection::open_in_memory().unwrap();
    for file in FRESH_SCHEMA {
        conn.execute_batch(file).unwrap();
    }
    let db = Db(Rc::new(RefCell::new(conn)));
    let hub = Hub::new(
        SqlStore {
            exec: db.clone(),
            user_id: "u".into(),
        },
        [],
    );
    (hub, db)
}

/// A database that refuses the next statement containing `on` once it is set, as a crash or a
/// full disk would cut a write short.
#[derive(Clone)]
struct Refusing {
    db: Db,
    on: Rc<Cell<Option<&'static str>>>,
}

impl SyncSql for Refusing {
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        if self.on.get().is_some_and(|on| sql.contains(on)) {
            self.on.set(None);
            return Err(SqlError("refused".into()));
        }
        self.db.rows(sql, params)
    }
}

fn frames(out: &[Output], conn: ConnId) -> Vec<HubFrame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c, text) if *c == conn => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output], conn: ConnId) -> Vec<Event> {
    frames(out, conn)
        .into_iter()
        .filter_map(|f| match f {
            HubFrame::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn rename(n: u32) -> NewEvent {
    NewEvent::to_all("device.updated", json!({ "n": n }))
}

const T0: i64 = 1_800_000_000_000;

#[test]
fn replay_sends_what_was_missed_in_order_then_ready_then_live() {
    let mut h = hub();
    h.connect(1, "a", "s-a", None, T0).unwrap();
    let mut seqs = Vec::new();
    for n in 0..3 {
        seqs.push(h.publish(rename(n), T0).unwrap().0.seq);
    }
    let out = h.connect(2, "b", "s-b", Some(seqs[0] - 1), T0).unwrap();
    let f = frames(&out, 2);
    let replayed: Vec<u64> = events(&out, 2).iter().take(3).map(|e| e.seq).collect();
    assert_eq!(replayed, seqs);
    let ready = f
        .iter()
        .position(|f| matches!(f, HubFrame::Ready { .. }))
        .unwrap();
    assert_eq!(ready, 3, "ready right after the replay: {f:?}");
    // b's own online event is live, after ready; a sees it too.
    assert!(events(&out, 1)
        .iter()
        .any(|e| e.event == "device.online" && e.data["device_id"] == "b"));
    assert!(matches!(out.last(), Some(Output::Alarm(at)) if *at == T0 + ALARM_INTERVAL_MS));
}

/// An event the database refuses half-way takes no sequence number: the next one gets the next
/// number, so no device ever sees a gap (a number given out and no event stored under it).
#[test]
fn an_event_the_database_refuses_leaves_no_gap_in_the_numbers() {
    let conn = Connection::open_in_memory().unwrap();
    for file in FRESH_SCHEMA {
        conn.execute_batch(file).unwrap();
    }
    let on = Rc::new(Cell::new(None));
    let mut h = Hub::new(
        SqlStore {
            exec: Refusing {
                db: Db(Rc::new(RefCell::new(conn))),
                on: on.clone(),
            },
            user_id: "u".into(),
        },
        [],
    );
    let first = h.publish(rename(0), T0).unwrap().0.seq;
    on.set(Some("INSERT INTO hub_events"));
    assert!(h.publish(rename(1), T0).is_err());
    let next = h.publish(rename(2), T0).unwrap().0.seq;
    assert_eq!(next, first + 1);
    let seqs: Vec<u64> = h
        .events_after("a", 0)
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [first, first + 1]);
}

/// Core writes events in its own batches (`EventTable::Log`), beside the hub: the hub sends each one
/// to the open sockets once, in order with its own, and a socket that connects in between gets
/// it in its replay and not again.
#[test]
fn events_core_logged_reach_every_socket_once_in_order() {
    let (mut h, db) = hub_and_db();
    h.connect(1, "a", "s-a", None, T0).unwrap();
    let core_logs = |n: u32| {
        let params = udc_hub::sql_store::EventTable::Log
            .params("u", T0, &rename(n))
            .unwrap();
        db.rows(udc_hub::sql_store::EventTable::Log.always(), params)
            .unwrap();
    };
    core_logs(1);
    core_logs(2);
    // The hub logs one of its own before it is told: the two before it go out first.
    let (own, out) = h
        .publish(NewEvent::to_all("device.updated", json!({ "n": 3 })), T0)
        .unwrap();
    let sent: Vec<(u64, u64)> = events(&out, 1)
        .iter()
        .map(|e| (e.seq, e.data["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(sent, [(own.seq - 2, 1), (own.seq - 1, 2), (own.seq, 3)]);
    assert!(h.deliver().unwrap().is_empty(), "nothing twice");

    core_logs(4);
    let out = h.connect(2, "b", "s-b", Some(own.seq), T0).unwrap();
    let live: Vec<String> = events(&out, 1).into_iter().map(|e| e.event).collect();
    assert_eq!(
        live,
        ["device.updated", "device.online"],
        "the open socket gets it live"
    );
    let replayed: Vec<u64> = events(&out, 2)
        .iter()
        .filter(|e| e.event == "device.updated")
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, [4], "the new one in its replay");
    let later = h.deliver().unwrap();
    assert!(events(&later, 2).is_empty() && events(&later, 1).is_empty());
}

#[test]
fn targeted_events_reach_and_replay_to_their_device_only() {
    let mut h = hub();
    h.connect(1, "a", "s-a", None, T0).unwrap();
    h.connect(2, "b", "s-b", None, T0).unwrap();
    let targeted = NewEvent::to_devices("file.available", vec!["b".into()], json!({}));
    let (e, out) = h.publish(targeted, T0).unwrap();
    assert!(events(&out, 1).is_empty());
    assert_eq!(events(&out, 2).len(), 1);
    let later = h.connect(3, "a", "s-a", Some(e.seq - 1), T0).unwrap();
    assert!(events(&later, 3)
        .iter()
        .all(|x| x.event != "file.available"));
    assert!(h.events_after("a", e.seq - 1).unwrap().events.is_empty());
    assert_eq!(h.events_after("b", e.seq - 1).unwrap().events.len(), 1);
}

#[test]
fn an_event_for_several_devices_is_stored_once_and_each_sees_itself_as_target() {
    let mut h = hub();
    for (conn, device) in [(1, "a"), (2, "b"), (3, "c"), (4, "b")] {
        h.connect(conn, device, "s", None, T0).unwrap();
    }
    let (_, last_before) = h.store().bounds().unwrap();
    let new = NewEvent::to_devices("clipboard.sync", vec!["a".into(), "b".into()], json!({}));
    let (e, out) = h.publish(new, T0).unwrap();
    assert_eq!(e.seq, last_before + 1);
    assert_eq!(h.store().bounds().unwrap().1, e.seq, "one row in the log");
    for (conn, device) in [(1, "a"), (2, "b"), (4, "b")] {
        let got = events(&out, conn);
        assert_eq!(got.len(), 1, "{device}");
        assert_eq!(got[0].seq, e.seq);
        assert_eq!(got[0].target_device_id.as_deref(), Some(device));
    }
    assert!(events(&out, 3).is_empty());
    let polled = h.events_after("b", e.seq - 1).unwrap().events;
    assert_eq!(polled[0].target_device_id.as_deref(), Some("b"));
    assert!(h.events_after("c", e.seq - 1).unwrap().events.is_empty());
    // Code from before the audience column, reading this row, delivers it to nobody.
    let old_target: Option<String> = h
        .store()
        .exec
        .0
        .borrow()
        .query_row(
            "SELECT target_device_id FROM hub_events WHERE seq = ?",
            [e.seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_target.as_deref(), Some("*"));
}

/// While a deployment rolls out, a Worker of the version before may publish with
/// `target_device_id`: its event stays addressed to that one device.
#[test]
fn a_publish_from_the_version_before_keeps_its_one_device() {
    let legacy: NewEvent = serde_json::from_value(
        json!({"event": "clipboard.sync", "target_device_id": "b", "data": {}}),
    )
    .unwrap();
    assert_eq!(legacy.to, Audience::Devices(vec!["b".into()]));
    let all: NewEvent =
        serde_json::from_value(json!({"event": "device.updated", "data": {}})).unwrap();
    assert_eq!(all.to, Audience::All);
    let now = NewEvent::to_devices("x", vec!["a".into(), "c".into()], json!({}));
    let again: NewEvent = serde_json::from_value(serde_json::to_value(&now).unwrap()).unwrap();
    assert_eq!(again, now);
}

#[test]
fn events_logged_before_audiences_keep_their_one_target() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute(
        "INSERT INTO hub_events (user_id, seq, at, event, target_device_id, data) \
         VALUES ('u', 1, 0, 'file.available', 'b', '{}')",
        [],
    )
    .unwrap();
    conn.execute_batch(AUDIENCE_COLUMN).unwrap();
    conn.execute_batch(SEQ_TRIGGER).unwrap();
    let h = Hub::new(
        SqlStore {
            exec: Db(Rc::new(RefCell::new(conn))),
            user_id: "u".into(),
        },
        [],
    );
    let to_b = h.events_after("b", 0).unwrap().events;
    assert_eq!(to_b.len(), 1);
    assert_eq!(to_b[0].target_device_id.as_deref(), Some("b"));
    assert!(h.events_after("a", 0).unwrap().events.is_empty());
}

#[test]
fn silence_past_the_heartbeat_window_closes_the_socket_and_marks_offline() {
    let mut h = hub();
    h.connect(1, "a", "s-a", None, T0).unwrap();
    h.connect(2, "watcher", "s-watcher", None, T0).unwrap();
    // The watcher pings; a does not.
    let pong = h
        .frame(2, r#"{"type":"ping"}"#, T0 + HEARTBEAT_TIMEOUT_MS - 1000)
        .unwrap();
    assert!(matches!(frames(&pong, 2)[0], HubFrame::Pong { .. }));
    let out = h.alarm(T0 + HEARTBEAT_TIMEOUT_MS + 1).unwrap();
    assert!(out.contains(&Output::Close(
        1,
        close::HEARTBEAT_TIMEOUT,
        "no heartbeat".into()
    )));
    assert!(!out.iter().any(|o| matches!(o, Output::Close(2, ..))));
    assert!(events(&out, 2)
        .iter()
        .any(|e| e.event == "device.offline" && e.data["device_id"] == "a"));
    let presence = h.presence().unwrap();
    let a = presence.iter().find(|p| p.device_id == "a").unwrap();
    assert_eq!(a.state, PresenceState::Offline);
    assert!(
        matches!(out.last(), Some(Output::Alarm(_))),
        "the watcher keeps the alarm going"
    );
    // With nobody left, no further alarm is asked for.
    let out = h.closed(2, T0 + HEARTBEAT_TIMEOUT_MS + 2).unwrap();
    assert!(!out.iter().any(|o| matches!(o, Output::Alarm(_))));
    assert!(!h
        .alarm(T0 + 2 * HEARTBEAT_TIMEOUT_MS)
        .unwrap()
        .iter()
        .any(|o| matches!(o, Output::Alarm(_))));
}

#[test]
fn a_cursor_older_than_retention_gets_resync_required_never_a_gap() {
    let mut h = hub();
    let first = h.publish(rename(0), T0).unwrap().0.seq;
    h.publish(rename(1), T0).unwrap();
    // Eight days later the old events are pruned.
    let later = T0 + RETAIN_MS + 24 * 3600 * 1000;
    let keep = h.publish(rename(2), later).unwrap().0.seq;
    h.alarm(later).unwrap();
    assert_eq!(h.store().bounds().unwrap(), (Some(keep), keep));
    let out = h.connect(1, "a", "s-a", Some(first), later).unwrap();
    assert_eq!(
        frames(&out, 1)[0],
        HubFrame::ResyncRequired {
            oldest_seq: keep,
            last_seq: keep
        }
    );
    let page = h.events_after("a", first).unwrap();
    assert!(page.resync_required && page.events.is_empty());
    // A cursor just before the oldest kept event is still whole.
    let page = h.events_after("a", keep - 1).unwrap();
    assert!(!page.resync_required);
    assert_eq!(page.events[0].seq, keep);
}

#[test]
fn retention_keeps_at_most_the_newest_ten_thousand_events() {
    let mut h = hub();
    for n in 0..(RETAIN_EVENTS as u32 + 5) {
        h.publish(rename(n), T0).unwrap();
    }
    h.alarm(T0).unwrap();
    let (oldest, last) = h.store().bounds().unwrap();
    assert_eq!(last, RETAIN_EVENTS + 5);
    assert_eq!(oldest, Some(last - RETAIN_EVENTS + 1));
    assert!(h.events_after("a", 0).unwrap().resync_required);
    let page = h.events_after("a", last - RETAIN_EVENTS).unwrap();
    assert!(!page.resync_required && page.more);
}

/// Events core logs in its batches keep the same retention, with no socket open and no alarm
/// (Spin has neither): the hub told of them prunes when their numbers cross a hundred.
#[test]
fn events_core_logged_are_pruned_without_sockets_or_alarms() {
    let (mut h, db) = hub_and_db();
    let params = udc_hub::sql_store::EventTable::Log
        .params("u", T0, &rename(0))
        .unwrap();
    for _ in 0..(RETAIN_EVENTS + 100) {
        db.rows(udc_hub::sql_store::EventTable::Log.always(), params.clone())
            .unwrap();
    }
    let (oldest, last) = h.store().bounds().unwrap();
    assert_eq!(oldest, Some(1), "nothing pruned yet");
    h.logged(1, T0).unwrap();
    assert_eq!(
        h.store().bounds().unwrap(),
        (Some(last - RETAIN_EVENTS + 1), last)
    );
}

#[test]
fn acks_become_the_cursor_and_a_reconnect_is_online_again() {
    let mut h = hub();
    h.connect(1, "a", "s-a", None, T0).unwrap();
    let seen = h.publish(rename(0), T0).unwrap().0.seq;
    h.frame(1, &format!(r#"{{"type":"ack","seq":{seen}}}"#), T0)
        .unwrap();
    h.frame(1, r#"{"type":"presence","state":"idle"}"#, T0)
        .unwrap();
    h.closed(1, T0).unwrap();
    let missed = h.publish(rename(1), T0).unwrap().0.seq;
    let out = h.connect(2, "a", "s-a", None, T0 + 1000).unwrap();
    let replayed: Vec<u64> = events(&out, 2)
        .iter()
        .map(|e| e.seq)
        .filter(|s| *s <= missed)
        .collect();
    assert_eq!(
        replayed.first(),
        Some(&(seen + 1)),
        "resumes after the last ack"
    );
    assert!(replayed.contains(&missed));
    let a = h
        .presence()
        .unwrap()
        .into_iter()
        .find(|p| p.device_id == "a")
        .unwrap();
    assert_eq!(a.state, PresenceState::Online);
    // An ack beyond the log is clamped, not trusted.
    h.frame(2, r#"{"type":"ack","seq":999999}"#, T0).unwrap();
    assert!(h.store().presence("a").unwrap().unwrap().acked_seq <= h.store().bounds().unwrap().1);
}

#[test]
fn a_hub_rebuilt_after_eviction_carries_on_with_its_sockets() {
    let conn = Connection::open_in_memory().unwrap();
    for file in FRESH_SCHEMA {
        conn.execute_batch(file).unwrap();
    }
    let db = Db(Rc::new(RefCell::new(conn)));
    let mut before = Hub::new(
        SqlStore {
            exec: db.clone(),
            user_id: "u".into(),
        },
        [],
    );
    before.connect(7, "a", "s-a", None, T0).unwrap();
    before.connect(8, "b", "s-b", None, T0).unwrap();
    let last = before.publish(rename(0), T0).unwrap().0.seq;
    drop(before);
    // What the Durable Object has after eviction: storage, and sockets with their attachments.
    let restored = [
        (
            7,
            Conn {
                device_id: "a".into(),
                session_id: "s-a".into(),
                last_heartbeat: T0,
            },
        ),
        (
            8,
            Conn {
                device_id: "b".into(),
                session_id: "s-b".into(),
                last_heartbeat: T0,
            },
        ),
    ];
    let mut after = Hub::new(
        SqlStore {
            exec: db,
            user_id: "u".into(),
        },
        restored,
    );
    let (e, out) = after.publish(rename(1), T0).unwrap();
    assert_eq!(e.seq, last + 1, "sequence numbers continue");
    assert_eq!(events(&out, 7).len() + events(&out, 8).len(), 2);
    let out = after
        .frame(
            7,
            r#"{"type":"signal","to_device":"b","payload":{"x":1}}"#,
            T0,
        )
        .unwrap();
    assert_eq!(
        frames(&out, 8),
        vec![HubFrame::Signal {
            from_device: "a".into(),
            payload: json!({"x": 1})
        }]
    );
    let out = after.closed(8, T0).unwrap();
    assert!(events(&out, 7)
        .iter()
        .any(|e| e.event == "device.offline" && e.data["device_id"] == "b"));
}

#[test]
fn an_ended_session_closes_its_sockets_and_a_removed_device_all_of_its_own() {
    let mut h = hub();
    h.connect(1, "a", "s1", None, T0).unwrap();
    h.connect(2, "a", "s2", None, T0).unwrap();
    h.connect(3, "b", "s3", None, T0).unwrap();
    let closed = |out: &[Output]| -> Vec<ConnId> {
        out.iter()
            .filter_map(|o| match o {
                Output::Close(c, code, _) if *code == close::REVOKED => Some(*c),
                _ => None,
            })
            .collect()
    };
    let out = h.revoke(&Revoked::Session("s1".into()), T0).unwrap();
    assert_eq!(closed(&out), vec![1], "only the ended session's socket");
    let out = h.revoke(&Revoked::Device("a".into()), T0).unwrap();
    assert_eq!(closed(&out), vec![2]);
    assert_eq!(h.connections().keys().copied().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn cursors_at_the_end_of_the_integers_read_nothing_and_never_overflow() {
    let mut h = hub();
    h.publish(rename(0), T0).unwrap();
    let page = h.events_after("a", u64::MAX).unwrap();
    assert!(page.events.is_empty() && !page.resync_required);
    let out = h.connect(1, "a", "s-a", Some(u64::MAX), T0).unwrap();
    assert!(events(&out, 1).iter().all(|e| e.event != "device.updated"));
    assert!(frames(&out, 1).iter().any(|f| matches!(
        f,
        HubFrame::Ready {
            resume_after: 1,
            last_seq: 1
        }
    )));
}

/// Events from a change's outbox are logged once each, in id order: a batch sent again (its
/// answer lost) or overlapping another sender's is dropped up to the last id taken, which the
/// hub remembers across a restart (a new machine on the same storage).
#[test]
fn outboxed_events_are_taken_once_each_across_resends_and_restarts() {
    let (mut h, db) = hub_and_db();
    let batch = |ids: &[u64]| -> Vec<Outboxed> {
        ids.iter()
            .map(|&id| Outboxed {
                id,
                event: rename(id as u32),
            })
            .collect()
    };
    assert_eq!(h.take_outboxed(batch(&[3, 4]), T0).unwrap().0, 4);
    assert_eq!(h.take_outboxed(batch(&[3, 4]), T0).unwrap().0, 4);
    assert_eq!(h.take_outboxed(batch(&[4, 5]), T0).unwrap().0, 5);
    let mut h = Hub::new(
        SqlStore {
            exec: db,
            user_id: "u".into(),
        },
        [],
    );
    assert_eq!(h.take_outboxed(batch(&[5, 6]), T0).unwrap().0, 6);
    assert_eq!(h.take_outboxed(Vec::new(), T0).unwrap().0, 6);
    let logged: Vec<(u64, serde_json::Value)> = h
        .events_after("a", 0)
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.seq, e.data["n"].clone()))
        .collect();
    assert_eq!(
        logged,
        [(1, json!(3)), (2, json!(4)), (3, json!(5)), (4, json!(6))]
    );
}
