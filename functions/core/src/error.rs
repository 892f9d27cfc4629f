//! Errors are data: every failure becomes `{"error":{"code","message"}}` with the right status;
//! nothing panics out to a host (docs/ARCHITECTURE.md, "Errors are data, and the contract
//! states every rule").

use http::StatusCode;

use crate::ports::SqlError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
    /// Detail for the host's log, never sent to the client.
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            internal: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Input that breaks a rule `schema/openapi.yaml` states (form, range, pattern): 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad_request("invalid_field", message)
    }

    /// Well-formed input the contract's schema cannot judge: it names the caller itself, or
    /// disagrees with another field or with what the server holds (a part the file does not
    /// have). 422, so a client can tell it from a form error its schema would have caught.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }

    /// A size over a limit (a deployment's, or the contract's where JSON Schema cannot count it).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError {
            internal: Some(detail.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; it has been logged",
            )
        }
    }

    /// Out of space: the change was not made (SQLite rolls the batch back), reads still work.
    /// Its own status and code, so a client can tell it from a bug and try again later.
    pub fn storage_full(detail: impl Into<String>) -> Self {
        ApiError {
            internal: Some(detail.into()),
            ..ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the server's storage is full: nothing was changed; try again later",
            )
        }
    }

    /// A storage failure: out of space, or an internal error.
    fn from_storage(detail: String) -> Self {
        if detail.contains(SQLITE_FULL) {
            ApiError::storage_full(detail)
        } else {
            ApiError::internal(detail)
        }
    }
}

/// SQLite's words for SQLITE_FULL, as every host's SQLite reports them (rusqlite, Spin, D1).
const SQLITE_FULL: &str = "database or disk is full";

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        ApiError::from_storage(e.to_string())
    }
}

impl From<crate::ports::HubError> for ApiError {
    fn from(e: crate::ports::HubError) -> Self {
        // udc-server's hub keeps its log in SQLite too.
        ApiError::from_storage(e.to_string())
    }
}

impl From<crate::ports::HttpError> for ApiError {
    fn from(e: crate::ports::HttpError) -> Self {
        ApiError {
            // The detail is logged: a client's error text may name the presigned URL it sent,
            // whose query is a signature good for anyone until it expires.
            internal: Some(without_queries(&e.to_string())),
            ..Self::new(
                StatusCode::BAD_GATEWAY,
                "storage_unavailable",
                "the object store did not answer; try again",
            )
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `text` with the query of every URL in it cut (`?…` up to a space, quote or bracket).
fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for c in text.chars() {
        if c == '?' {
            in_query = true;
            out.push_str("?…");
        } else if in_query && (c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ']')) {
            in_query = false;
        }
        if !in_query {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_logs_no_signed_query() {
        let failed = crate::ports::HttpError(
            "error sending request for url (http://127.0.0.1:9/udc-files/k?X-Amz-Credential=a%2Fb&X-Amz-Signature=0f3c) (connection refused)".into(),
        );
        let detail = ApiError::from(failed).internal.unwrap();
        assert_eq!(
            detail,
            "outbound http: error sending request for url (http://127.0.0.1:9/udc-files/k?…) (connection refused)"
        );
    }
}
