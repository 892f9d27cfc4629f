//! The web app beside the API, on the same origin: which requests are the app's (everything
//! outside the API's own paths, so the app can route on the client), and the headers every
//! page and asset carries. Hosts serve the bytes (udc-server and Spin from `udc-web-assets`,
//! the Worker from Workers Static Assets) and take these rules from here.

use http::Method;

use crate::Config;

/// The first path segments the API owns. Anything else a browser GETs is the app's; an unknown
/// path under one of these is the API's JSON 404, never the app's page.
pub const API_SEGMENTS: [&str; 11] = [
    "health", "ready", "auth", "account", "devices", "events", "realtime", "files", "sync",
    "remote", "test",
];

/// Whether the web app answers this request rather than the API.
pub fn is_app_request(method: &Method, path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    (method == Method::GET || method == Method::HEAD) && !API_SEGMENTS.contains(&first)
}

/// How long a browser may keep an asset: hashed build output never changes under its name;
/// everything else (the page, the service worker, the manifest) is revalidated every time.
pub fn cache_control(path: &str) -> &'static str {
    if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// The page's security headers. Scripts only from this origin (and wasm, which the crypto
/// needs compiled); connections only to the API (same origin, sockets included) and the object
/// store, whose presigned URLs the browser PUTs and GETs; never framed; no referrer leaks a
/// path to the store.
pub fn security_headers(store_origin: Option<&str>) -> [(&'static str, String); 5] {
    let store = store_origin.map(|o| format!(" {o}")).unwrap_or_default();
    [
        (
            "content-security-policy",
            format!(
                "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                 img-src 'self' blob: data:; connect-src 'self'{store}; worker-src 'self'; \
                 manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'"
            ),
        ),
        ("referrer-policy", "no-referrer".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        ("cross-origin-opener-policy", "same-origin".to_owned()),
    ]
}

/// The app's security headers for this deployment (its store's origin allowed).
pub fn app_headers(config: &Config) -> [(&'static str, String); 5] {
    let origin = config
        .storage
        .as_ref()
        .map(|s| s.endpoint.origin().ascii_serialization());
    security_headers(origin.as_deref())
}

/// The app's security headers from the store's endpoint alone (`UDC_S3_ENDPOINT`, when set): for
/// a host that serves the app apart from the API and is given none of the API's secrets (Spin's
/// web component).
pub fn store_headers(endpoint: Option<&str>) -> Result<[(&'static str, String); 5], String> {
    let origin = endpoint
        .filter(|e| !e.trim().is_empty())
        .map(crate::config::store_endpoint)
        .transpose()?
        .map(|u| u.origin().ascii_serialization());
    Ok(security_headers(origin.as_deref()))
}

/// The paths `schema/openapi.yaml` lists, without their leading `/`, for tests that check
/// every route.
#[cfg(test)]
pub(crate) fn contract_paths() -> Vec<&'static str> {
    let paths: Vec<&str> = include_str!("../../../schema/openapi.yaml")
        .lines()
        .filter_map(|l| l.strip_prefix("  /"))
        .filter_map(|l| l.strip_suffix(':'))
        .collect();
    assert!(paths.len() > 40, "read the contract's paths");
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_path_of_the_contract_stays_the_apis() {
        let paths = contract_paths();
        for path in paths {
            let concrete = format!("/{}", path.replace('{', "x").replace('}', ""));
            assert!(
                !is_app_request(&Method::GET, &concrete),
                "{concrete} would be served as the app"
            );
        }
        assert!(!is_app_request(&Method::GET, "/files/no/such/route"));
    }

    #[test]
    fn the_app_answers_everything_else_for_reading_only() {
        for path in [
            "/",
            "/index.html",
            "/assets/app-1234.js",
            "/settings",
            "/deviceslist",
        ] {
            assert!(is_app_request(&Method::GET, path), "{path}");
        }
        assert!(!is_app_request(&Method::POST, "/"));
    }

    #[test]
    fn the_policy_names_the_store_and_nothing_else_outside() {
        let [(_, csp), ..] = security_headers(Some("https://acct.r2.cloudflarestorage.com"));
        assert!(csp.contains("connect-src 'self' https://acct.r2.cloudflarestorage.com;"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
        let [(_, csp), ..] = security_headers(None);
        assert!(csp.contains("connect-src 'self';"));
    }
}
