//! The web app's files as built into this binary, and the answer to a GET for one: a file by
//! its path, else the app's page (the app routes on the client), gzip when the browser takes it.

use http::{header, HeaderValue, Response, StatusCode};

pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    pub gzip: &'static [u8],
}

/// Every file of `web/dist` at build time, sorted by path.
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

const INDEX: &str = "/index.html";

/// Whether this binary was built with the web app (`scripts/build-web.sh` before `cargo build`).
pub fn built() -> bool {
    find(INDEX).is_some()
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.path.cmp(path))
        .ok()
        .and_then(|i| ASSETS.get(i))
}

/// The answer to a GET (a HEAD: no body), with the deployment's security headers and
/// its cache rule (core's `app_shell`). A missing file under `/assets/` is a 404 (a stale page
/// asking for an old build's script must not get HTML back); any other path gets the app's
/// page. Without a built app, every path says so in the API's error shape.
pub fn respond<B>(
    req: &http::Request<B>,
    security: &[(&'static str, String)],
    cache_control: &'static str,
) -> Response<Vec<u8>> {
    let path = match req.uri().path() {
        "/" => INDEX,
        path => path,
    };
    let head = req.method() == http::Method::HEAD;
    let accept_encoding = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let asset = match find(path) {
        Some(asset) => Some(asset),
        None if path.starts_with("/assets/") => None,
        None => find(INDEX),
    };
    let Some(asset) = asset else {
        return not_found(path.starts_with("/assets/"));
    };
    let gzip = accept_encoding.is_some_and(accepts_gzip);
    let body = if gzip { asset.gzip } else { asset.raw };
    let mut resp = Response::new(if head { Vec::new() } else { body.to_vec() });
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if head {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    for (name, value) in security {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    resp
}

fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

fn not_found(asset: bool) -> Response<Vec<u8>> {
    let body: &[u8] = if asset {
        br#"{"error":{"code":"not_found","message":"no such asset in this build of the web app"}}"#
    } else {
        br#"{"error":{"code":"web_app_not_built","message":"this server was built without the web app: run scripts/build-web.sh, then build it again"}}"#
    };
    let mut resp = Response::new(body.to_vec());
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_to_who_takes_it() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip("identity"));
    }
}
