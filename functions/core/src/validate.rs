//! Input checks shared by the endpoints. Each failure names the field.

use crate::error::{ApiError, ApiResult};

pub fn email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_lowercase();
    let valid = (3..=254).contains(&email.len())
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
