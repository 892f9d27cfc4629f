//! `SqliteSql`: the SQL port on a local SQLite file (rusqlite).

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};
use udc_core::{Row, Sql, SqlError, Stmt, Value};

pub struct SqliteSql {
    // One connection: SQLite serialises writers anyway, and a self-hosted udc is small.
    conn: Mutex<Connection>,
}

fn err(e: impl std::fmt::Display) -> SqlError {
    SqlError(e.to_string())
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(n) => SqlValue::Integer(*n),
        Value::Real(f) => SqlValue::Real(*f),
        Value::Text(s) => SqlValue::Text(s.clone()),
    }
}

fn from_sql(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(n) => Value::Integer(n),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        // The schema has no BLOB columns; should one appear, read it as hex text.
        SqlValue::Blob(b) => Value::Text(hex::encode(b)),
    }
}

impl SqliteSql {
    pub fn open(path: &Path) -> Result<SqliteSql, SqlError> {
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
             PRAGMA synchronous = NORMAL;",
        )
        .map_err(err)?;
        Ok(SqliteSql {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        // Only rusqlite runs under this lock; a panic elsewhere leaves the connection usable.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn)
    }
}

impl Sql for SqliteSql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        self.with(|conn| {
            let mut prepared = conn.prepare_cached(stmt.sql).map_err(err)?;
            let width = prepared.column_count();
            let mut rows = prepared
                .query(params_from_iter(stmt.params.iter().map(to_sql)))
                .map_err(err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(err)? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(from_sql(row.get::<_, SqlValue>(i).map_err(err)?));
                }
                out.push(values);
            }
            Ok(out)
        })
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(err)?;
            let mut changes = Vec::with_capacity(stmts.len());
            for stmt in &stmts {
                let n = tx
                    .prepare_cached(stmt.sql)
                    .and_then(|mut p| p.execute(params_from_iter(stmt.params.iter().map(to_sql))))
                    .map_err(err)?;
                changes.push(n as u64);
            }
            tx.commit().map_err(err)?;
            Ok(changes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (SqliteSql, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "udc-sqlite-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite3");
        let _ = std::fs::remove_file(&path);
        (SqliteSql::open(&path).unwrap(), dir)
    }

    #[test]
    fn a_batch_that_fails_half_way_changes_nothing() {
        let (sql, dir) = temp_db();
        pollster::block_on(async {
            sql.batch(vec![Stmt::new(
                "CREATE TABLE t (k TEXT PRIMARY KEY)",
                vec![],
            )])
            .await
            .unwrap();
            let failed = sql
                .batch(vec![
                    Stmt::new("INSERT INTO t (k) VALUES (?)", vec!["a".into()]),
                    Stmt::new("INSERT INTO t (k) VALUES (?)", vec!["a".into()]),
                ])
                .await;
            assert!(failed.is_err());
            let rows = sql
                .query(Stmt::new("SELECT count(*) FROM t", vec![]))
                .await
                .unwrap();
            assert_eq!(rows, vec![vec![Value::Integer(0)]]);
            let changes = sql
                .batch(vec![
                    Stmt::new("INSERT INTO t (k) VALUES (?)", vec!["a".into()]),
                    Stmt::new(
                        "INSERT INTO t (k) VALUES (?) ON CONFLICT DO NOTHING",
                        vec!["a".into()],
                    ),
                ])
                .await
                .unwrap();
            assert_eq!(changes, vec![1, 0]);
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
