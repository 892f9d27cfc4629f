//! Settings: writes settled by each namespace's conflict policy and logged, idempotent batches,
//! and a held conflict resolved once however many ask at once.

use reqwest::Method;
use serde_json::{json, Value};
use udc_conformance::*;

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
