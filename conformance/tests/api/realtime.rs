use reqwest::{Method, StatusCode};
use serde_json::json;
use udc_agent::realtime::Socket;
use udc_conformance::hub::*;
use udc_conformance::*;
use udc_hub::protocol::close;
use udc_hub::{ClientFrame, HubFrame, PresenceState};

/// A refused upgrade: the status always; the error code where the WebSocket client could read
/// the body (through wrangler's proxy it may arrive chunked, which tungstenite does not read).
fn assert_refused(err: &udc_agent::Error, status: u16, code: &str) {
    assert_eq!(err.status(), Some(status), "{err}");
    if err.code() != Some("unknown") {
        assert_eq!(err.code(), Some(code), "{err}");
    }
}

#[tokio::test]
async fn registration_and_presence_reach_the_other_devices() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let mut sa = connect(&a, None).await;
    replay(&mut sa).await;

    let b = account.device("B").await;
    let registered = wait_event(&mut sa, "device.registered", &b.id).await;
    assert_eq!(registered.data["device"]["name"], "B");

    let mut sb = connect(&b, None).await;
    wait_event(&mut sa, "device.online", &b.id).await;
    let listed = account.api.devices(a.token()).await.unwrap();
    let presence = |id: &str| listed.iter().find(|d| d.id == id).unwrap().presence.clone();
    assert_eq!(
        (presence(&a.id).as_str(), presence(&b.id).as_str()),
        ("online", "online")
    );

    sb.send(&ClientFrame::Presence {
        state: PresenceState::Idle,
    })
    .await
    .unwrap();
    wait_event(&mut sa, "device.idle", &b.id).await;
    assert_eq!(
        account.api.device(a.token(), &b.id).await.unwrap().presence,
        "idle"
    );

    sb.close().await;
    wait_event(&mut sa, "device.offline", &b.id).await;
    assert_eq!(
        account.api.device(a.token(), &b.id).await.unwrap().presence,
        "offline"
    );

    account
        .api
        .update_device(a.token(), &b.id, &json!({ "name": "B2" }))
        .await
        .unwrap();
    let updated = wait_event(&mut sa, "device.updated", &b.id).await;
    assert_eq!(updated.data["device"]["name"], "B2");

    // Trust changes are announced as the trusting device's update.
    account.api.trust(a.token(), &a.id, &b.id).await.unwrap();
    let trusted = wait_for(&mut sa, "trust update", |f| {
        matches!(f, HubFrame::Event(e) if e.event == "device.updated" && e.data["device"]["id"] == a.id.as_str())
    })
    .await;
    let HubFrame::Event(trusted) = trusted else {
        unreachable!()
    };
    assert_eq!(trusted.data["device"]["trusts"], json!([b.id]));
    account.api.untrust(a.token(), &a.id, &b.id).await.unwrap();
    let untrusted = wait_for(&mut sa, "untrust update", |f| {
        matches!(f, HubFrame::Event(e) if e.event == "device.updated" && e.data["device"]["id"] == a.id.as_str())
    })
    .await;
    let HubFrame::Event(untrusted) = untrusted else {
        unreachable!()
    };
    assert_eq!(untrusted.data["device"]["trusts"], json!([]));
}

#[tokio::test]
async fn a_reconnecting_device_gets_exactly_what_it_missed_in_order() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let b = account.device("B").await;
    let mut sb = connect(&b, None).await;
    let (_, ready) = replay(&mut sb).await;
    let HubFrame::Ready { last_seq, .. } = ready else {
        panic!("{ready:?}")
    };
    // Everything B has seen so far, then it goes away.
    sb.send(&ClientFrame::Ping).await.unwrap();
    wait_for(&mut sb, "pong", |f| matches!(f, HubFrame::Pong { .. })).await;
    sb.close().await;

    for name in ["one", "two", "three"] {
        account
            .api
            .update_device(a.token(), &a.id, &json!({ "name": name }))
            .await
            .unwrap();
    }
    // The log, as a polling device would read it, is the reference.
    let polled = account
        .raw(
            Method::GET,
            &format!("/events?after={last_seq}"),
            Some(b.token()),
            None,
        )
        .await;
    assert_eq!(polled.status, StatusCode::OK);
    let expected: Vec<u64> = polled.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();

    let mut sb = connect(&b, Some(last_seq)).await;
    let (missed, ready) = replay(&mut sb).await;
    let seqs: Vec<u64> = missed.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, expected, "the replay is the log after the cursor");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates: {seqs:?}"
    );
    let names: Vec<&str> = missed
        .iter()
        .filter(|e| e.event == "device.updated")
        .map(|e| e.data["device"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["one", "two", "three"]);
    assert!(matches!(ready, HubFrame::Ready { last_seq: l, .. } if l >= *seqs.last().unwrap()));

    // Live events follow the replay.
    account
        .api
        .update_device(a.token(), &a.id, &json!({ "name": "four" }))
        .await
        .unwrap();
    let live = wait_event(&mut sb, "device.updated", "four").await;
    assert!(live.seq > *seqs.last().unwrap());
}

