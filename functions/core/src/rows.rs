//! Reading positional rows the same way whatever executor produced them.

use chrono::{DateTime, SecondsFormat};

use crate::error::{ApiError, ApiResult};
use crate::ports::{Row, Value};

fn cell(row: &Row, i: usize) -> ApiResult<&Value> {
    row.get(i)
        .ok_or_else(|| ApiError::internal(format!("row has no column {i}")))
}

pub fn text(row: &Row, i: usize) -> ApiResult<String> {
    opt_text(row, i)?.ok_or_else(|| ApiError::internal(format!("column {i} is NULL")))
}

pub fn opt_text(row: &Row, i: usize) -> ApiResult<Option<String>> {
    match cell(row, i)? {
        Value::Null => Ok(None),
        Value::Text(s) => Ok(Some(s.clone())),
        other => Err(ApiError::internal(format!(
            "column {i}: expected text, got {other:?}"
        ))),
    }
}

pub fn int(row: &Row, i: usize) -> ApiResult<i64> {
    opt_int(row, i)?.ok_or_else(|| ApiError::internal(format!("column {i} is NULL")))
}

pub fn opt_int(row: &Row, i: usize) -> ApiResult<Option<i64>> {
    match cell(row, i)? {
        Value::Null => Ok(None),
        Value::Integer(n) => Ok(Some(*n)),
        // D1 hands numbers over as JavaScript doubles.
        Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(*f as i64)),
        other => Err(ApiError::internal(format!(
            "column {i}: expected integer, got {other:?}"
        ))),
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}
