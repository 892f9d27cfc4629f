//! Handoff: a sealed snapshot one device leaves for another, taken once, its device told.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use udc_agent::seal;
use udc_conformance::*;

#[tokio::test]
async fn a_handoff_is_taken_once_and_its_device_is_told() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let snapshot = br#"{"app":"browser","url":"https://example.com/article#p12"}"#;
    let sealed = seal::seal(
        &account.account_key,
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
            &account.account_key,
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
