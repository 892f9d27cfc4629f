//! Remote control sessions: request, consent, heartbeats, input relay, ending, and the audit
//! trail. The target must be online, so these hold a socket (not on Spin).

use reqwest::Method;
use serde_json::{json, Value};
use udc_conformance::*;
use udc_hub::HubFrame;

struct Pair {
    account: Account,
    laptop: TestDevice,
    desktop: TestDevice,
    online: udc_agent::realtime::Socket,
}

/// A laptop that the (online) desktop trusts.
async fn pair() -> Pair {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let desktop = account.device("Desktop").await;
    account
        .api
        .trust(desktop.token(), &desktop.id, &laptop.id)
        .await
        .unwrap();
    let mut online = hub::connect(&desktop, None).await;
    // The hub counts a socket online when it says Ready, not at the upgrade: udc-server answers
    // 101 before its hub has seen the socket, and a request in between finds the desk offline.
    hub::replay(&mut online).await;
    Pair {
        account,
        laptop,
        desktop,
        online,
    }
}

impl Pair {
    async fn call(
        &self,
        method: Method,
        path: &str,
        device: &TestDevice,
        body: Option<Value>,
    ) -> udc_agent::client::RawResponse {
        self.account
            .raw(method, path, Some(device.token()), body.as_ref())
            .await
    }

    /// A bodiless call on session `id`: `action` is `approve`, `deny`, `heartbeat`, or "" for
    /// the session itself.
    async fn on(
        &self,
        method: Method,
        id: &str,
        action: &str,
        device: &TestDevice,
    ) -> udc_agent::client::RawResponse {
        let path = match action {
            "" => format!("/remote/session/{id}"),
            a => format!("/remote/session/{id}/{a}"),
        };
        self.call(method, &path, device, None).await
    }

    async fn call_at(
        &self,
        offset_ms: i64,
        method: Method,
        path: &str,
        device: &TestDevice,
    ) -> udc_agent::client::RawResponse {
        let offset = offset_ms.to_string();
        self.account
            .api
            .raw(
                method,
                path,
                Some(device.token()),
                None,
                &[(CLOCK_HEADER, &offset)],
            )
            .await
            .unwrap()
    }

