//! udc-sql: what core's SQL port and the hub's store have in common — a SQLite value, a
//! statement with its parameters, positional rows, the error — and the rusqlite executor
//! (udc-server's SQL port and hub, the hub's tests), behind the `rusqlite` feature. The other
//! platforms' executors live in the one crate that uses them: Spin's in `functions/spin`
//! (its SQL port and hub share it), D1's in the Worker, Durable Object storage's in the hub.

use std::fmt;

#[cfg(feature = "rusqlite")]
pub mod rusqlite;

/// A SQLite value, the common ground of D1, Durable Object storage, Spin SQLite and rusqlite.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One statement with its positional (`?`) parameters.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: &'static str,
    pub params: Vec<Value>,
}

impl Stmt {
    pub fn new(sql: &'static str, params: Vec<Value>) -> Self {
        Stmt { sql, params }
    }
}

/// Rows of a query, positional: every SELECT names its columns.
pub type Row = Vec<Value>;

#[derive(Debug, Clone, PartialEq)]
pub struct SqlError(pub String);

impl SqlError {
    /// Wraps any driver's error.
    pub fn new(e: impl fmt::Display) -> SqlError {
        SqlError(e.to_string())
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sql: {}", self.0)
    }
}
