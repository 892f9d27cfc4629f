//! Input checks shared by the endpoints. Each failure names the field.

use crate::error::{ApiError, ApiResult};

pub fn email(raw: &str) -> ApiResult<String> {
    // Counted before lower-casing, which can lengthen a string ('İ' is two characters lower).
    let length = raw.trim().chars().count();
    let email = raw.trim().to_lowercase();
    let valid = (3..=254).contains(&length)
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid(
            "email: must be an address like name@example.com",
        ))
    }
}

/// A human-readable name: trimmed, 1..=max characters, no control characters.
pub fn label(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    let value = raw.trim();
    let len = value.chars().count();
    if len == 0 || len > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field}: must be 1 to {max} characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Like `label`, but may be empty.
pub fn optional_label(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    if raw.trim().is_empty() {
        Ok(String::new())
    } else {
        label(field, raw, max)
    }
}

/// Ids are UUIDs; anything else cannot name a resource, so it is simply not found.
pub fn id(raw: &str, what: &str) -> ApiResult<String> {
    uuid::Uuid::try_parse(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::not_found(what))
}

/// Ids given in a body: malformed is a bad field, not a missing resource.
pub fn body_id(field: &str, raw: &str) -> ApiResult<String> {
    uuid::Uuid::try_parse(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::invalid(format!("{field}: must be a UUID")))
}

/// Ciphertext a device sealed (base64): the server only checks that it is one and how big.
/// Returns the decoded length.
pub fn sealed(field: &str, raw: &str, min: usize, max: usize) -> ApiResult<usize> {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(raw) {
        Ok(bytes) if (min..=max).contains(&bytes.len()) => Ok(bytes.len()),
        // Too short cannot be sealed data at all: a bad field, not a size limit.
        Ok(bytes) if bytes.len() < min => Err(ApiError::invalid(format!(
            "{field}: must be {min} to {max} bytes"
        ))),
        Ok(_) => Err(ApiError::too_large(format!(
            "{field}: must be {min} to {max} bytes"
        ))),
        Err(_) => Err(ApiError::invalid(format!("{field}: must be base64"))),
    }
}

/// A name a client chooses for a namespace, key or handoff: 1..=max of `a-z 0-9 . _ -`.
pub fn token(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    let ok = (1..=max).contains(&raw.len())
        && raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{field}: must be 1 to {max} characters of a-z, 0-9, '.', '_' and '-'"
        )))
    }
}
