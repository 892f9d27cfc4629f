//! `ObjectSql`: the SQL port on an account's Durable Object storage (its own SQLite, in the
//! same process: every call is synchronous). Core's batches run in `transactionSync`, the one
//! way Durable Object SQL takes a transaction (it refuses BEGIN and SAVEPOINT): a statement that
//! fails rolls back the ones before it. The hub's store (`udc_hub::SyncSql`) uses the same
//! executor, so a change and its event are one transaction.

use std::cell::RefCell;
use std::rc::Rc;

use udc_core::{Row, Sql, SqlError, Stmt, Value};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::{SqlStorage, SqlStorageValue};

use crate::d1::js_number;

type Changes = Result<Vec<u64>, SqlError>;

#[derive(Clone)]
pub struct ObjectSql {
    sql: SqlStorage,
    /// The object's `DurableObjectStorage`, whose `transactionSync` workers-rs does not bind.
    storage: JsValue,
}

impl ObjectSql {
    pub fn new(state: &worker::State) -> ObjectSql {
        ObjectSql {
            sql: state.storage().sql(),
            // workerd always has it; without, a batch says so (`transaction`).
            storage: state
                .as_raw()
                .storage()
                .map(Into::into)
                .unwrap_or(JsValue::UNDEFINED),
        }
    }

    fn exec(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        let bindings = params
            .into_iter()
            .map(|v| {
                Ok(match v {
                    Value::Null => SqlStorageValue::Null,
                    // As the number workers-rs would bind, without its check and warning on
                    // every call (a console line each: it cost a read route ~1 ms).
                    Value::Integer(n) => SqlStorageValue::Float(js_number(n)?),
                    Value::Real(f) => SqlStorageValue::Float(f),
                    Value::Text(s) => SqlStorageValue::String(s),
                })
            })
            .collect::<Result<Vec<_>, SqlError>>()?;
        let cursor = self.sql.exec(sql, bindings).map_err(SqlError::new)?;
        cursor
            .raw()
            .map(|row| {
                let row = row.map_err(SqlError::new)?;
                Ok(row
                    .into_iter()
                    .map(|v| match v {
                        SqlStorageValue::Integer(n) => Value::Integer(n),
                        SqlStorageValue::Float(f) => Value::Real(f),
                        SqlStorageValue::Boolean(b) => Value::Integer(i64::from(b)),
                        SqlStorageValue::String(s) => Value::Text(s),
                        SqlStorageValue::Null | SqlStorageValue::Blob(_) => Value::Null,
                    })
                    .collect())
            })
            .collect()
    }

    /// Runs `stmts` in one transaction: each statement's count of changed rows, or the first
    /// error with nothing kept.
    pub fn transaction_of(&self, stmts: Vec<(String, Vec<Value>)>) -> Result<Vec<u64>, SqlError> {
        self.transaction(stmts)
    }

    fn transaction<S: AsRef<str> + 'static>(
        &self,
        stmts: Vec<(S, Vec<Value>)>,
    ) -> Result<Vec<u64>, SqlError> {
        // Where the closure leaves the batch's counts or its error (it runs inside JavaScript).
        let outcome: Rc<RefCell<Option<Changes>>> = Rc::default();
        let run = {
            let this = self.clone();
            let outcome = outcome.clone();
            Closure::once(move || -> Result<JsValue, JsValue> {
                let mut changes = Vec::with_capacity(stmts.len());
                for (text, params) in stmts {
                    let counted = this.exec(text.as_ref(), params).and_then(|_| {
                        // `changes()` is the count of the last INSERT, UPDATE or DELETE, which
                        // a SELECT of it does not move.
                        let rows = this.exec("SELECT changes()", Vec::new())?;
                        match rows.first().and_then(|r| r.first()) {
                            Some(Value::Integer(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
                            _ => Err(SqlError("changes() answered no number".into())),
                        }
                    });
                    match counted {
                        Ok(n) => changes.push(n),
                        Err(e) => {
                            *outcome.borrow_mut() = Some(Err(e));
                            // Thrown: transactionSync rolls back what ran before.
                            return Err(JsValue::from_str("udc: batch failed"));
                        }
                    }
                }
                *outcome.borrow_mut() = Some(Ok(changes));
                Ok(JsValue::UNDEFINED)
            })
        };
        let transaction_sync = js_sys::Reflect::get(&self.storage, &"transactionSync".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| SqlError("this runtime has no transactionSync".into()))?;
        let called = transaction_sync.call1(&self.storage, run.as_ref().unchecked_ref());
        let outcome = outcome.borrow_mut().take();
        match (called, outcome) {
            (_, Some(result)) => result,
            (Err(e), None) => Err(SqlError(format!("transactionSync: {e:?}"))),
            (Ok(_), None) => Err(SqlError("transactionSync did not run the batch".into())),
        }
    }
}

impl Sql for ObjectSql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        self.exec(stmt.sql, stmt.params)
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        self.transaction(stmts.into_iter().map(|s| (s.sql, s.params)).collect())
    }
}

impl udc_hub::SyncSql for ObjectSql {
    fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SqlError> {
        self.exec(sql, params)
    }
}
