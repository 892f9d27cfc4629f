//! One line per request, the same on every host: what an operator searches, counts and alerts
//! on. The route is a template (`/devices/{id}`), never the path with its ids or the query with
//! its tokens; no header, body, token or key is ever part of a line.

use http::{Method, Response};
use serde::Serialize;

use crate::request_id::RequestId;
use crate::web::InternalDetail;

/// Who made a request, once its access token was checked: core puts it on the answer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub device_id: Option<String>,
}

/// The code of the error an answer carries: core puts it on the answer.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Serialize, Debug)]
pub struct RequestLine<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub method: &'static str,
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl<'a> RequestLine<'a> {
    /// The line for `resp`, the answer to `method path` that took `duration_ms`, at `now_ms`.
    #[allow(clippy::too_many_arguments)] // a line's own fields, each said once
    pub fn new<B>(
        now_ms: i64,
        id: &'a RequestId,
        method: &'a Method,
        path: &str,
        resp: &'a Response<B>,
        duration_ms: f64,
        bytes_in: u64,
        bytes_out: u64,
    ) -> RequestLine<'a> {
        let caller = resp.extensions().get::<Caller>();
        RequestLine {
            time: crate::rows::timestamp(now_ms),
            request_id: id.as_str(),
            method: method_name(method),
            route: route_template(method, path),
            status: resp.status().as_u16(),
            duration_ms: (duration_ms * 1000.0).round() / 1000.0,
            account_id: caller.map(|c| c.account_id.as_str()),
            device_id: caller.and_then(|c| c.device_id.as_deref()),
            error: resp.extensions().get::<ErrorCode>().map(|c| c.0),
            bytes_in,
            bytes_out,
        }
    }

    /// The line as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The error line, as one line of JSON, for an answer that hid an internal error's detail from
/// the client (`InternalDetail`), if it did: for hosts that write their log themselves (Spin's
/// components).
pub fn internal_error_line<B>(now_ms: i64, id: &RequestId, resp: &Response<B>) -> Option<String> {
    let InternalDetail(detail) = resp.extensions().get::<InternalDetail>()?;
    Some(
        serde_json::json!({
            "time": crate::rows::timestamp(now_ms),
            "level": "error",
            "request_id": id.as_str(),
            "message": "internal error",
            "detail": detail,
        })
        .to_string(),
    )
}

/// The route a path took, as a template: `/devices/{id}/trust`; `app` for the web app's pages
/// and files, `unknown` for a path no route has (its text may be anything a caller sent). A
/// segment is a parameter when any other value there leads to the same route, so a route has
/// one template whatever its parameters hold.
pub fn route_template(method: &Method, path: &str) -> String {
    if crate::Route::find(path).is_none() {
        return if crate::app_shell::is_app_request(method, path) {
            "app".to_owned()
        } else {
            "unknown".to_owned()
        };
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let mut template = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let mut other = segments.clone();
        // No word of the API's paths has a space.
        other[i] = "a b";
        let probe = format!("/{}", other.join("/"));
        let same = same_route(path, &probe);
        template.push('/');
        template.push_str(if same { "{id}" } else { segment });
    }
    template
}

/// Whether two paths take the same route (whatever its parameters).
fn same_route(a: &str, b: &str) -> bool {
    match (crate::Route::find(a), crate::Route::find(b)) {
        (Some(a), Some(b)) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
        _ => false,
    }
}

/// The method as logged and counted: one of HTTP's own, or `OTHER` (a caller may send any
/// token there, of any length).
pub fn method_name(method: &Method) -> &'static str {
    const KNOWN: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("OTHER", |m| m.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path of the contract, its parameters filled in, logs as its own template.
    #[test]
    fn every_route_of_the_contract_logs_as_its_template() {
        for path in crate::app_shell::contract_paths() {
            let template: String = format!("/{path}")
                .split('/')
                .map(|s| if s.starts_with('{') { "{id}" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let filled = template.replace("{id}", "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a1b");
            assert_eq!(route_template(&Method::POST, &filled), template);
        }
        assert_eq!(route_template(&Method::POST, "/no/such/thing"), "unknown");
        // Parameters that happen to be words of other paths are still parameters.
        assert_eq!(
            route_template(&Method::DELETE, "/devices/trust/trust/files"),
            "/devices/{id}/trust/{id}"
        );
        assert_eq!(
            route_template(&Method::POST, "/devices/trust/trust"),
            "/devices/{id}/trust"
        );
        assert_eq!(method_name(&Method::from_bytes(b"FOO").unwrap()), "OTHER");
        assert_eq!(route_template(&Method::GET, "/assets/index.js"), "app");
    }
}
