//! The web app beside the API on every host: its page and files on the API's origin with the
//! security headers, client-side routes served the page, and the API's own paths never the app's.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use udc_conformance::base_url;

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_app_is_served_on_the_apis_origin_with_its_security_headers() {
    let http = reqwest::Client::new();
    for path in ["/", "/some/client/route"] {
        let resp = http
            .get(format!("{}{path}", base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(header(&resp, CONTENT_TYPE.as_str()).starts_with("text/html"));
        assert_eq!(header(&resp, CACHE_CONTROL.as_str()), "no-cache");
        let csp = header(&resp, "content-security-policy").to_owned();
        for rule in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval';",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(rule), "{path}: {rule} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
        assert_eq!(header(&resp, "referrer-policy"), "no-referrer");
        assert_eq!(header(&resp, "x-frame-options"), "DENY");
        let page = resp.text().await.unwrap();
        assert!(page.contains(r#"<div id="app">"#), "{path}: the app's page");
        assert!(!page.contains("<script>"), "no inline script");

        // Its script and the crypto wasm: immutable, with the types browsers require.
        let script = page
            .split('"')
            .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
            .expect("the page names its script");
        let resp = http
            .get(format!("{}{script}", base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(header(&resp, CONTENT_TYPE.as_str()).starts_with("text/javascript"));
        assert!(header(&resp, CACHE_CONTROL.as_str()).contains("immutable"));
        let js = resp.text().await.unwrap();
        let wasm = js
            .split('"')
            .find(|s| s.ends_with(".wasm"))
            .expect("the script names the crypto wasm");
        let wasm = format!("/assets/{}", wasm.rsplit('/').next().unwrap());
        let resp = http
            .get(format!("{}{wasm}", base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{wasm}");
        assert_eq!(header(&resp, CONTENT_TYPE.as_str()), "application/wasm");
    }
}

#[tokio::test]
async fn the_apis_paths_stay_the_apis_and_missing_assets_are_not_the_page() {
    let http = reqwest::Client::new();
    for (method, path, status) in [
        (reqwest::Method::GET, "/devices", 401),
        (reqwest::Method::GET, "/files/no/such/route", 404),
        (reqwest::Method::GET, "/assets/no-such-build.js", 404),
        (reqwest::Method::POST, "/", 404),
    ] {
        let resp = http
            .request(method.clone(), format!("{}{path}", base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let body: serde_json::Value = resp.json().await.expect("the API's JSON error shape");
        assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
    }
}
