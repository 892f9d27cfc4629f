//! A change's events are written with it.
// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;

/// The hub unreachable between the change's commit and its delivery (events used to be
/// published after the commit, and were lost when that failed): the change and its event are in
/// the log together; the answer is the change's, the hub's failure a warning for the host.
#[test]
fn a_change_made_while_the_hub_is_unreachable_keeps_its_event() {
    let h = harness("unreachable");
    let core = &h.core;
    pollster::block_on(async {
        let (status, signed) = post(
            core,
            "/auth/register",
            None,
            register_body("cut@example.com"),
        )
        .await;
        assert_eq!(status, 201);
        core.ports.hub.unreachable.set(true);
        let (status, device) = post(
            core,
            "/devices/register",
            signed["tokens"]["access_token"].as_str(),
            serde_json::json!({ "name": "Desk", "platform": "linux" }),
        )
        .await;
        assert_eq!(status, 201, "{device}");
        let (status, written) = post(
            core,
            "/sync/settings",
            device["tokens"]["access_token"].as_str(),
            serde_json::json!({ "namespace": "ui", "key": "theme", "value": "dark", "base_version": 0 }),
        )
        .await;
        assert_eq!(status, 200, "{written}");
        assert_eq!(
            texts(core, "SELECT event FROM hub_events ORDER BY seq").await,
            ["device.registered", "settings.changed"]
        );
    });
}

/// Where the log is apart from core's database (the Worker's Durable Object), a change's events
/// are written to the outbox in its batch and sent after: a hub that cannot be reached keeps
/// them waiting, a hub whose answer is lost gets them again and takes each once, and the
/// scheduled run sends what no later change did. The log ends with every change's event once,
/// in the order the changes were made, numbered without a gap.
#[test]
fn where_the_log_is_apart_every_change_has_its_event_once() {
    let h = harness_apart("outbox");
    let core = &h.core;
    let hub = &core.ports.hub;
    pollster::block_on(async {
        let (_, token) = account_with_device(core, "apart@example.com").await;
        let write = |key: &'static str| {
            let token = token.clone();
            async move {
                let (status, body) = post(
                    core,
                    "/sync/settings",
                    Some(&token),
                    serde_json::json!({ "namespace": "ui", "key": key, "value": "dark", "base_version": 0 }),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        };
        let outbox = || async { texts(core, "SELECT event FROM event_outbox").await.len() };
        assert_eq!(outbox().await, 0, "sent at once when the hub answers");

        hub.unreachable.set(true);
        write("k1").await;
        write("k2").await;
        assert_eq!(outbox().await, 2, "kept while the hub cannot be reached");
        hub.unreachable.set(false);
        hub.answer_lost.set(true);
        write("k3").await;
        assert_eq!(
            outbox().await,
            3,
            "the hub took them, but core never heard so"
        );
        hub.answer_lost.set(false);
        write("k4").await;
        assert_eq!(outbox().await, 0);

        hub.unreachable.set(true);
        write("k5").await;
        hub.unreachable.set(false);
        let swept = core.maintenance(now() + 60_000).await.unwrap();
        assert_eq!((swept.outboxes_sent, swept.outboxes_left), (1, 0));
        assert_eq!(outbox().await, 0);

        let keys: Vec<String> = hub_texts(
            core,
            "SELECT coalesce(data ->> '$.changes[0].key', event) FROM hub_events ORDER BY seq",
        );
        assert_eq!(keys, ["device.registered", "k1", "k2", "k3", "k4", "k5"]);
        assert_eq!(
            hub_texts(core, "SELECT group_concat(seq) FROM hub_events"),
            ["1,2,3,4,5,6"]
        );
        assert!(
            texts(core, "SELECT event FROM hub_events").await.is_empty(),
            "nothing in core's own log"
        );
    });
}
