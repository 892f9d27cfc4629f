//! What an operator relies on. Every answer names its request in `X-Request-Id`, and every
//! error says it in its body (`error.request_id`), so what a user reports can be found in the
//! host's logs (the contract check asks every error body of the suite for it as well).
//! `/ready` says whether the host can serve (tests/faults.rs takes its store away).

use reqwest::Method;
use udc_agent::client::RawResponse;
use udc_conformance::*;

async fn get(path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let api = client();
    let mut resp = None;
    // wrangler dev's proxy at times answers for a Worker it lost the request to: once more.
    for _ in 0..2 {
        let sent = api
            .raw(Method::GET, path, None, None, headers)
            .await
            .expect("request");
        let lost = sent.status == 503 && !sent.body["error"].is_object();
        resp = Some(sent);
        if !lost {
            break;
        }
    }
    resp.expect("an answer")
}

fn header_id(resp: &RawResponse) -> String {
    resp.headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no X-Request-Id on a {} answer", resp.status))
        .to_owned()
}

#[tokio::test]
async fn a_callers_own_id_comes_back_on_success_and_error() {
    let mine = format!("test-{}", uuid::Uuid::new_v4());
    let refused = get("/devices", &[("x-request-id", &mine)]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(header_id(&refused), mine);
    assert_eq!(refused.body["error"]["request_id"], mine.as_str());

    let missing = get("/assets/no-such-file.js", &[("x-request-id", &mine)]).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["error"]["request_id"], mine.as_str());

    let health = get("/health", &[("x-request-id", &mine)]).await;
    assert_eq!(health.status, 200);
    assert_eq!(header_id(&health), mine);

    let page = reqwest::Client::new()
        .get(format!("{}/", base_url()))
        .header("x-request-id", &mine)
        .send()
        .await
        .expect("the web app's page");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-request-id"], mine.as_str());
}

#[tokio::test]
async fn a_request_without_a_sane_id_gets_a_new_one_of_its_own() {
    let mut seen = Vec::new();
    for sent in [
        None,
        Some("two words"),
        Some("a\"quote"),
        Some(&"a".repeat(65)[..]),
    ] {
        let headers: Vec<(&str, &str)> = sent.map(|id| ("x-request-id", id)).into_iter().collect();
        let resp = get("/devices", &headers).await;
        assert_eq!(resp.status, 401, "{}", resp.body);
        let id = header_id(&resp);
        assert_eq!(resp.body["error"]["request_id"], id.as_str());
        assert!(
            Some(id.as_str()) != sent,
            "{id}: a caller's unsafe id was kept"
        );
        assert!(
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)),
            "{id}"
        );
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "each request has its own id: {seen:?}");
}

#[tokio::test]
async fn a_host_with_its_database_and_store_is_ready() {
    let ready = get("/ready", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    // Every host the suite runs has an object store: files are tested on each.
    assert_eq!(ready.body["checks"]["database"], "ok");
    assert_eq!(ready.body["checks"]["store"], "ok");
}
