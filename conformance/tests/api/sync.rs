//! Clipboard (sealed end to end), settings with conflict policies, idempotent batches, sign-in
//! approval from a trusted device, and handoff.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use udc_agent::seal;
use udc_agent::sync::{ApprovalState, PendingLogin};
use udc_conformance::*;

fn clipboard_events(events: &[udc_hub::Event]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e.event == "clipboard.sync")
        .map(|e| &e.data["item"])
        .collect()
}

async fn last_seq(account: &Account, device: &TestDevice) -> u64 {
    events(account, device, 0).await.last().map_or(0, |e| e.seq)
}

/// The account log's last number, whomever its events were for.
async fn log_end(account: &Account, device: &TestDevice) -> u64 {
    let page = account
        .raw(Method::GET, "/events?after=0", Some(device.token()), None)
        .await;
    page.body["last_seq"].as_u64().expect("last_seq")
}

/// The account's settings resolution log.
async fn resolutions(account: &Account, device: &TestDevice) -> Vec<Value> {
    let log = account
        .raw(
            Method::GET,
            "/sync/settings/resolutions",
            Some(device.token()),
            None,
        )
        .await;
    log.body["resolutions"]
        .as_array()
        .cloned()
        .expect("resolutions")
}

#[tokio::test]
async fn clipboard_items_reach_the_other_devices_as_ciphertext_the_server_cannot_read() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    // A name the server stores as it is: proof that the scan below sees what was stored.
    let tablet_name = format!(
        "Tablet {}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let tablet = account.device(&tablet_name).await;
    let off = account
        .api
        .clipboard_prefs(phone.token(), Some(&json!({ "receive": false })))
        .await
        .unwrap();
    assert!(off.send && !off.receive);
    let (l0, p0, t0) = (
        last_seq(&account, &laptop).await,
        last_seq(&account, &phone).await,
        last_seq(&account, &tablet).await,
    );

    let secret = format!("udc-clipboard-plaintext-{}", uuid::Uuid::new_v4().simple());
    let item = account
        .api
        .post_clipboard(
            tablet.token(),
            &account.enc_key,
            "text/plain",
            secret.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(
        (item.size, item.content_type.as_str()),
        (secret.len() as u64, "text/plain")
    );
    let sealed = item.ciphertext.clone().unwrap();
    assert!(!sealed.contains(&secret));
    assert_eq!(B64.decode(&sealed).unwrap().len(), secret.len() + 40);

    // The laptop receives it and opens it; the phone opted out; the sender gets no echo.
    let got = events(&account, &laptop, l0).await;
    let got = clipboard_events(&got);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], item.id.as_str());
    let relayed: udc_agent::sync::ClipboardItem = serde_json::from_value(got[0].clone()).unwrap();
    assert_eq!(
        relayed.open(&account.enc_key).unwrap().unwrap(),
        secret.as_bytes()
    );
    assert!(
        relayed.open(&[7u8; 32]).is_err(),
        "another key cannot open it"
    );
    assert!(clipboard_events(&events(&account, &phone, p0).await).is_empty());
    assert!(clipboard_events(&events(&account, &tablet, t0).await).is_empty());

    // What the server keeps opens the same way and is the latest.
    let latest = account
        .raw(
            Method::GET,
            "/sync/clipboard/latest",
            Some(phone.token()),
            None,
        )
        .await;
    assert_eq!(latest.body["item"]["id"], item.id.as_str());
    let fetched = account
        .api
        .clipboard_item(laptop.token(), &item.id)
        .await
        .unwrap();
    assert_eq!(
        fetched.open(&account.enc_key).unwrap().unwrap(),
        secret.as_bytes()
    );

    // Nothing the server stored holds the plaintext (database, Durable Object storage, WAL).
    if let Some(hits) = stored_files_containing(secret.as_bytes()) {
        assert!(hits.is_empty(), "plaintext found in {hits:?}");
        let control = stored_files_containing(tablet_name.as_bytes()).unwrap_or_default();
        assert!(
            !control.is_empty(),
            "the scan found not even the device's name: wrong directory?"
        );
    }

    // Another account sees none of it.
    let other = Account::create().await;
    let stranger = other.device("Stranger").await;
    for path in [
        format!("/sync/clipboard/items/{}", item.id),
        "/sync/clipboard/latest".to_owned(),
    ] {
        let r = other
            .raw(Method::GET, &path, Some(stranger.token()), None)
            .await;
        assert_eq!((r.status.as_u16(), code(&r)), (404, "not_found"), "{path}");
    }
    let r = other
        .raw(
            Method::DELETE,
            &format!("/sync/clipboard/items/{}", item.id),
            Some(stranger.token()),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

/// A copy to many devices is one change, so one event in the account's log that each receiver
/// sees under the same number (not one write per receiver, which made a post to 500 devices
/// take seconds).
#[tokio::test]
async fn a_clipboard_item_for_many_devices_is_one_event_in_the_log() {
    let account = Account::create().await;
    let sender = account.device("Sender").await;
    let mut receivers = Vec::new();
    for i in 0..4 {
        receivers.push(account.device(&format!("Receiver {i}")).await);
    }
    let before = log_end(&account, &sender).await;
    let item = account
        .api
        .post_clipboard(sender.token(), &account.enc_key, "text/plain", b"one copy")
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for device in &receivers {
        let got: Vec<_> = events(&account, device, before)
            .await
            .into_iter()
            .filter(|e| e.event == "clipboard.sync")
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].data["item"]["id"], item.id.as_str());
        // Each receiver is told the event is addressed to it, as before.
        assert_eq!(got[0].target_device_id.as_deref(), Some(device.id.as_str()));
        seqs.push(got[0].seq);
    }
    assert!(seqs.iter().all(|s| *s == seqs[0]), "{seqs:?}");
    assert_eq!(log_end(&account, &sender).await, before + 1);
}

