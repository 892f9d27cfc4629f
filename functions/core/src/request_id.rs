//! Every request's id, so what a user reports can be found in the logs: the caller's own
//! `X-Request-Id` when it is a sane token, else the platform's (Cloudflare's `cf-ray`), else a
//! new one. Each host puts it on every answer it gives — in the `X-Request-Id` header and as
//! `error.request_id` in every JSON error body — and on the log lines the request causes.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response};

use crate::ports::{OsRandom, Random};

pub const HEADER: &str = "x-request-id";

/// The longest id taken from a caller: a UUID (36) or a `cf-ray` fits; a log line stays short.
const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id of the request with these `headers`; `platform` is the host's own id for it.
    pub fn of(headers: &HeaderMap, platform: Option<&str>) -> RequestId {
        // Two ids are none (the Worker sees them joined by ", ", which no id may hold).
        let mut sent = headers.get_all(HEADER).iter();
        let caller = match (sent.next(), sent.next()) {
            (Some(one), None) => one.to_str().ok(),
            _ => None,
        };
        Self::pick(caller, platform)
    }

    /// The caller's id if sane, else the platform's if sane, else a new one.
    pub fn pick(caller: Option<&str>, platform: Option<&str>) -> RequestId {
        caller
            .filter(|v| is_sane(v))
            .or(platform.filter(|v| is_sane(v)))
            .map(|v| RequestId(v.to_owned()))
            .unwrap_or_else(RequestId::fresh)
    }

    /// A new id: 64 random bits, enough to tell one request from another in any log.
    pub fn fresh() -> RequestId {
        let mut bytes = [0u8; 8];
        // Without randomness the id is all zeros: still an answer, only less useful.
        let _ = OsRandom.fill(&mut bytes);
        RequestId(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id that can go into a header, a JSON string and a log line as it is: letters, digits and
/// `-_.:`, no spaces or quotes that could forge another log field.
fn is_sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `resp` with the id in its `X-Request-Id` header and, when it is a JSON error, in its body.
pub fn stamp(mut resp: Response<Vec<u8>>, id: &RequestId) -> Response<Vec<u8>> {
    if is_json_error(resp.status(), resp.headers()) {
        if let Some(body) = with_id(resp.body(), id) {
            *resp.body_mut() = body;
        }
    }
    stamp_header(resp.headers_mut(), id);
    resp
}

/// The id in an answer's `X-Request-Id` header.
pub fn stamp_header(headers: &mut HeaderMap, id: &RequestId) {
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        headers.insert(HEADER, value);
    }
}

/// Whether an answer is one of core's error bodies, which carry the id (hosts whose bodies are
/// streams read only these).
pub fn is_json_error(status: http::StatusCode, headers: &HeaderMap) -> bool {
    (status.is_client_error() || status.is_server_error())
        && headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"))
}

/// An error body `{"error":{...}}` with `request_id` added; None if it is not one.
fn with_id(body: &[u8], id: &RequestId) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get_mut("error")?
        .as_object_mut()?
        .insert("request_id".to_owned(), id.as_str().into());
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::web::error_response;

    fn headers(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(id).unwrap());
        h
    }

    #[test]
    fn a_sane_caller_id_is_kept_and_anything_else_replaced() {
        let uuid = "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a1b";
        assert_eq!(RequestId::of(&headers(uuid), None).as_str(), uuid);
        assert_eq!(
            RequestId::of(&headers("x"), Some("8f1c2d3e4f5a6b7c-LHR")).as_str(),
            "x"
        );
        for bad in ["", "a b", "a\"b", "x=1", &"a".repeat(65)] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(HEADER, v);
            }
            let id = RequestId::of(&h, None);
            assert_ne!(id.as_str(), bad);
            assert!(is_sane(id.as_str()), "{id}");
        }
        assert_eq!(
            RequestId::of(&HeaderMap::new(), Some("8f1c2d3e4f5a6b7c-LHR")).as_str(),
            "8f1c2d3e4f5a6b7c-LHR"
        );
        assert_ne!(RequestId::fresh(), RequestId::fresh());
        let mut two = headers("a");
        two.append(HEADER, HeaderValue::from_static("b"));
        let id = RequestId::of(&two, None);
        assert!(id.as_str() != "a" && id.as_str() != "b");
    }

    #[test]
    fn an_error_carries_the_id_in_its_body_and_every_answer_in_its_header() {
        let id = RequestId::of(&headers("req-1"), None);
        let err = stamp(error_response(&ApiError::not_found("device")), &id);
        assert_eq!(err.headers()[HEADER], "req-1");
        let body: serde_json::Value = serde_json::from_slice(err.body()).unwrap();
        assert_eq!(body["error"]["request_id"], "req-1");
        assert_eq!(body["error"]["code"], "not_found");

        let ok = stamp(Response::new(b"{\"error\":1}".to_vec()), &id);
        assert_eq!(ok.headers()[HEADER], "req-1");
        assert_eq!(ok.body(), b"{\"error\":1}");
    }
}
