//! The HTTP edge of core: reading JSON bodies strictly and writing JSON responses and errors.

use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// Request bodies are small JSON documents; anything bigger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a handler answers: a status and an optional JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<serde_json::Value>,
    /// Something went wrong after the change was made (an event not published): the answer
    /// stands, the host logs this.
    pub warning: Option<String>,
}

impl Reply {
    pub fn json(status: StatusCode, body: impl Serialize) -> ApiResult<Reply> {
        let body = serde_json::to_value(body).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Reply {
            status,
            body: Some(body),
            warning: None,
        })
    }

    pub fn ok(body: impl Serialize) -> ApiResult<Reply> {
        Self::json(StatusCode::OK, body)
    }

    pub fn warn(mut self, warning: Option<String>) -> Reply {
        self.warning = warning;
        self
    }

    pub fn no_content() -> ApiResult<Reply> {
        Ok(Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            warning: None,
        })
    }
}

/// One raw (not percent-decoded) query parameter; core's parameters are plain tokens.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The largest integer the API takes: JSON clients (JavaScript) read no larger one exactly, and
/// the Worker binds SQL values as JavaScript numbers. Within SQLite's signed 64 bits.
pub const MAX_EXACT: i64 = (1 << 53) - 1;

/// The integer query parameter `name`, `min` to `MAX_EXACT`, if given.
pub fn int_param(query: Option<&str>, name: &str, min: i64) -> ApiResult<Option<i64>> {
    query_param(query, name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (min..=MAX_EXACT).contains(n))
                .ok_or_else(|| ApiError::invalid(format!("{name}: must be {min} to {MAX_EXACT}")))
        })
        .transpose()
}

/// The `limit` query parameter: `default` when absent, else 1 to `max`.
pub fn limit_param(query: Option<&str>, default: i64, max: i64) -> ApiResult<i64> {
    match query_param(query, "limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("limit: must be 1 to {max}"))),
    }
}

/// Parses a JSON body after checking its type and size.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    json_body_max(headers, body, MAX_BODY_BYTES)
}

/// `json_body` for the few endpoints that carry more than a small document (sealed clipboard items).
pub fn json_body_max<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    max: usize,
) -> ApiResult<T> {
    if body.len() > max {
        return Err(ApiError::too_large(format!(
            "request body exceeds {max} bytes"
        )));
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    // Syntax first, shape second, so each failure gets its own code.
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("body is not valid JSON: {e}"))
    })?;
    whole_numbers_as_integers(&mut value);
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("body does not match the expected shape: {e}")))
}

/// JSON Schema counts a number with no fraction (`20.0`) as an integer, and so may a client
/// generated from the contract; serde would refuse it where an integer is wanted.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // `as` saturates, and u64::MAX rounds up to 2^64 as a float: below 2^64, a
                // value that survives the round trip is exact.
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) && (f as u64) as f64 == f {
                    *value = Value::from(f as u64);
                } else if (f as i64) as f64 == f {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

pub fn render(result: ApiResult<Reply>) -> Response<Vec<u8>> {
    match result {
        Ok(reply) => {
            let body = reply
                .body
                .map(|b| serde_json::to_vec(&b).unwrap_or_default())
                .unwrap_or_default();
            let mut resp = respond(reply.status, body, reply.status != StatusCode::NO_CONTENT);
            if let Some(w) = reply.warning {
                resp.extensions_mut().insert(InternalDetail(w));
            }
            resp
        }
        Err(err) => error_response(&err),
    }
}

/// The answer to a path the API does not list (and the web app does not take).
pub fn no_route(path: &str) -> Response<Vec<u8>> {
    error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {path}"),
    ))
}

/// The one error shape: `{"error":{"code","message"}}` (each host adds `request_id` on its way
/// out: `request_id::stamp`).
pub fn error_response(err: &ApiError) -> Response<Vec<u8>> {
    let body = serde_json::json!({"error": {"code": err.code, "message": err.message}});
    let mut resp = respond(
        err.status,
        serde_json::to_vec(&body).unwrap_or_default(),
        true,
    );
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(detail) = &err.internal {
        resp.extensions_mut().insert(InternalDetail(detail.clone()));
    }
    resp.extensions_mut()
        .insert(crate::access_log::ErrorCode(err.code));
    resp
}

/// Attached to 500 responses so the host can log what core may not tell the client.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

fn respond(status: StatusCode, body: Vec<u8>, json: bool) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if json {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    // API answers are per-user and never cacheable; the rest is standard hardening.
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole number written with a fraction is the integer, exactly, up to 2^53 (the fuzzer
    /// sent `2144271400067369.0`, which a fast float parse read as 2144271400067368.8 and the
    /// route refused as not an integer).
    #[test]
    fn whole_numbers_written_as_floats_are_read_exactly() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let body = br#"{"size": 2144271400067369.0, "part": 9007199254740991.0, "n": -3.0}"#;
        let v: std::collections::BTreeMap<String, i64> = json_body(&headers, body).unwrap();
        assert_eq!(v["size"], 2_144_271_400_067_369);
        assert_eq!(v["part"], 9_007_199_254_740_991);
        assert_eq!(v["n"], -3);
    }
}