#[tokio::test]
async fn clipboard_history_keeps_the_newest_items_and_can_be_cleared() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let prefs = account
        .api
        .clipboard_prefs(laptop.token(), None)
        .await
        .unwrap();
    assert_eq!(
        (prefs.send, prefs.receive, prefs.history_size),
        (true, true, 20)
    );
    account
        .api
        .clipboard_prefs(laptop.token(), Some(&json!({ "history_size": 3 })))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let text = format!("copy {i}");
        let item = account
            .api
            .post_clipboard(
                laptop.token(),
                &account.enc_key,
                "text/plain",
                text.as_bytes(),
            )
            .await
            .unwrap();
        ids.push(item.id);
    }
    let history = account.api.clipboard_history(laptop.token()).await.unwrap();
    let kept: Vec<&str> = history.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        kept,
        vec![ids[4].as_str(), ids[3].as_str(), ids[2].as_str()],
        "newest first"
    );
    let r = account
        .raw(
            Method::GET,
            "/sync/clipboard/history?limit=2",
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["history_size"], 3);
    let r = account
        .raw(
            Method::GET,
            &format!("/sync/clipboard/items/{}", ids[0]),
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "pruned beyond the history size");

    let r = account
        .raw(
            Method::DELETE,
            &format!("/sync/clipboard/items/{}", ids[4]),
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = account
        .raw(
            Method::GET,
            "/sync/clipboard/latest",
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(r.body["item"]["id"], ids[3].as_str());
    let r = account
        .raw(
            Method::DELETE,
            "/sync/clipboard/history",
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(account
        .api
        .clipboard_history(laptop.token())
        .await
        .unwrap()
        .is_empty());
    let r = account
        .raw(
            Method::GET,
            "/sync/clipboard/latest",
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn clipboard_posts_are_checked() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let sealed = |n: usize| B64.encode(seal::seal(&account.enc_key, b"x", &vec![b'a'; n]).unwrap());
    let post = |body: Value| {
        let token = laptop.token().to_owned();
        let account = &account;
        async move {
            account
                .raw(Method::POST, "/sync/clipboard", Some(&token), Some(&body))
                .await
        }
    };
    for (body, status, what) in [
        (
            json!({ "content_type": "application/zip", "size": 3, "ciphertext": sealed(3) }),
            400,
            "type",
        ),
        (
            json!({ "content_type": "text/plain", "size": 4, "ciphertext": sealed(3) }),
            422,
            "size",
        ),
        (
            json!({ "content_type": "text/plain", "size": 3, "ciphertext": "not base64!" }),
            400,
            "base64",
        ),
        (
            json!({ "content_type": "text/plain", "size": 3 }),
            400,
            "no content",
        ),
        (
            json!({ "content_type": "text/plain", "size": 3, "ciphertext": sealed(3), "file_id": uuid::Uuid::new_v4().to_string() }),
            400,
            "both",
        ),
        (
            json!({ "content_type": "image/png", "size": 300_000, "ciphertext": sealed(300_000) }),
            413,
            "inline limit",
        ),
        (
            json!({ "content_type": "image/png", "size": 10, "file_id": uuid::Uuid::new_v4().to_string() }),
            404,
            "unknown file",
        ),
    ] {
        let r = post(body).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
    }
    // A session without a device, and a device that turned sending off.
    let bare = account.login().await;
    let r = account
        .raw(
            Method::POST,
            "/sync/clipboard",
            Some(&bare.tokens.access_token),
            Some(&json!({ "content_type": "text/plain", "size": 3, "ciphertext": sealed(3) })),
        )
        .await;
    assert_eq!(r.status, 403);
    account
        .api
        .clipboard_prefs(laptop.token(), Some(&json!({ "send": false })))
        .await
        .unwrap();
    let r = post(json!({ "content_type": "text/plain", "size": 3, "ciphertext": sealed(3) })).await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (403, "clipboard_send_disabled")
    );
    let r = account
        .raw(
            Method::PUT,
            "/sync/clipboard/preferences",
            Some(laptop.token()),
            Some(&json!({ "history_size": 0 })),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        account
            .api
            .clipboard_history(laptop.token())
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
}

fn change(ns: &str, key: &str, value: Value, base: i64, modified_at: &str) -> Value {
    json!({ "namespace": ns, "key": key, "value": value, "base_version": base, "modified_at": modified_at })
}

async fn write(account: &Account, device: &TestDevice, body: &Value) -> Value {
    let r = account
        .raw(
            Method::POST,
            "/sync/settings",
            Some(device.token()),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn a_stale_settings_write_is_settled_by_the_namespace_policy_and_logged() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let policies = ["client_wins", "server_wins", "most_recent_wins", "manual"];
    for p in policies {
        let r = account
            .raw(
                Method::PUT,
                &format!("/sync/settings/policies/ns.{p}"),
                Some(laptop.token()),
                Some(&json!({ "policy": p })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = account
        .raw(
            Method::GET,
            "/sync/settings/policies",
            Some(phone.token()),
            None,
        )
        .await;
    assert_eq!(r.body["policies"].as_array().unwrap().len(), 4);
    assert_eq!(r.body["default"], "most_recent_wins");

    let mut outcome = std::collections::BTreeMap::new();
    for p in policies {
        let ns = format!("ns.{p}");
        // Both devices start from version v1; the phone writes first, then the laptop's write is stale.
        let first = write(
            &account,
            &laptop,
            &change(&ns, "theme", json!("light"), 0, "2026-01-01T10:00:00Z"),
        )
        .await;
        let v1 = first["result"]["version"].as_i64().unwrap();
        let second = write(
            &account,
            &phone,
            &change(&ns, "theme", json!("dark"), v1, "2026-01-01T10:05:00Z"),
        )
        .await;
        assert_eq!(second["result"]["status"], "applied");
        let v2 = second["result"]["version"].as_i64().unwrap();
        assert!(v2 > v1);
        // The laptop's change was made before the phone's (10:01): stale in version and older in time.
        let stale = write(
            &account,
            &laptop,
            &change(&ns, "theme", json!("solarized"), v1, "2026-01-01T10:01:00Z"),
        )
        .await;
        outcome.insert(p, stale["result"].clone());
    }
    let cw = &outcome["client_wins"];
    assert_eq!(
        (cw["status"].as_str(), cw["resolution"]["outcome"].as_str()),
        (Some("applied"), Some("client_won"))
    );
    let sw = &outcome["server_wins"];
    assert_eq!(
        (sw["status"].as_str(), sw["resolution"]["outcome"].as_str()),
        (Some("rejected"), Some("server_won"))
    );
    assert_eq!(
        sw["server"]["value"], "dark",
        "the device is handed the server's document"
    );
    let mr = &outcome["most_recent_wins"];
    assert_eq!(
        (mr["status"].as_str(), mr["resolution"]["outcome"].as_str()),
        (Some("rejected"), Some("server_newer"))
    );
    let manual = &outcome["manual"];
    assert_eq!(manual["status"], "conflict");
    let conflict_id = manual["conflict_id"].as_str().unwrap().to_owned();

    // A newer stale write wins under most_recent_wins.
    let v = mr["version"].as_i64().unwrap();
    let newer = write(
        &account,
        &laptop,
        &change(
            "ns.most_recent_wins",
            "theme",
            json!("contrast"),
            v - 1,
            "2026-01-01T11:00:00Z",
        ),
    )
    .await;
    assert_eq!(newer["result"]["resolution"]["outcome"], "client_newer");

    // What the server holds now, as a delta from the start.
    let all = account
        .raw(
            Method::GET,
            "/sync/settings?since=0",
            Some(phone.token()),
            None,
        )
        .await;
    let value_of = |ns: &str| {
        all.body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["namespace"] == ns)
            .map(|d| d["value"].clone())
            .unwrap()
    };
    assert_eq!(value_of("ns.client_wins"), "solarized");
    assert_eq!(value_of("ns.server_wins"), "dark");
    assert_eq!(value_of("ns.most_recent_wins"), "contrast");
    assert_eq!(value_of("ns.manual"), "dark", "held, not written");

    // The held conflict waits for the user, who takes the laptop's value.
    let r = account
        .raw(
            Method::GET,
            "/sync/settings/conflicts",
            Some(phone.token()),
            None,
        )
        .await;
    let open = r.body["conflicts"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0]["id"].as_str(), open[0]["client_value"].as_str()),
        (Some(conflict_id.as_str()), Some("solarized"))
    );
    let since = all.body["version"].as_i64().unwrap();
    let r = account
        .raw(
            Method::POST,
            &format!("/sync/settings/conflicts/{conflict_id}/resolve"),
            Some(phone.token()),
            Some(&json!({ "use": "client" })),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["resolution"].as_str()),
        (200, Some("manual_client")),
        "{}",
        r.body
    );
    let again = account
        .raw(
            Method::POST,
            &format!("/sync/settings/conflicts/{conflict_id}/resolve"),
            Some(phone.token()),
            Some(&json!({ "use": "server" })),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), code(&again)),
        (409, "conflict_already_resolved")
    );

    // The delta since then carries only the resolved document.
    let delta = account
        .raw(
            Method::GET,
            &format!("/sync/settings?since={since}"),
            Some(laptop.token()),
            None,
        )
        .await;
    let docs = delta.body["changes"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{}", delta.body);
    assert_eq!(
        (docs[0]["namespace"].as_str(), docs[0]["value"].as_str()),
        (Some("ns.manual"), Some("solarized"))
    );

    // Every settlement is in the log.
    let log = resolutions(&account, &laptop).await;
    let outcomes: Vec<&str> = log.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    for o in [
        "client_won",
        "server_won",
        "server_newer",
        "client_newer",
        "held",
        "manual_client",
    ] {
        assert!(outcomes.contains(&o), "{o} missing from {outcomes:?}");
    }

    // Another account cannot see or settle any of it.
    let other = Account::create().await;
    let stranger = other.device("Stranger").await;
    let r = other
        .raw(
            Method::POST,
            &format!("/sync/settings/conflicts/{conflict_id}/resolve"),
            Some(stranger.token()),
            Some(&json!({ "use": "server" })),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = other
        .raw(
            Method::GET,
            "/sync/settings?since=0",
            Some(stranger.token()),
            None,
        )
        .await;
    assert_eq!(r.body["changes"], json!([]));
}

#[tokio::test]
async fn a_replayed_batch_answers_the_first_result_and_writes_nothing() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({ "changes": [
        change("editor", "font", json!({ "family": "Iosevka", "size": 13 }), 0, "2026-01-01T10:00:00Z"),
        change("editor", "tabs", json!(4), 0, "2026-01-01T10:00:00Z"),
    ]});
    let batch = |body: Value, key: Option<String>| {
        let account = &account;
        let token = laptop.token().to_owned();
        async move {
            let headers: Vec<(&str, &str)> = key
                .as_deref()
                .map(|k| vec![("idempotency-key", k)])
                .unwrap_or_default();
            account
                .api
                .raw(
                    Method::POST,
                    "/sync/batch",
                    Some(&token),
                    Some(&body),
                    &headers,
                )
                .await
                .unwrap()
        }
    };
    let first = batch(body.clone(), Some(key.clone())).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    let state = account
        .raw(Method::GET, "/sync/settings", Some(laptop.token()), None)
        .await;

    let replay = batch(body.clone(), Some(key.clone())).await;
    assert_eq!((replay.status, &replay.body), (first.status, &first.body));
    let after = account
        .raw(Method::GET, "/sync/settings", Some(laptop.token()), None)
        .await;
    assert_eq!(after.body, state.body, "the replay wrote nothing");
    assert!(resolutions(&account, &laptop).await.is_empty());

    let other_body =
        json!({ "changes": [change("editor", "tabs", json!(2), 0, "2026-01-01T10:00:00Z")] });
    let reused = batch(other_body, Some(key)).await;
    assert_eq!(
        (reused.status.as_u16(), code(&reused)),
        (422, "idempotency_key_reused")
    );
    let unkeyed = batch(body, None).await;
    assert_eq!(
        (unkeyed.status.as_u16(), code(&unkeyed)),
        (400, "idempotency_key_required")
    );

    // One bad change refuses the whole batch: nothing of it is written.
    let half_bad = json!({ "changes": [
        change("editor", "wrap", json!(true), 0, "2026-01-01T10:00:00Z"),
        change("Editor With Spaces", "x", json!(1), 0, "2026-01-01T10:00:00Z"),
    ]});
    let r = batch(half_bad, Some(uuid::Uuid::new_v4().to_string())).await;
    assert_eq!(r.status, 400);
    let after = account
        .raw(Method::GET, "/sync/settings", Some(laptop.token()), None)
        .await;
    assert_eq!(after.body, state.body);
}

/// A new device's request for `account`, from its own client (not signed in).
async fn ask(
    account: &Account,
    name: &str,
) -> (
    udc_agent::sync::ApprovalTicket,
    seal::DeviceKeyPair,
    udc_agent::Client,
) {
    let keys = seal::DeviceKeyPair::generate();
    let newcomer = client();
    let ticket = newcomer
        .request_approval(&account.email, name, &keys.public_b64())
        .await
        .unwrap();
    (ticket, keys, newcomer)
}

async fn pending(account: &Account, device: &TestDevice, id: &str) -> PendingLogin {
    account
        .api
        .pending_approvals(device.token())
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id == id)
        .expect("the request is pending")
}

#[tokio::test]
async fn a_trusted_device_approves_a_new_sign_in_which_collects_its_tokens_and_key_once() {
    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let seq = last_seq(&account, &phone).await;
    let (ticket, keys, newcomer) = ask(&account, "New Laptop").await;
    assert_eq!(ticket.expires_in, 120);
    assert_eq!(ticket.fingerprint_phrase.split('-').count(), 5);
    assert_eq!(
        ticket.fingerprint_phrase,
        udc_core::approval::fingerprint_phrase(&B64.decode(keys.public_b64()).unwrap()),
        "the new device can compute the phrase it shows itself"
    );

    // The phone is told, with the same phrase, the name and where the request came from.
    let told = events(&account, &phone, seq).await;
    let request = told
        .iter()
        .find(|e| e.event == "auth.approval.request")
        .expect("auth.approval.request");
    assert_eq!(
        request.data["request"]["fingerprint_phrase"],
        ticket.fingerprint_phrase.as_str()
    );
    assert_eq!(request.data["request"]["device_name"], "New Laptop");
    assert!(request.data["request"]["client_ip"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("2001:db8")));
    let req = pending(&account, &phone, &ticket.request_id).await;

    assert!(matches!(
        newcomer.poll_approval(&ticket).await.unwrap(),
        ApprovalState::Pending { .. }
    ));
    account
        .api
        .respond_approval(phone.token(), &req, true, false, &account.enc_key)
        .await
        .unwrap();
    let ApprovalState::Approved(approved) = newcomer.poll_approval(&ticket).await.unwrap() else {
        panic!("approved")
    };
    assert_eq!(approved.user.id, account.user_id);
    assert_eq!(
        approved.approver_device_id.as_deref(),
        Some(phone.id.as_str())
    );
    let key = keys.open_account_key(&approved.sealed_key).unwrap();
    assert_eq!(
        key, account.enc_key,
        "the new device holds the account key without the password"
    );

    // Its tokens work: it registers itself and reads a clipboard item the phone sealed.
    let reg = newcomer
        .register_device(&approved.tokens.access_token, &device_info("New Laptop"))
        .await
        .unwrap();
    let item = account
        .api
        .post_clipboard(
            phone.token(),
            &account.enc_key,
            "text/plain",
            b"from the phone",
        )
        .await
        .unwrap();
    let read = newcomer
        .clipboard_item(&reg.tokens.access_token, &item.id)
        .await
        .unwrap();
    assert_eq!(read.open(&key).unwrap().unwrap(), b"from the phone");

    // Exactly once.
    let again = newcomer.poll_approval(&ticket).await.unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(410), Some("approval_used"))
    );
    let r = account
        .raw(
            Method::POST,
            "/auth/biometric/respond",
            Some(phone.token()),
            Some(&json!({ "request_id": ticket.request_id, "approved": false })),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (409, "approval_already_answered")
    );
}