#[tokio::test]
async fn polling_reads_the_same_log_for_registered_devices_only() {
    let account = Account::create().await;
    let a = account.device("A").await;
    account
        .api
        .update_device(a.token(), &a.id, &json!({ "name": "renamed" }))
        .await
        .unwrap();
    let page = account
        .raw(Method::GET, "/events?after=0", Some(a.token()), None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let events = page.body["events"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| e["event"] == "device.updated" && e["data"]["device"]["name"] == "renamed"));
    assert_eq!(page.body["resync_required"], false);

    let bad = account
        .raw(
            Method::GET,
            "/events?after=minus-one",
            Some(a.token()),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unbound = account.login().await.tokens.access_token;
    let refused = account
        .raw(Method::GET, "/events", Some(&unbound), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Another account's log is not reachable: the token decides the account.
    let other = Account::create().await.device("X").await;
    let theirs = account
        .raw(Method::GET, "/events?after=0", Some(other.token()), None)
        .await;
    assert!(theirs.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["data"]["device"]["name"] != "renamed"));
}

#[tokio::test]
async fn signals_reach_only_online_devices_of_the_same_account() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let b = account.device("B").await;
    let stranger = Account::create().await.device("C").await;
    let mut sa = connect(&a, None).await;
    let mut sb = connect(&b, None).await;
    let mut sc = connect(&stranger, None).await;
    replay(&mut sa).await;
    replay(&mut sb).await;
    replay(&mut sc).await;

    let offer = json!({ "sdp": "v=0...", "kind": "offer" });
    sa.send(&ClientFrame::Signal {
        to_device: b.id.clone(),
        payload: offer.clone(),
        reference: Some("r1".into()),
    })
    .await
    .unwrap();
    let got = wait_for(&mut sb, "signal", |f| matches!(f, HubFrame::Signal { .. })).await;
    assert_eq!(
        got,
        HubFrame::Signal {
            from_device: a.id.clone(),
            payload: offer.clone()
        }
    );
    let result = wait_for(&mut sa, "signal_result", |f| {
        matches!(f, HubFrame::SignalResult { .. })
    })
    .await;
    assert!(
        matches!(result, HubFrame::SignalResult { status: udc_hub::protocol::SignalStatus::Delivered, reference: Some(ref r), .. } if r == "r1")
    );

    // A device of another account is never reached, even while online.
    sa.send(&ClientFrame::Signal {
        to_device: stranger.id.clone(),
        payload: offer.clone(),
        reference: None,
    })
    .await
    .unwrap();
    let result = wait_for(&mut sa, "signal_result", |f| {
        matches!(f, HubFrame::SignalResult { .. })
    })
    .await;
    assert!(matches!(
        result,
        HubFrame::SignalResult {
            status: udc_hub::protocol::SignalStatus::DeviceOffline,
            ..
        }
    ));
    sc.send(&ClientFrame::Ping).await.unwrap();
    let first = wait_for(&mut sc, "pong or a leaked signal", |f| {
        matches!(f, HubFrame::Pong { .. } | HubFrame::Signal { .. })
    })
    .await;
    assert!(
        matches!(first, HubFrame::Pong { .. }),
        "another account's device got {first:?}"
    );

    // Once B is gone, it is offline for signals too.
    sb.close().await;
    wait_event(&mut sa, "device.offline", &b.id).await;
    sa.send(&ClientFrame::Signal {
        to_device: b.id.clone(),
        payload: offer,
        reference: None,
    })
    .await
    .unwrap();
    let result = wait_for(&mut sa, "signal_result", |f| {
        matches!(f, HubFrame::SignalResult { .. })
    })
    .await;
    assert!(matches!(
        result,
        HubFrame::SignalResult {
            status: udc_hub::protocol::SignalStatus::DeviceOffline,
            ..
        }
    ));
}

#[tokio::test]
async fn removing_a_device_closes_its_socket_and_it_cannot_reconnect() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let b = account.device("B").await;
    let mut sb = connect(&b, None).await;
    replay(&mut sb).await;
    account.api.remove_device(a.token(), &b.id).await.unwrap();
    assert_eq!(wait_closed(&mut sb).await, Some(close::REVOKED));
    let again = Socket::connect(&base_url(), b.token(), None)
        .await
        .err()
        .expect("refused");
    assert_refused(&again, 401, "session_revoked");
}

