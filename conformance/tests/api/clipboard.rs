//! The clipboard: items sealed end to end reach the account's other devices, one event however
//! many receive it; the history keeps the newest and can be cleared; posts are checked.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use udc_agent::seal;
use udc_conformance::*;

fn clipboard_events(events: &[udc_hub::Event]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e.event == "clipboard.sync")
        .map(|e| &e.data["item"])
        .collect()
}

/// The account log's last number, whomever its events were for.
async fn log_end(account: &Account, device: &TestDevice) -> u64 {
    let page = account
        .raw(Method::GET, "/events?after=0", Some(device.token()), None)
        .await;
    page.body["last_seq"].as_u64().expect("last_seq")
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
            &account.account_key,
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
        udc_agent::sync::open_item(&relayed, &account.account_key)
            .unwrap()
            .unwrap(),
        secret.as_bytes()
    );
    assert!(
        udc_agent::sync::open_item(&relayed, &[7u8; 32]).is_err(),
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
        udc_agent::sync::open_item(&fetched, &account.account_key)
            .unwrap()
            .unwrap(),
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
        .post_clipboard(
            sender.token(),
            &account.account_key,
            "text/plain",
            b"one copy",
        )
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
                &account.account_key,
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
    let sealed =
        |n: usize| B64.encode(seal::seal(&account.account_key, b"x", &vec![b'a'; n]).unwrap());
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
