//! `D1Sql`: the SQL port on Cloudflare D1. A D1 batch runs as one transaction.

use udc_core::web::MAX_EXACT;
use udc_core::{Row, Sql, SqlError, Stmt, Value};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

pub struct D1Sql(pub D1Database);

fn err(e: worker::Error) -> SqlError {
    SqlError(e.to_string())
}

/// An integer as the JavaScript number the Worker binds (D1's and an object's SQL take no
/// other), or an error if that number would not be exact: core takes no larger integer
/// (`udc_core::web::MAX_EXACT`), so one here is a defect to see, not a value to round.
pub(crate) fn js_number(n: i64) -> Result<f64, SqlError> {
    if (-MAX_EXACT..=MAX_EXACT).contains(&n) {
        Ok(n as f64)
    } else {
        Err(SqlError(format!(
            "{n} is beyond the integers a JavaScript number holds exactly"
        )))
    }
}

fn to_js(v: &Value) -> Result<JsValue, SqlError> {
    Ok(match v {
        Value::Null => JsValue::null(),
        Value::Integer(n) => JsValue::from_f64(js_number(*n)?),
        Value::Real(f) => JsValue::from_f64(*f),
        Value::Text(s) => JsValue::from_str(s),
    })
}

fn to_js_all(params: &[Value]) -> Result<Vec<JsValue>, SqlError> {
    params.iter().map(to_js).collect()
}

pub fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .unwrap_or_else(|| Value::Real(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Value::Text(s),
        serde_json::Value::Bool(b) => Value::Integer(i64::from(b)),
        other => Value::Text(other.to_string()),
    }
}

/// The rows each statement of a batch changed.
fn changes(results: &[D1Result]) -> Result<Vec<u64>, SqlError> {
    results
        .iter()
        .map(|r| Ok(r.meta().map_err(err)?.and_then(|m| m.changes).unwrap_or(0) as u64))
        .collect()
}

impl D1Sql {
    fn prepare(&self, stmt: &Stmt) -> Result<D1PreparedStatement, SqlError> {
        let params = to_js_all(&stmt.params)?;
        self.0.prepare(stmt.sql).bind(&params).map_err(err)
    }
}

impl Sql for D1Sql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        let rows: Vec<Vec<serde_json::Value>> = self.prepare(&stmt)?.raw().await.map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_iter().map(from_json).collect())
            .collect())
    }

    async fn query_many(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, SqlError> {
        // Each D1 call is a round trip; reads that do not depend on each other overlap.
        futures_util::future::try_join_all(stmts.into_iter().map(|s| self.query(s))).await
    }

    async fn batch_then_read(
        &self,
        stmts: Vec<Stmt>,
        read: Stmt,
        columns: &[&str],
    ) -> Result<(Vec<u64>, Vec<Row>), SqlError> {
        let prepared = stmts
            .iter()
            .chain(std::iter::once(&read))
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut results = self.0.batch(prepared).await.map_err(err)?;
        let read = results
            .pop()
            .ok_or_else(|| SqlError("D1 answered no result for the read".into()))?;
        let changes = changes(&results)?;
        let rows = read
            .results::<serde_json::Map<String, serde_json::Value>>()
            .map_err(err)?
            .into_iter()
            .map(|mut row| {
                columns
                    .iter()
                    .map(|c| from_json(row.remove(*c).unwrap_or(serde_json::Value::Null)))
                    .collect()
            })
            .collect();
        Ok((changes, rows))
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        let prepared = stmts
            .iter()
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        changes(&self.0.batch(prepared).await.map_err(err)?)
    }
}

/// Every row of `sql` with its columns by name: for copying rows whose columns the caller
/// does not list (an account's move into its object).
pub async fn objects(
    d1: &D1Sql,
    sql: &str,
    params: &[Value],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, SqlError> {
    let params = to_js_all(params)?;
    d1.0.prepare(sql)
        .bind(&params)
        .map_err(err)?
        .all()
        .await
        .map_err(err)?
        .results()
        .map_err(err)
}

/// Statements made at run time, in one batch (one transaction).
pub async fn batch_of(d1: &D1Sql, stmts: Vec<(String, Vec<Value>)>) -> Result<Vec<u64>, SqlError> {
    let prepared = stmts
        .iter()
        .map(|(sql, params)| {
            let params = to_js_all(params)?;
            d1.0.prepare(sql).bind(&params).map_err(err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    changes(&d1.0.batch(prepared).await.map_err(err)?)
}