#[tokio::test]
async fn denied_expired_and_wrongly_polled_requests_get_clear_answers() {
    let account = Account::create().await;
    let phone = account.device("Phone").await;

    let (ticket, _, newcomer) = ask(&account, "Denied").await;
    let req = pending(&account, &phone, &ticket.request_id).await;
    account
        .api
        .respond_approval(phone.token(), &req, false, false, &account.enc_key)
        .await
        .unwrap();
    let e = newcomer.poll_approval(&ticket).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("approval_denied")));

    // Nobody answers within two minutes.
    let (ticket, _, newcomer) = ask(&account, "Late").await;
    let later = [(CLOCK_HEADER, "121000")];
    let r = newcomer
        .raw(
            Method::GET,
            &format!("/auth/approval/{}", ticket.request_id),
            None,
            None,
            &[later[0], ("x-udc-approval-secret", &ticket.poll_secret)],
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), code(&r)), (410, "approval_expired"));
    let r = account
        .api
        .raw(
            Method::POST,
            "/auth/biometric/respond",
            Some(phone.token()),
            Some(&json!({ "request_id": ticket.request_id, "approved": true, "sealed_key": B64.encode([0u8; 80]) })),
            &later,
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), code(&r)), (410, "approval_expired"));

    // A wrong or missing poll secret.
    for secret in ["wrong", ""] {
        let r = newcomer
            .raw(
                Method::GET,
                &format!("/auth/approval/{}", ticket.request_id),
                None,
                None,
                &[("x-udc-approval-secret", secret)],
            )
            .await
            .unwrap();
        assert_eq!((r.status.as_u16(), code(&r)), (403, "invalid_poll_secret"));
    }

    // An email without an account gets the same answer, and nothing ever approves it.
    let nobody = client();
    let keys = seal::DeviceKeyPair::generate();
    let t = nobody
        .request_approval(&unique_email(), "Ghost", &keys.public_b64())
        .await
        .unwrap();
    assert!(matches!(
        nobody.poll_approval(&t).await.unwrap(),
        ApprovalState::Pending { .. }
    ));

    // Bad requests.
    let r = nobody
        .raw(
            Method::POST,
            "/auth/approval/request",
            None,
            Some(&json!({ "email": account.email, "device_name": "X", "public_key": "c2hvcnQ=" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn only_a_trusted_device_of_the_account_may_approve() {
    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let tablet = account.device("Tablet").await;
    let (ticket, _, newcomer) = ask(&account, "New").await;
    let req = pending(&account, &phone, &ticket.request_id).await;

    // Two devices, neither trusting the other: neither may approve.
    let e = account
        .api
        .respond_approval(tablet.token(), &req, true, false, &account.enc_key)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("device_not_trusted"), "{e}");

    // A device of another account does not even find it.
    let other = Account::create().await;
    let stranger = other.device("Stranger").await;
    let r = other
        .raw(
            Method::POST,
            "/auth/biometric/respond",
            Some(stranger.token()),
            Some(&json!({ "request_id": ticket.request_id, "approved": true, "sealed_key": B64.encode([0u8; 80]) })),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(other
        .api
        .pending_approvals(stranger.token())
        .await
        .unwrap()
        .is_empty());

    // Once the phone trusts the tablet, the tablet may — after the owner's biometric check if it has one.
    account
        .api
        .trust(phone.token(), &phone.id, &tablet.id)
        .await
        .unwrap();
    let r = account
        .raw(
            Method::PUT,
            &format!("/devices/{}", tablet.id),
            Some(tablet.token()),
            Some(&json!({ "capabilities": ["clipboard", "biometric"] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e = account
        .api
        .respond_approval(tablet.token(), &req, true, false, &account.enc_key)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("biometric_required"), "{e}");
    account
        .api
        .respond_approval(tablet.token(), &req, true, true, &account.enc_key)
        .await
        .unwrap();
    assert!(matches!(
        newcomer.poll_approval(&ticket).await.unwrap(),
        ApprovalState::Approved(_)
    ));
}

#[tokio::test]
async fn a_handoff_is_taken_once_and_its_device_is_told() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let snapshot = br#"{"app":"browser","url":"https://example.com/article#p12"}"#;
    let sealed = seal::seal(
        &account.enc_key,
        &seal::handoff_aad("browser.tab", "application/json"),
        snapshot,
    )
    .unwrap();
    let r = account
        .raw(
            Method::PUT,
            "/sync/handoff/browser.tab",
            Some(laptop.token()),
            Some(&json!({ "content_type": "application/json", "ciphertext": B64.encode(&sealed) })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seq = last_seq(&account, &laptop).await;

    let list = account
        .raw(Method::GET, "/sync/handoff", Some(phone.token()), None)
        .await;
    assert_eq!(list.body["handoffs"][0]["key"], "browser.tab");
    let other = Account::create().await;
    let stranger = other.device("Stranger").await;
    let r = other
        .raw(
            Method::POST,
            "/sync/handoff/browser.tab/take",
            Some(stranger.token()),
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    let taken = account
        .raw(
            Method::POST,
            "/sync/handoff/browser.tab/take",
            Some(phone.token()),
            None,
        )
        .await;
    assert_eq!(taken.status, 200);
    let got = B64
        .decode(taken.body["handoff"]["ciphertext"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        seal::open(
            &account.enc_key,
            &seal::handoff_aad("browser.tab", "application/json"),
            &got
        )
        .unwrap(),
        snapshot
    );
    let told = events(&account, &laptop, seq).await;
    let e = told
        .iter()
        .find(|e| e.event == "handoff.taken")
        .expect("handoff.taken");
    assert_eq!(e.data["by_device_id"], phone.id.as_str());
    let again = account
        .raw(
            Method::POST,
            "/sync/handoff/browser.tab/take",
            Some(phone.token()),
            None,
        )
        .await;
    assert_eq!(again.status, 404, "taken once");
}

/// Resolving one conflict from many requests at once: exactly one settles it, the others are
/// told it was resolved meanwhile, and the document holds the winner's value — a refused
/// resolve writes nothing.
#[tokio::test]
async fn concurrent_resolves_of_one_conflict_settle_it_once() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let r = account
        .raw(
            Method::PUT,
            "/sync/settings/policies/ns.race",
            Some(laptop.token()),
            Some(&json!({ "policy": "manual" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = write(
        &account,
        &laptop,
        &change("ns.race", "k", json!("a"), 0, "2026-01-01T10:00:00Z"),
    )
    .await;
    let v1 = first["result"]["version"].as_i64().unwrap();
    write(
        &account,
        &phone,
        &change("ns.race", "k", json!("b"), v1, "2026-01-01T10:01:00Z"),
    )
    .await;
    let held = write(
        &account,
        &laptop,
        &change("ns.race", "k", json!("c"), v1, "2026-01-01T10:02:00Z"),
    )
    .await;
    let conflict_id = held["result"]["conflict_id"].as_str().unwrap().to_owned();

    let path = format!("/sync/settings/conflicts/{conflict_id}/resolve");
    let answers = futures_util::future::join_all((0..12).map(|i| {
        let body = json!({ "use": "value", "value": format!("v{i}") });
        let (path, account, phone) = (&path, &account, &phone);
        async move {
            (
                i,
                account
                    .raw(Method::POST, path, Some(phone.token()), Some(&body))
                    .await,
            )
        }
    }))
    .await;
    let winners: Vec<usize> = answers
        .iter()
        .filter(|(_, r)| r.status == 200)
        .map(|(i, _)| *i)
        .collect();
    for (_, r) in &answers {
        assert!(
            r.status == 200 || (r.status == 409 && code(r) == "conflict_already_resolved"),
            "{} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(winners.len(), 1, "settled once: {winners:?}");
    let docs = account
        .raw(Method::GET, "/sync/settings", Some(laptop.token()), None)
        .await;
    let doc = docs.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["namespace"] == "ns.race")
        .cloned()
        .unwrap();
    assert_eq!(
        doc["value"],
        format!("v{}", winners[0]),
        "the winner's value, no other"
    );
    let log = resolutions(&account, &laptop).await;
    let settled = log
        .iter()
        .filter(|r| r["conflict_id"] == conflict_id.as_str() && r["outcome"] == "manual_value")
        .count();
    assert_eq!(settled, 1, "one settlement in the log: {log:?}");
}
