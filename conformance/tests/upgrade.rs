//! An account D1 held before each account had its own Durable Object moves into its object on
//! first use, with nothing lost. scripts/test.sh makes the account with `udc-d1-account` (core
//! over the local D1, wrangler stopped), then starts wrangler dev on the same state and runs
//! this: `UDC_UPGRADE_STATE` is what that account holds, `UDC_UPGRADE_D1` the D1 file.

use reqwest::Method;
use serde_json::Value;
use udc_conformance::*;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/test.sh"))
}

/// How many rows D1 still holds of `user_id` in `table` (its users row: `users`).
fn left_in_d1(table: &str, user_id: &str) -> i64 {
    let column = if table == "users" { "id" } else { "user_id" };
    let d1 = rusqlite::Connection::open_with_flags(
        env("UDC_UPGRADE_D1"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    d1.query_row(
        &format!("SELECT count(*) FROM {table} WHERE {column} = ?"),
        [user_id],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn an_account_d1_held_moves_into_its_object_on_first_use_with_nothing_lost() {
    let saved: Value =
        serde_json::from_slice(&std::fs::read(env("UDC_UPGRADE_STATE")).unwrap()).unwrap();
    let user_id = saved["user_id"].as_str().unwrap();
    let api = client();
    assert_eq!(
        left_in_d1("devices", user_id),
        saved["devices"].as_i64().unwrap(),
        "D1 holds the account before"
    );
    assert!(
        left_in_d1("event_outbox", user_id) > 0,
        "its event waits in D1's outbox"
    );

    // The first request: a refresh token from before tokens named their account. It reaches
    // the account's object, which moves the account in and answers from it.
    let pair = api
        .refresh(saved["refresh_token"].as_str().unwrap())
        .await
        .expect("the old refresh token still refreshes");
    assert_eq!(
        udc_core::tokens::refresh_account(&pair.refresh_token),
        Some(user_id),
        "the new refresh token names its account"
    );
    assert_eq!(
        left_in_d1("devices", saved["other_user_id"].as_str().unwrap()),
        1,
        "the move removed another account's device, written during it where a copied row was"
    );
    for table in [
        "users",
        "devices",
        "sessions",
        "clipboard_items",
        "event_outbox",
    ] {
        assert_eq!(left_in_d1(table, user_id), 0, "D1 still holds {table}");
    }

    // Everything is there: the device, the clipboard item, and the event the outbox held.
    let token = pair.access_token.as_str();
    let devices = api
        .raw(Method::GET, "/devices", Some(token), None, &[])
        .await
        .unwrap();
    assert_eq!(devices.status, 200, "{:?}", devices.body);
    assert!(
        devices.body.to_string().contains("Desk from D1"),
        "{:?}",
        devices.body
    );
    assert_eq!(
        devices.body["devices"].as_array().map(Vec::len),
        saved["devices"].as_u64().map(|n| n as usize),
        "every device moved (more than one page of them)"
    );
    let history = api
        .raw(
            Method::GET,
            "/sync/clipboard/history",
            Some(token),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(history.status, 200, "{:?}", history.body);
    let item = saved["clipboard_item"].as_str().unwrap();
    assert!(
        history.body.to_string().contains(item),
        "{:?}",
        history.body
    );
    // What D1 gained while the move removed what it had copied came too.
    let activity = api
        .raw(
            Method::GET,
            "/account/activity?limit=200",
            Some(token),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(activity.status, 200, "{:?}", activity.body);
    assert!(
        activity.body["activity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == saved["late_activity"]),
        "the entry written during the move was lost: {:?}",
        activity.body
    );
    let events = api
        .raw(Method::GET, "/events?after=0", Some(token), None, &[])
        .await
        .unwrap();
    assert_eq!(events.status, 200, "{:?}", events.body);
    // The device's registration, which the hub had not taken when D1 was left.
    let device = saved["device_id"].as_str().unwrap();
    assert!(
        events.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "device.registered" && e["data"]["device"]["id"] == device),
        "the outbox's event was not delivered: {:?}",
        events.body
    );

    // The password signs in, to the same account: the move put its email in the directory.
    let (signed, _) = api
        .login(saved["email"].as_str().unwrap(), PASSWORD)
        .await
        .expect("the password signs in");
    assert_eq!(signed.user.id, user_id);
}
