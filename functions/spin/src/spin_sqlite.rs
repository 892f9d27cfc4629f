//! `SpinSql`: the SQL port on Spin's SQLite interface. Spin has no batch call, so a batch is
//! BEGIN … COMMIT on the request's connection, rolled back on the first failure.

use std::rc::Rc;

use spin_sdk::sqlite::Connection;
use udc_core::{Row, Sql, SqlError, Stmt, Value};

/// The request's one connection, shared with the hub port (one open per request, not two).
pub struct SpinSql(pub Rc<Connection>);

fn err(e: spin_sdk::sqlite::Error) -> SqlError {
    SqlError(format!("{e:?}"))
}

impl SpinSql {
    pub fn open() -> Result<SpinSql, SqlError> {
        Connection::open_default()
            .map(|c| SpinSql(Rc::new(c)))
            .map_err(err)
    }

    fn run(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, SqlError> {
        crate::spin_exec::rows(&self.0, sql, params)
    }

    fn batch_in_tx(&self, stmts: &[Stmt]) -> Result<Vec<u64>, SqlError> {
        let mut changes = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            self.run(stmt.sql, &stmt.params)?;
            let n = self.run("SELECT changes()", &[])?;
            changes.push(match n.first().and_then(|r| r.first()) {
                Some(Value::Integer(n)) => *n as u64,
                _ => 0,
            });
        }
        Ok(changes)
    }
}

impl Sql for SpinSql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        self.run(stmt.sql, &stmt.params)
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        self.run("BEGIN IMMEDIATE", &[])?;
        // Whatever fails (a statement, or the COMMIT itself), the connection is left with no
        // transaction open: the hub port shares it.
        let done = self
            .batch_in_tx(&stmts)
            .and_then(|changes| self.run("COMMIT", &[]).map(|_| changes));
        done.inspect_err(|_| {
            let _ = self.run("ROLLBACK", &[]);
        })
    }
}