    async fn request(&self, mode: &str, max_duration: i64) -> String {
        let r = self
            .call(
                Method::POST,
                "/remote/session/request",
                &self.laptop,
                Some(json!({ "target_device_id": self.desktop.id, "mode": mode, "max_duration": max_duration })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["session"]["state"], "pending");
        r.body["session"]["id"].as_str().unwrap().to_owned()
    }

    async fn seq(&self, device: &TestDevice) -> u64 {
        events(&self.account, device, 0)
            .await
            .last()
            .map_or(0, |e| e.seq)
    }
}

fn names(events: &[udc_hub::Event]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[tokio::test]
async fn a_session_is_requested_approved_driven_and_ended_by_either_side() {
    let mut p = pair().await;
    let (l0, d0) = (p.seq(&p.laptop).await, p.seq(&p.desktop).await);
    let id = p.request("view_and_control", 600).await;

    let told = events(&p.account, &p.desktop, d0).await;
    let ask = told
        .iter()
        .find(|e| e.event == "remote.control.request")
        .expect("the target is asked");
    assert_eq!(ask.target_device_id.as_deref(), Some(p.desktop.id.as_str()));
    assert_eq!(
        (
            ask.data["session"]["id"].as_str(),
            ask.data["session"]["mode"].as_str()
        ),
        (Some(id.as_str()), Some("view_and_control"))
    );
    assert_eq!(
        ask.data["session"]["requester_device_id"],
        p.laptop.id.as_str()
    );

    // Only the target answers.
    let r = p.on(Method::POST, &id, "approve", &p.laptop).await;
    assert_eq!(r.status, 403);
    let r = p.on(Method::POST, &id, "approve", &p.desktop).await;
    assert_eq!(
        (r.status.as_u16(), r.body["session"]["state"].as_str()),
        (200, Some("active")),
        "{}",
        r.body
    );
    assert_eq!(r.body["session"]["remaining_secs"], 600);
    let again = p.on(Method::POST, &id, "deny", &p.desktop).await;
    assert_eq!(
        (again.status.as_u16(), code(&again)),
        (409, "session_not_pending")
    );
    // The account's activity has it once: the desktop let the laptop in, with its mode.
    let activity = p
        .account
        .api
        .account_activity(p.laptop.token(), 1)
        .await
        .unwrap();
    assert_eq!(activity[0].kind, "remote_session");
    assert_eq!(
        (
            activity[0].device_id.as_deref(),
            activity[0].target_device_id.as_deref()
        ),
        (Some(p.desktop.id.as_str()), Some(p.laptop.id.as_str()))
    );
    assert_eq!(activity[0].detail["mode"], "view_and_control");
    let heard = events(&p.account, &p.laptop, l0).await;
    for e in ["remote.control.approved", "remote.control.session_start"] {
        assert!(
            names(&heard).contains(&e),
            "{e} missing: {:?}",
            names(&heard)
        );
    }

    // Heartbeats from both sides; input relayed to the target.
    for d in [&p.laptop, &p.desktop] {
        let r = p
            .call(
                Method::POST,
                &format!("/remote/session/{id}/heartbeat"),
                d,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let d1 = p.seq(&p.desktop).await;
    let input = json!({ "events": [
        { "type": "pointer_move", "x": 0.25, "y": 0.75 },
        { "type": "pointer_button", "button": "left", "down": true },
        { "type": "key", "key": "a", "down": true, "modifiers": ["shift"] },
    ]});
    let r = p
        .call(
            Method::POST,
            &format!("/remote/session/{id}/input"),
            &p.laptop,
            Some(input.clone()),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["relayed"].as_i64()),
        (202, Some(3)),
        "{}",
        r.body
    );
    // Delivered to the target's socket, and never written to the log: what is typed through
    // the relay (passwords included) is not kept on the server.
    let relayed = hub::wait_for(
        &mut p.online,
        "relayed input",
        |f| matches!(f, HubFrame::Relay { event, .. } if event == "remote.input"),
    )
    .await;
    let HubFrame::Relay { data, .. } = relayed else {
        unreachable!()
    };
    assert_eq!(data["events"], input["events"]);
    assert_eq!(data["session_id"], id.as_str());
    let logged = events(&p.account, &p.desktop, d1).await;
    assert!(
        names(&logged).iter().all(|n| *n != "remote.input"),
        "input was stored in the log: {:?}",
        names(&logged)
    );
    let r = p
        .call(
            Method::POST,
            &format!("/remote/session/{id}/input"),
            &p.desktop,
            Some(input.clone()),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "the target does not drive itself through the session"
    );
    // Out of range, or carrying what the server does not know: refused, not passed on.
    for bad in [
        json!({ "type": "pointer_move", "x": 2.0, "y": 0 }),
        json!({ "type": "pointer_move", "x": 0.5, "y": 0.5, "note": "hunter2" }),
        json!({ "type": "key", "key": "a", "down": true, "modifiers": ["hyper"] }),
        json!({ "type": "wheel", "dx": 0, "dy": 1_000_000 }),
    ] {
        let r = p
            .call(
                Method::POST,
                &format!("/remote/session/{id}/input"),
                &p.laptop,
                Some(json!({ "events": [bad] })),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), code(&r)),
            (400, "invalid_field"),
            "{bad}"
        );
    }

    // The target ends it; both sides hear it; it stays ended.
    let l1 = p.seq(&p.laptop).await;
    let r = p.on(Method::DELETE, &id, "", &p.desktop).await;
    assert_eq!(
        (
            r.body["session"]["state"].as_str(),
            r.body["session"]["end_reason"].as_str()
        ),
        (Some("ended"), Some("target_ended"))
    );
    let end = events(&p.account, &p.laptop, l1).await;
    let e = end
        .iter()
        .find(|e| e.event == "remote.control.session_end")
        .expect("session_end");
    assert_eq!(e.data["reason"], "target_ended");
    let r = p.on(Method::POST, &id, "heartbeat", &p.laptop).await;
    assert_eq!((r.status.as_u16(), code(&r)), (409, "session_not_active"));
    let r = p
        .call(
            Method::POST,
            &format!("/remote/session/{id}/input"),
            &p.laptop,
            Some(input),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = p.on(Method::DELETE, &id, "", &p.laptop).await;
    assert_eq!(
        (r.status.as_u16(), r.body["session"]["end_reason"].as_str()),
        (200, Some("target_ended")),
        "ending twice changes nothing"
    );

    // The audit trail: who, what, when, how it ended.
    let r = p
        .call(Method::GET, "/remote/sessions", &p.laptop, None)
        .await;
    let s = &r.body["sessions"][0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(
        (
            s["requester_device_id"].as_str(),
            s["target_device_id"].as_str()
        ),
        (Some(p.laptop.id.as_str()), Some(p.desktop.id.as_str()))
    );
    assert_eq!(
        (
            s["ended_by_device_id"].as_str(),
            s["relayed_inputs"].as_i64()
        ),
        (Some(p.desktop.id.as_str()), Some(3))
    );
    assert!(s["answered_at"].is_string() && s["ended_at"].is_string());
}

#[tokio::test]
async fn view_only_refuses_input_and_a_denied_request_never_starts() {
    let p = pair().await;
    let id = p.request("view_only", 600).await;
    p.on(Method::POST, &id, "approve", &p.desktop).await;
    let input = json!({ "events": [{ "type": "key", "key": "Return", "down": true }] });
    let r = p
        .call(
            Method::POST,
            &format!("/remote/session/{id}/input"),
            &p.laptop,
            Some(input),
        )
        .await;
    assert_eq!((r.status.as_u16(), code(&r)), (403, "view_only"));
    let r = p.on(Method::DELETE, &id, "", &p.laptop).await;
    assert_eq!(r.body["session"]["end_reason"], "requester_ended");

    let l0 = p.seq(&p.laptop).await;
    let id = p.request("view_and_control", 600).await;
    let r = p.on(Method::POST, &id, "deny", &p.desktop).await;
    assert_eq!(
        (
            r.body["session"]["state"].as_str(),
            r.body["session"]["end_reason"].as_str()
        ),
        (Some("denied"), Some("denied"))
    );
    let heard = events(&p.account, &p.laptop, l0).await;
    assert!(names(&heard).contains(&"remote.control.denied"));
    assert!(
        !names(&heard).contains(&"remote.control.session_start"),
        "{:?}",
        names(&heard)
    );
    let r = p.on(Method::POST, &id, "approve", &p.desktop).await;
    assert_eq!(r.status, 409, "a denied request cannot be approved later");
    let r = p.on(Method::POST, &id, "heartbeat", &p.laptop).await;
    assert_eq!(r.status, 409);

    // The requester may withdraw an unanswered request.
    let id = p.request("view_only", 600).await;
    let r = p.on(Method::DELETE, &id, "", &p.laptop).await;
    assert_eq!(
        (
            r.body["session"]["state"].as_str(),
            r.body["session"]["end_reason"].as_str()
        ),
        (Some("expired"), Some("canceled"))
    );
}

#[tokio::test]
async fn untrusted_foreign_offline_and_malformed_requests_are_refused() {
    let p = pair().await;
    let ask = |target: &str, mode: &str, duration: i64| json!({ "target_device_id": target, "mode": mode, "max_duration": duration });
    // The laptop does not trust the desktop: the desktop may not control the laptop.
    let r = p
        .call(
            Method::POST,
            "/remote/session/request",
            &p.desktop,
            Some(ask(&p.laptop.id, "view_only", 600)),
        )
        .await;
    assert_eq!((r.status.as_u16(), code(&r)), (403, "not_trusted"));
    // A trusted but offline target.
    let tablet = p.account.device("Tablet").await;
    p.account
        .api
        .trust(tablet.token(), &tablet.id, &p.laptop.id)
        .await
        .unwrap();
    let r = p
        .call(
            Method::POST,
            "/remote/session/request",
            &p.laptop,
            Some(ask(&tablet.id, "view_only", 600)),
        )
        .await;
    assert_eq!((r.status.as_u16(), code(&r)), (409, "device_offline"));
    for (body, status) in [
        (ask(&p.laptop.id, "view_only", 600), 422),
        (ask(&p.desktop.id, "full_control", 600), 400),
        (ask(&p.desktop.id, "view_only", 10), 400),
        (
            ask(&uuid::Uuid::new_v4().to_string(), "view_only", 600),
            404,
        ),
    ] {
        let r = p
            .call(
                Method::POST,
                "/remote/session/request",
                &p.laptop,
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.body);
    }

    // Another account: its devices are not found, and neither are this account's sessions.
    let other = Account::create().await;
    let stranger = other.device("Stranger").await;
    let r = other
        .raw(
            Method::POST,
            "/remote/session/request",
            Some(stranger.token()),
            Some(&ask(&p.desktop.id, "view_only", 600)),
        )
        .await;
    assert_eq!(r.status, 404);
    let id = p.request("view_only", 600).await;
    for (method, path) in [
        (Method::GET, format!("/remote/session/{id}")),
        (Method::POST, format!("/remote/session/{id}/approve")),
        (Method::DELETE, format!("/remote/session/{id}")),
    ] {
        let r = other
            .raw(method.clone(), &path, Some(stranger.token()), None)
            .await;
        assert_eq!(r.status, 404, "{method} {path}");
    }
    let r = other
        .raw(
            Method::GET,
            "/remote/sessions",
            Some(stranger.token()),
            None,
        )
        .await;
    assert_eq!(r.body["sessions"], json!([]));
}

#[tokio::test]
async fn sessions_end_unanswered_when_heartbeats_stop_and_at_their_maximum() {
    let p = pair().await;
    let id = p.request("view_only", 600).await;
    let r = p
        .call_at(
            61_000,
            Method::GET,
            &format!("/remote/session/{id}"),
            &p.laptop,
        )
        .await;
    assert_eq!(
        (
            r.body["session"]["state"].as_str(),
            r.body["session"]["end_reason"].as_str()
        ),
        (Some("expired"), Some("not_answered"))
    );
    let r = p.on(Method::POST, &id, "approve", &p.desktop).await;
    assert_eq!(r.status, 409, "too late to approve");

    let id = p.request("view_and_control", 600).await;
    p.on(Method::POST, &id, "approve", &p.desktop).await;
    let r = p
        .call_at(
            10_000,
            Method::GET,
            &format!("/remote/session/{id}"),
            &p.laptop,
        )
        .await;
    assert_eq!(
        r.body["session"]["state"], "active",
        "10 s without heartbeats is still alive"
    );
    let r = p
        .call_at(
            16_000,
            Method::GET,
            &format!("/remote/session/{id}"),
            &p.laptop,
        )
        .await;
    assert_eq!(
        (
            r.body["session"]["state"].as_str(),
            r.body["session"]["end_reason"].as_str()
        ),
        (Some("ended"), Some("heartbeat_lost"))
    );

    let id = p.request("view_only", 60).await;
    p.on(Method::POST, &id, "approve", &p.desktop).await;
    let r = p
        .call_at(
            60_000,
            Method::GET,
            &format!("/remote/session/{id}"),
            &p.laptop,
        )
        .await;
    assert_eq!(
        (
            r.body["session"]["state"].as_str(),
            r.body["session"]["end_reason"].as_str()
        ),
        (Some("ended"), Some("max_duration"))
    );
}

#[tokio::test]
async fn ice_servers_come_from_configuration() {
    let p = pair().await;
    let r = p
        .call(Method::GET, "/remote/ice-servers", &p.laptop, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let urls = r.body["ice_servers"][0]["urls"].as_array().unwrap();
    assert!(
        urls.iter()
            .all(|u| u.as_str().unwrap().starts_with("stun:")),
        "{urls:?}"
    );
    let bare = p.account.login().await;
    let r = p
        .account
        .raw(
            Method::GET,
            "/remote/ice-servers",
            Some(&bare.tokens.access_token),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "only devices");
}
