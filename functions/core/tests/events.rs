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
