//! The scheduled sweep, hours and months on: what it removes and what it must keep.
// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;

#[test]
fn maintenance_sweeps_only_what_no_request_needs() {
    let h = harness("sweep");
    let core = &h.core;
    pollster::block_on(async {
        let (status, signed) = post(
            core,
            "/auth/register",
            None,
            register_body("sweep@example.com"),
        )
        .await;
        assert_eq!(status, 201);
        let first = signed["tokens"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let wrong = serde_json::json!({"email": "sweep@example.com", "auth_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="});
        assert_eq!(post(core, "/auth/login", None, wrong).await.0, 401);
        let (status, _) = post(
            core,
            "/auth/token/refresh",
            None,
            serde_json::json!({"refresh_token": first}),
        )
        .await;
        assert_eq!(status, 200);

        let now = now();
        let nothing = core.maintenance(now).await.unwrap();
        assert_eq!(
            nothing,
            udc_core::maintenance::Swept::default(),
            "everything is still needed"
        );
        // The spent token is kept: presenting it again must still end the family.
        let (status, reuse) = post(
            core,
            "/auth/token/refresh",
            None,
            serde_json::json!({"refresh_token": first}),
        )
        .await;
        assert_eq!(
            (status, reuse["error"]["code"].as_str()),
            (401, Some("refresh_token_reused"))
        );

        let window_over = core.maintenance(now + 16 * 60 * 1000).await.unwrap();
        assert_eq!(window_over.throttle_windows, 1);
        assert_eq!((window_over.refresh_tokens, window_over.sessions), (0, 0));

        // Revoked (by the reuse) more than 30 days ago: its tokens and the session go.
        let month = core.maintenance(now + 31 * 24 * 3600 * 1000).await.unwrap();
        assert_eq!((month.refresh_tokens, month.sessions), (2, 1));
    });
}

#[test]
fn maintenance_settles_remote_sessions_time_ended() {
    let h = harness("remote-sweep");
    let core = &h.core;
    let now = now();
    // Rows as the session API leaves them, written past it (no users or devices behind
    // them): silent for 20 s, fresh, unanswered for 2 min, and already over.
    let db = rusqlite::Connection::open(h.dir.join("udc.sqlite3")).unwrap();
    db.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    for (id, state, created, seen) in [
        ("silent", "active", now - 60_000, now - 20_000),
        ("fresh", "active", now - 60_000, now - 1_000),
        ("unanswered", "pending", now - 120_000, 0),
        ("over", "ended", now - 3_600_000, 0),
    ] {
        db.execute(
            "INSERT INTO remote_sessions (id, user_id, requester_device_id, target_device_id, mode, \
             max_duration_secs, state, created_at, answered_at, requester_seen_at, target_seen_at) \
             VALUES (?1, 'u', 'a', 'b', 'view_only', 3600, ?2, ?3, ?3, ?4, ?4)",
            rusqlite::params![id, state, created, seen],
        )
        .unwrap();
    }
    let swept = pollster::block_on(core.maintenance(now)).unwrap();
    assert_eq!(swept.remote_sessions_ended, 2);
    let mut states: Vec<(String, String, Option<String>)> = db
        .prepare("SELECT id, state, end_reason FROM remote_sessions ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    states.sort();
    let s = |a: &str, b: &str, c: Option<&str>| (a.to_owned(), b.to_owned(), c.map(String::from));
    assert_eq!(
        states,
        [
            s("fresh", "active", None),
            s("over", "ended", None),
            s("silent", "ended", Some("heartbeat_lost")),
            s("unanswered", "expired", Some("not_answered")),
        ]
    );
}

/// What the sweep reports is what it removed, table by table: an old replayable answer is one
/// idempotency key (not a realtime ticket), and the account's activity goes after 90 days.
#[test]
fn maintenance_counts_each_table_it_sweeps_and_keeps_activity_90_days() {
    let h = harness("sweep-counts");
    let core = &h.core;
    let now = now();
    let day = 24 * 3600 * 1000i64;
    let db = rusqlite::Connection::open(h.dir.join("udc.sqlite3")).unwrap();
    db.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    db.execute(
        "INSERT INTO idempotency_keys (user_id, operation, key, request_hash, created_at) \
         VALUES ('u', 'POST /x', 'k', 'h', ?1)",
        [now - 2 * day],
    )
    .unwrap();
    for at in [now - 91 * day, now - 89 * day] {
        db.execute(
            "INSERT INTO account_activity (user_id, at, kind) VALUES ('u', ?1, 'signed_in')",
            [at],
        )
        .unwrap();
    }
    let swept = pollster::block_on(core.maintenance(now)).unwrap();
    assert_eq!(swept.idempotency_keys, 1, "{swept:?}");
    assert_eq!(swept.activity_entries, 1, "{swept:?}");
    let left: i64 = db
        .query_row("SELECT count(*) FROM account_activity", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1);
}
