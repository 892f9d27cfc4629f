//! Every integer the API takes is one a JavaScript client holds exactly (at most 2^53 − 1, as
//! the contract says): a larger one is refused, not rounded on one host and kept on another.

use reqwest::{Method, StatusCode};
use serde_json::json;
use udc_conformance::*;

/// 2^53: the first integer a JavaScript number cannot tell from its neighbour.
const INEXACT: u64 = 1 << 53;

#[tokio::test]
async fn integers_beyond_what_clients_hold_exactly_are_refused() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    for (path, status) in [
        (
            format!("/account/activity?before={INEXACT}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/sync/settings?since={INEXACT}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/files?cursor={INEXACT}_{}", laptop.id),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = account
            .raw(Method::GET, &path, Some(laptop.token()), None)
            .await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(code(&r), "invalid_field", "{path}");
    }
    // The largest exact one is an ordinary value.
    let max = INEXACT - 1;
    for path in [
        format!("/account/activity?before={max}"),
        format!("/sync/settings?since={max}"),
        format!("/files?cursor={max}_{}", laptop.id),
    ] {
        let r = account
            .raw(Method::GET, &path, Some(laptop.token()), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }

    let change = |base: u64| json!({ "namespace": "ui", "key": "theme", "value": "dark", "base_version": base });
    let r = account
        .raw(
            Method::POST,
            "/sync/settings",
            Some(laptop.token()),
            Some(&change(INEXACT)),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(code(&r), "invalid_field");
    let r = account
        .raw(Method::GET, "/sync/settings", Some(laptop.token()), None)
        .await;
    assert_eq!(
        r.body["changes"],
        json!([]),
        "nothing was written: {}",
        r.body
    );
}
