//! The executor on Spin's SQLite interface: the Spin component's SQL port and hub, which share
//! the request's one connection.

use spin_sdk::sqlite::{Connection, Value as Native};

use udc_core::{Row, SqlError, Value};

fn to_native(v: &Value) -> Native {
    match v {
        Value::Null => Native::Null,
        Value::Integer(n) => Native::Integer(*n),
        Value::Real(f) => Native::Real(*f),
        Value::Text(s) => Native::Text(s.clone()),
    }
}

fn from_native(v: &Native) -> Value {
    match v {
        Native::Null => Value::Null,
        Native::Integer(n) => Value::Integer(*n),
        Native::Real(f) => Value::Real(*f),
        Native::Text(s) => Value::Text(s.clone()),
        // The schema has no BLOB columns; should one appear, read it as hex text.
        Native::Blob(b) => Value::Text(hex::encode(b)),
    }
}

/// Runs one statement and returns its rows.
pub fn rows(conn: &Connection, sql: &str, params: &[Value]) -> Result<Vec<Row>, SqlError> {
    let params: Vec<Native> = params.iter().map(to_native).collect();
    let result = conn
        .execute(sql, &params)
        .map_err(|e| SqlError(format!("{e:?}")))?;
    Ok(result
        .rows
        .iter()
        .map(|r| r.values.iter().map(from_native).collect())
        .collect())
}
