//! Bad input answers 4xx with the error shape, never 500, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;
use udc_conformance::*;

const BODY_ROUTES: [&str; 5] = [
    "/auth/prelogin",
    "/auth/register",
    "/auth/login",
    "/auth/token/refresh",
    "/devices/register",
];

async fn send(
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{}", base_url(), path))
        .header("content-type", content_type)
        .header(IP_HEADER, unique_ip())
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(json!(null));
    openapi::check("POST", path, status.as_u16(), &body);
    (status, body)
}

async fn fresh_token() -> String {
    Account::create().await.login().await.tokens.access_token
}

#[tokio::test]
async fn malformed_json_is_400_on_every_route() {
    let token = fresh_token().await;
    for path in BODY_ROUTES {
        for body in [&b"{"[..], b"not json", b"{\"email\":", b"[1,2"] {
            let (status, resp) = send(path, "application/json", body.to_vec(), Some(&token)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body:?}: {resp}");
            assert_eq!(resp["error"]["code"], "malformed_json");
        }
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_415() {
    let token = fresh_token().await;
    for path in BODY_ROUTES {
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let (status, resp) = send(
                path,
                ct,
                br#"{"email":"a@example.com"}"#.to_vec(),
                Some(&token),
            )
            .await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}: {resp}");
        }
    }
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let token = fresh_token().await;
    let big = json!({ "email": "a@example.com", "padding": "x".repeat(100 * 1024) }).to_string();
    for path in BODY_ROUTES {
        let (status, resp) = send(
            path,
            "application/json",
            big.clone().into_bytes(),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {resp}");
    }
}

#[tokio::test]
async fn missing_wrongly_typed_or_out_of_range_fields_are_400() {
    let kdf = json!({ "algorithm": "argon2id", "memory_kib": 19456, "iterations": 2, "parallelism": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==" });
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let cases = [
        ("/auth/prelogin", json!({})),
        ("/auth/prelogin", json!({ "email": 42 })),
        ("/auth/prelogin", json!({ "email": "no-at-sign" })),
        (
            "/auth/prelogin",
            json!({ "email": format!("{}@example.com", "a".repeat(300)) }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "auth_key": key }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "kdf": kdf, "auth_key": "c2hvcnQ=" }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "kdf": { "algorithm": "argon2id", "memory_kib": 1024, "iterations": 2, "parallelism": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==" }, "auth_key": key }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "kdf": { "algorithm": "pbkdf2", "memory_kib": 19456, "iterations": 2, "parallelism": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==" }, "auth_key": key }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "kdf": { "algorithm": "argon2id", "memory_kib": 19456, "iterations": 1, "parallelism": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==" }, "auth_key": key }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "kdf": { "algorithm": "argon2id", "memory_kib": 19456, "iterations": 2, "parallelism": 1, "salt": "c2hvcnQ=" }, "auth_key": key }),
        ),
        (
            "/auth/register",
            json!({ "email": unique_email(), "kdf": { "algorithm": "argon2id", "memory_kib": -5, "iterations": 2, "parallelism": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==" }, "auth_key": key }),
        ),
        ("/auth/login", json!({ "email": unique_email() })),
        (
            "/auth/login",
            json!({ "email": unique_email(), "auth_key": "not base64!" }),
        ),
        ("/auth/token/refresh", json!({ "refresh_token": 7 })),
    ];
    for (path, body) in cases {
        let (status, resp) = send(
            path,
            "application/json",
            body.to_string().into_bytes(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {resp}");
        assert_eq!(
            resp["error"]["code"], "invalid_field",
            "{path} {body}: {resp}"
        );
    }
}

#[tokio::test]
async fn bad_device_fields_are_400_and_register_nothing() {
    let account = Account::create().await;
    let token = account.login().await.tokens.access_token;
    let cases = [
        json!({ "platform": "linux" }),
        json!({ "name": "", "platform": "linux" }),
        json!({ "name": "   ", "platform": "linux" }),
        json!({ "name": "x".repeat(65), "platform": "linux" }),
        json!({ "name": "tab\there", "platform": "linux" }),
        json!({ "name": "ok", "platform": "amiga" }),
        json!({ "name": "ok", "platform": "linux", "capabilities": ["Clipboard"] }),
        json!({ "name": "ok", "platform": "linux", "capabilities": ["a b"] }),
        json!({ "name": "ok", "platform": "linux", "capabilities": (0..33).map(|i| format!("c{i}")).collect::<Vec<_>>() }),
        json!({ "name": "ok", "platform": "linux", "os_version": "v".repeat(65) }),
        json!({ "name": "ok", "platform": "linux", "capabilities": "clipboard" }),
    ];
    for body in cases {
        let (status, resp) = send(
            "/devices/register",
            "application/json",
            body.to_string().into_bytes(),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
    }
    // Nothing was registered, and the session is still usable for a valid registration.
    let reg = account
        .api
        .register_device(&token, &device_info("Valid"))
        .await
        .unwrap();
    assert_eq!(
        account
            .api
            .devices(reg.tokens.access_token.as_str())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_ids_unknown_routes_and_wrong_methods() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    for path in [
        "/devices/not-a-uuid",
        "/devices/%00",
        "/devices/12345678-1234-1234-1234-1234567890123",
    ] {
        let resp = account
            .raw(Method::GET, path, Some(device.token()), None)
            .await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{path}");
    }
    let bad_target = account
        .raw(
            Method::POST,
            &format!("/devices/{}/trust", device.id),
            Some(device.token()),
            Some(&json!({ "target_device_id": "nope" })),
        )
        .await;
    assert_eq!(bad_target.status, StatusCode::BAD_REQUEST);

    // Under an API path (any other path is the web app's: tests/api/web_app.rs).
    let unknown = account
        .raw(Method::GET, "/sync/no/such/route", None, None)
        .await;
    assert_eq!(
        (unknown.status, code(&unknown)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let wrong = account.raw(Method::DELETE, "/auth/login", None, None).await;
    assert_eq!(
        (wrong.status, code(&wrong)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(wrong.headers.get("allow").unwrap(), "POST");
    let patch = account
        .raw(
            Method::PATCH,
            &format!("/devices/{}", device.id),
            Some(device.token()),
            None,
        )
        .await;
    assert_eq!(patch.status, StatusCode::METHOD_NOT_ALLOWED);
    // A method no route takes runs no handler (a host must not read it as GET): QUERY, which
    // every host's HTTP layer knows, is core's 405; FOO, which workerd's HTTP layer refuses
    // itself (501, plain text), must at least never reach a handler.
    for (method, path) in [("QUERY", "/devices"), ("FOO", "/files")] {
        let resp = reqwest::Client::new()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", base_url()),
            )
            .header(IP_HEADER, unique_ip())
            .bearer_auth(device.token())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(!status.is_success(), "{method} {path}: {status}");
        if method == "FOO" && status == StatusCode::NOT_IMPLEMENTED {
            continue;
        }
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(resp.headers()["allow"], "GET", "{method} {path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }

    let health = account.raw(Method::GET, "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
}

/// Requests the HTTP layer itself refuses still get the JSON error shape, and the connection
/// closes cleanly after the answer. udc-server only: workerd and the Spin test host answer
/// these themselves (scripts/test.sh leaves this test out there).
#[tokio::test]
async fn protocol_level_errors_answer_with_the_json_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let many: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let mut cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /devices HTTP/1.1\r\nhost: x\r\n{many}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        // A good request kept alive, then a bad one: both answered, in order.
        (
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /h\x01 HTTP/1.1\r\nhost: x\r\n\r\n"
                .to_vec(),
            400,
            "malformed_request",
        ),
    ];
    // A chunked body (split oddly, with an extension and a trailer), then a bad head on the
    // same connection: the body is followed to its end, and only the bad head is refused.
    let body = br#"{"email":"someone@example.com"}"#;
    let (one, two) = body.split_at(7);
    let mut chunked = b"POST /auth/prelogin HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    chunked.extend(format!("{:x};note=1\r\n", one.len()).as_bytes());
    chunked.extend(one);
    chunked.extend(format!("\r\n{:x}\r\n", two.len()).as_bytes());
    chunked.extend(two);
    chunked.extend(b"\r\n0\r\nx-trailer: 1\r\n\r\nGET /h\x01 HTTP/1.1\r\nhost: x\r\n\r\n");
    cases.push((chunked, 400, "malformed_request"));
    for (request, status, code) in cases {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(hub::PATIENCE, conn.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection after its answer")
            .expect("a clean close, not a reset");
        let text = String::from_utf8_lossy(&answer).into_owned();
        // The last answer on the connection is the refusal.
        let last = text
            .rfind("HTTP/1.1 4")
            .map(|i| &text[i..])
            .unwrap_or(&text);
        let (head, body) = last.split_once("\r\n\r\n").expect("a complete answer");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(json["error"]["code"], code, "{body}");
        if request.starts_with(b"GET /health") || request.starts_with(b"POST /auth/prelogin") {
            assert!(
                text.starts_with("HTTP/1.1 200 "),
                "the good request first: {text}"
            );
        }
    }
}

/// A caller without a valid access token learns only that: 401, before any of its input is read
/// (a 400 would tell it which inputs the route takes).
#[tokio::test]
async fn without_a_valid_token_every_private_route_answers_401_before_reading_input() {
    let bad_input: [(Method, &str, Option<serde_json::Value>); 14] = [
        (Method::GET, "/files?limit=0", None),
        (Method::GET, "/files/shared?limit=abc", None),
        (Method::GET, "/remote/sessions?limit=0", None),
        (Method::GET, "/sync/clipboard/history?limit=0", None),
        (Method::GET, "/sync/settings?namespace=%00", None),
        (Method::GET, "/sync/settings/resolutions?limit=0", None),
        (Method::GET, "/events?after=-1", None),
        (Method::POST, "/files/upload/initiate", Some(json!({}))),
        (
            Method::POST,
            "/files/upload/part",
            Some(json!({ "upload_id": 1 })),
        ),
        (Method::POST, "/files/upload/complete", Some(json!([]))),
        (
            Method::PUT,
            "/devices/not-an-id",
            Some(json!({ "name": "" })),
        ),
        (
            Method::POST,
            "/sync/clipboard",
            Some(json!({ "ciphertext": "" })),
        ),
        (Method::PUT, "/sync/handoff/%20", Some(json!({}))),
        (
            Method::POST,
            "/remote/session/request",
            Some(json!({ "mode": "nonsense" })),
        ),
    ];
    let expired = {
        let account = Account::create().await;
        let device = account.device("Laptop").await;
        device.token().to_owned()
    };
    for (method, path, body) in bad_input {
        for auth in [None, Some("Bearer not-a-token".to_owned())] {
            let mut req = reqwest::Client::new()
                .request(method.clone(), format!("{}{}", base_url(), path))
                .header(IP_HEADER, unique_ip());
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let answer: serde_json::Value = resp.json().await.unwrap_or(json!(null));
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}: {answer}"
            );
        }
        // A token from a month ago (expired) is no better.
        let later = reqwest::Client::new()
            .request(method.clone(), format!("{}{}", base_url(), path))
            .header(IP_HEADER, unique_ip())
            .header(CLOCK_HEADER, (31i64 * 24 * 3600 * 1000).to_string())
            .bearer_auth(&expired);
        let later = match &body {
            Some(b) => later.json(b),
            None => later,
        };
        let resp = later.send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with an expired token"
        );
    }
}

/// Sealed data shorter than its nonce and tag cannot be sealed at all: a bad field (400), not a
/// size limit (413).
#[tokio::test]
async fn too_short_ciphertext_is_400() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let short = "AAAA"; // three bytes
    for (method, path, body) in [
        (
            Method::POST,
            "/sync/clipboard",
            json!({ "content_type": "text/plain", "size": 1, "ciphertext": short }),
        ),
        (
            Method::PUT,
            "/sync/handoff/draft",
            json!({ "content_type": "text/plain", "ciphertext": short }),
        ),
    ] {
        let resp = account
            .raw(method.clone(), path, Some(device.token()), Some(&body))
            .await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            resp.body
        );
        assert_eq!(resp.body["error"]["code"], "invalid_field");
    }
}

/// JSON Schema counts 20.0 as the integer 20 (a generated client may well write it so): the
/// server takes it as one, and refuses a fraction.
#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    for (history_size, status) in [(20.0, StatusCode::OK), (20.5, StatusCode::BAD_REQUEST)] {
        let resp = account
            .raw(
                Method::PUT,
                "/sync/clipboard/preferences",
                Some(device.token()),
                Some(&json!({ "history_size": history_size })),
            )
            .await;
        assert_eq!(resp.status, status, "{history_size}: {}", resp.body);
    }
}
