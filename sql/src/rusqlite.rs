//! The executor on rusqlite: udc-server's SQL port and hub, and the tests that run either on
//! a real SQLite file.

use rusqlite::types::Value as Native;
use rusqlite::{params_from_iter, Connection};

use crate::{Row, SqlError, Value};

fn to_native(v: &Value) -> Native {
    match v {
        Value::Null => Native::Null,
        Value::Integer(n) => Native::Integer(*n),
        Value::Real(f) => Native::Real(*f),
        Value::Text(s) => Native::Text(s.clone()),
    }
}

fn from_native(v: Native) -> Value {
    match v {
        Native::Null => Value::Null,
        Native::Integer(n) => Value::Integer(n),
        Native::Real(f) => Value::Real(f),
        Native::Text(s) => Value::Text(s),
        // The schema has no BLOB columns; should one appear, read it as hex text.
        Native::Blob(b) => Value::Text(hex::encode(b)),
    }
}

/// Runs one statement (prepared once per connection) and returns its rows.
pub fn rows(conn: &Connection, sql: &str, params: &[Value]) -> Result<Vec<Row>, SqlError> {
    let mut prepared = conn.prepare_cached(sql).map_err(SqlError::new)?;
    let width = prepared.column_count();
    let mut rows = prepared
        .query(params_from_iter(params.iter().map(to_native)))
        .map_err(SqlError::new)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(SqlError::new)? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(from_native(row.get::<_, Native>(i).map_err(SqlError::new)?));
        }
        out.push(values);
    }
    Ok(out)
}

/// Runs one statement that returns no rows; how many rows it changed.
pub fn execute(conn: &Connection, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
    conn.prepare_cached(sql)
        .and_then(|mut p| p.execute(params_from_iter(params.iter().map(to_native))))
        .map(|n| n as u64)
        .map_err(SqlError::new)
}

/// Whether a statement only reads (SQLite says, from its compiled form).
pub fn reads_only(conn: &Connection, sql: &str) -> Result<bool, SqlError> {
    Ok(conn.prepare_cached(sql).map_err(SqlError::new)?.readonly())
}
