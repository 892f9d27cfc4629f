//! One line per request, the same on every host: what an operator searches, counts and alerts
//! on. The route is a template (`/devices/{id}`), never the path with its ids or the query with
//! its tokens; no header, body, token or key is ever part of a line.

use http::{Method, Response};
use serde::Serialize;

use crate::request_id::RequestId;

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
    pub method: &'a str,
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
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
            method: method.as_str(),
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

/// The words of the API's paths; any other segment of a known route is one of its parameters.
const LITERALS: [&str; 64] = [
    "health",
    "ready",
    "auth",
    "prelogin",
    "register",
    "login",
    "token",
    "refresh",
    "logout",
    "recovery",
    "reset",
    "webauthn",
    "options",
    "account",
    "passkeys",
    "key",
    "password",
    "activity",
    "sessions",
    "devices",
    "trust",
    "events",
    "realtime",
    "ticket",
    "files",
    "upload",
    "initiate",
    "part",
    "complete",
    "shared",
    "metadata",
    "parts",
    "download",
    "confirm-download",
    "share",
    "restore",
    "approval",
    "request",
    "pending",
    "biometric",
    "respond",
    "sync",
    "clipboard",
    "latest",
    "history",
    "preferences",
    "items",
    "settings",
    "policies",
    "conflicts",
    "resolve",
    "resolutions",
    "batch",
    "handoff",
    "take",
    "remote",
    "session",
    "approve",
    "deny",
    "heartbeat",
    "input",
    "ice-servers",
    "test",
    "purge-files",
];

/// The route a path took, as a template: `/devices/{id}/trust`; `app` for the web app's pages
/// and files, `unknown` for a path no route has (its text may be anything a caller sent).
pub fn route_template(method: &Method, path: &str) -> String {
    if crate::Route::find(path).is_none() {
        return if crate::app_shell::is_app_request(method, path) {
            "app".to_owned()
        } else {
            "unknown".to_owned()
        };
    }
    let mut template = String::new();
    for segment in path.trim_end_matches('/').split('/').skip(1) {
        template.push('/');
        template.push_str(if LITERALS.contains(&segment) {
            segment
        } else {
            "{id}"
        });
    }
    template
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
        assert_eq!(route_template(&Method::GET, "/assets/index.js"), "app");
    }
}