#[tokio::test]
async fn sockets_need_a_live_device_token_or_a_ticket() {
    let account = Account::create().await;
    let a = account.device("A").await;
    for (token, status, code) in [("", 401, "unauthorized"), ("garbage", 401, "invalid_token")] {
        let err = Socket::connect(&base_url(), token, None)
            .await
            .err()
            .expect("refused");
        assert_refused(&err, status, code);
    }
    let unbound = account.login().await.tokens.access_token;
    let err = Socket::connect(&base_url(), &unbound, None)
        .await
        .err()
        .expect("refused");
    assert_refused(&err, 403, "forbidden");

    // Browsers cannot set headers: a short-lived ticket in the URL instead.
    let ticket = account
        .raw(Method::POST, "/realtime/ticket", Some(a.token()), None)
        .await;
    assert_eq!(ticket.status, StatusCode::CREATED);
    let ticket = ticket.body["ticket"].as_str().unwrap().to_owned();
    let url = udc_agent::realtime::realtime_url(&base_url(), None) + "?ticket=" + &ticket;
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a ticket opens the socket");
    use futures_util::StreamExt;
    let first = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.to_text().unwrap().contains("\"ready\""), "{first:?}");
    // A ticket is not an access token.
    let misuse = account
        .raw(Method::GET, "/devices", Some(&ticket), None)
        .await;
    assert_eq!(misuse.status, StatusCode::UNAUTHORIZED);
    // A plain GET without the upgrade is told what the route is.
    let plain = account
        .raw(Method::GET, "/realtime", Some(a.token()), None)
        .await;
    assert_eq!(plain.status, StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test]
async fn malformed_frames_get_an_error_frame_and_the_hub_carries_on() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let mut sa = connect(&a, None).await;
    replay(&mut sa).await;
    for bad in [
        "garbage".to_owned(),
        r#"{"type":"teleport"}"#.to_owned(),
        r#"{"type":"ack","seq":"x"}"#.to_owned(),
        "x".repeat(70 * 1024),
    ] {
        sa.send_text(bad.clone()).await.unwrap();
        let err = wait_for(&mut sa, "error frame", |f| {
            matches!(f, HubFrame::Error { .. })
        })
        .await;
        assert!(
            matches!(err, HubFrame::Error { ref code, .. } if code == "malformed_frame" || code == "frame_too_large"),
            "{err:?}"
        );
    }
    sa.send(&ClientFrame::Presence {
        state: PresenceState::Offline,
    })
    .await
    .unwrap();
    wait_for(&mut sa, "error frame", |f| {
        matches!(f, HubFrame::Error { .. })
    })
    .await;
    sa.send(&ClientFrame::Ping).await.unwrap();
    wait_for(&mut sa, "pong", |f| matches!(f, HubFrame::Pong { .. })).await;
}

#[tokio::test]
async fn ended_sessions_close_their_sockets_logout_and_a_reused_refresh_token() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let b = account.device("B").await;
    let c = account.device("C").await;
    let mut sa = connect(&a, None).await;
    let mut sb = connect(&b, None).await;
    let mut sc = connect(&c, None).await;
    for s in [&mut sa, &mut sb, &mut sc] {
        replay(s).await;
    }

    let out = account
        .raw(Method::POST, "/auth/logout", Some(b.token()), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert_eq!(wait_closed(&mut sb).await, Some(close::REVOKED));

    // Presenting a spent refresh token ends the whole session, and so its sockets.
    let spent = json!({ "refresh_token": c.tokens.refresh_token });
    let refresh = || account.raw(Method::POST, "/auth/token/refresh", None, Some(&spent));
    let first = refresh().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(code(&refresh().await), "refresh_token_reused");
    assert_eq!(wait_closed(&mut sc).await, Some(close::REVOKED));

    // Nobody else's socket was touched.
    sa.send(&ClientFrame::Ping).await.unwrap();
    wait_for(&mut sa, "pong", |f| matches!(f, HubFrame::Pong { .. })).await;
}

#[tokio::test]
async fn tickets_open_one_socket_only() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let ticket = account
        .raw(Method::POST, "/realtime/ticket", Some(a.token()), None)
        .await;
    assert_eq!(ticket.status, StatusCode::CREATED);
    let url = udc_agent::realtime::realtime_url(&base_url(), None)
        + "?ticket="
        + ticket.body["ticket"].as_str().unwrap();
    let (_first, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("a ticket opens the socket");
    let Err(tokio_tungstenite::tungstenite::Error::Http(resp)) =
        tokio_tungstenite::connect_async(url).await
    else {
        panic!("a used ticket must be refused with an HTTP answer")
    };
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn cursors_past_what_any_log_holds_are_refused_and_harm_no_one() {
    let account = Account::create().await;
    let a = account.device("A").await;
    for after in [u64::MAX.to_string(), (1u64 << 53).to_string(), "-1".into()] {
        let resp = account
            .raw(
                Method::GET,
                &format!("/events?after={after}"),
                Some(a.token()),
                None,
            )
            .await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "after={after}: {}",
            resp.body
        );
        assert_eq!(code(&resp), "invalid_field");
    }
    let end = account
        .raw(
            Method::GET,
            "/events?after=9007199254740991",
            Some(a.token()),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.body);
    assert_eq!(end.body["events"], json!([]));
    // Every account still answers.
    let other = Account::create().await.device("X").await;
    let devices = account
        .raw(Method::GET, "/devices", Some(other.token()), None)
        .await;
    assert_eq!(devices.status, StatusCode::OK, "{}", devices.body);
}
