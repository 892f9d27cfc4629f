//! `SqliteSql`: the SQL port on a local SQLite file (rusqlite).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use udc_core::{Row, Sql, SqlError, Stmt};
use udc_sql::rusqlite as rusqlite_exec;

use crate::metrics::METRICS;

pub struct SqliteSql {
    /// Every change goes through this one connection: SQLite takes one writer at a time anyway.
    writer: Mutex<Connection>,
    /// Reads run beside it (WAL lets readers work while the writer writes), on whichever of
    /// these is free: with one connection for everything, requests queued on its lock.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

const READERS: usize = 4;

fn err(e: impl std::fmt::Display) -> SqlError {
    SqlError(e.to_string())
}

impl SqliteSql {
    pub fn open(path: &Path) -> Result<SqliteSql, SqlError> {
        let writer = Connection::open(path).map_err(err)?;
        // Synced at every commit (FULL): changes carry their events, and a device may hold an
        // event's number before a power cut; the log must never hand that number out again.
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                 PRAGMA synchronous = FULL;",
            )
            .map_err(err)?;
        // Opened after the writer, which has made the file and its WAL.
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.execute_batch("PRAGMA busy_timeout = 5000;")?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, rusqlite::Error>>()
            .map_err(err)?;
        Ok(SqliteSql {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        f(&mut lock(&self.writer))
    }

    /// A free reader if there is one, else the next in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Ok(conn) = self.readers[(start + i) % n].try_lock() {
                return conn;
            }
        }
        lock(&self.readers[start % n])
    }
}

/// Only rusqlite runs under these locks; a panic elsewhere leaves the connection usable.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sql for SqliteSql {
    async fn query(&self, stmt: Stmt) -> Result<Vec<Row>, SqlError> {
        let started = Instant::now();
        // A query that writes (an upsert with RETURNING) goes to the writer; SQLite says which.
        let reader = self.reader();
        let rows = if rusqlite_exec::reads_only(&reader, stmt.sql)? {
            rusqlite_exec::rows(&reader, stmt.sql, &stmt.params)
        } else {
            drop(reader);
            self.with(|conn| rusqlite_exec::rows(conn, stmt.sql, &stmt.params))
        };
        METRICS.database(started.elapsed());
        rows
    }

    /// Reads together in one read transaction on one reader: they see one snapshot, and
    /// SQLite's locks (the WAL's shared-memory locks, each a mutex and often an `fcntl`) are
    /// taken once. Per statement, those locks were most of a read's SQLite time.
    async fn query_many(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, SqlError> {
        let started = Instant::now();
        if let Some(rows) = self.reads_together(&stmts)? {
            METRICS.database(started.elapsed());
            return Ok(rows);
        }
        // One of them writes (an upsert with RETURNING): each goes where `query` sends it, and
        // is counted there.
        let mut rows = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            rows.push(self.query(stmt).await?);
        }
        Ok(rows)
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        let started = Instant::now();
        let done = self.batch_now(stmts);
        METRICS.database(started.elapsed());
        done
    }
}

impl SqliteSql {
    /// `stmts` in one read transaction on one reader, if none of them writes.
    fn reads_together(&self, stmts: &[Stmt]) -> Result<Option<Vec<Vec<Row>>>, SqlError> {
        let mut reader = self.reader();
        for stmt in stmts {
            if !rusqlite_exec::reads_only(&reader, stmt.sql)? {
                return Ok(None);
            }
        }
        let tx = reader.transaction().map_err(err)?;
        let rows = stmts
            .iter()
            .map(|stmt| rusqlite_exec::rows(&tx, stmt.sql, &stmt.params))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(err)?;
        Ok(Some(rows))
    }

    fn batch_now(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, SqlError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(err)?;
            let mut changes = Vec::with_capacity(stmts.len());
            for stmt in &stmts {
                changes.push(rusqlite_exec::execute(&tx, stmt.sql, &stmt.params)?);
            }
            tx.commit().map_err(err)?;
            Ok(changes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udc_core::Value;

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

    /// Reads run on other connections than writes: each sees every change committed before it,
    /// and a query that writes still reaches the writer.
    #[test]
    fn reads_see_what_was_written_and_a_writing_query_writes() {
        let (sql, dir) = temp_db();
        pollster::block_on(async {
            sql.batch(vec![Stmt::new(
                "CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)",
                vec![],
            )])
            .await
            .unwrap();
            for expected in 1..=(READERS as i64 + 2) {
                let counted = sql
                    .query(Stmt::new(
                        "INSERT INTO c (k, n) VALUES ('a', 1) \
                         ON CONFLICT(k) DO UPDATE SET n = n + 1 RETURNING n",
                        vec![],
                    ))
                    .await
                    .unwrap();
                assert_eq!(counted, vec![vec![Value::Integer(expected)]]);
                let read = sql
                    .query(Stmt::new("SELECT n FROM c WHERE k = 'a'", vec![]))
                    .await
                    .unwrap();
                assert_eq!(read, counted);
            }
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Reads together answer each statement's rows in order, from one transaction; a list
    /// holding a query that writes still reaches the writer.
    #[test]
    fn reads_together_answer_in_order_and_a_write_among_them_writes() {
        let (sql, dir) = temp_db();
        pollster::block_on(async {
            sql.batch(vec![
                Stmt::new(
                    "CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)",
                    vec![],
                ),
                Stmt::new("INSERT INTO c (k, n) VALUES ('a', 1), ('b', 2)", vec![]),
            ])
            .await
            .unwrap();
            let read = |k: &str| Stmt::new("SELECT n FROM c WHERE k = ?", vec![k.into()]);
            let both = sql
                .query_many(vec![read("b"), read("a"), read("z")])
                .await
                .unwrap();
            assert_eq!(
                both,
                vec![
                    vec![vec![Value::Integer(2)]],
                    vec![vec![Value::Integer(1)]],
                    vec![]
                ]
            );
            let bump = Stmt::new("UPDATE c SET n = n + 10 WHERE k = 'a' RETURNING n", vec![]);
            let mixed = sql.query_many(vec![bump, read("a")]).await.unwrap();
            assert_eq!(mixed[0], vec![vec![Value::Integer(11)]]);
            assert_eq!(mixed[1], vec![vec![Value::Integer(11)]]);
            // A statement failing inside the transaction (a parameter missing) fails the whole
            // call and ends the transaction: every reader starts the next one.
            let unbound = Stmt::new("SELECT n FROM c WHERE k = ?", vec![]);
            assert!(sql.query_many(vec![read("a"), unbound]).await.is_err());
            for _ in 0..=READERS {
                assert_eq!(
                    sql.query_many(vec![read("a")]).await.unwrap(),
                    vec![vec![vec![Value::Integer(11)]]]
                );
            }
        });
        std::fs::remove_dir_all(dir).unwrap();
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
