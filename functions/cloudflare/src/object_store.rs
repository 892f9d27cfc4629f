//! An account object's storage made ready: core's migrations, the hub tables of an object
//! from before accounts lived in their objects, and the account's rows still in D1 moved in.

use serde_json::{Map, Value as Json};
use udc_core::migrations;
use udc_core::{Sql, SqlError, Stmt, Value};
use udc_hub::sql_store::{outboxed, OUTBOX_PAGE};
use udc_hub::Outboxed;

use crate::d1::{self, D1Sql};
use crate::object_sql::ObjectSql;

/// The account's own rows in D1, parents before children (foreign keys hold at every step):
/// each table with the condition that picks the account's rows, its one parameter the
/// account's id.
const ACCOUNT_TABLES: &[(&str, &str)] = &[
    ("users", "id = ?"),
    ("devices", "user_id = ?"),
    ("sessions", "user_id = ?"),
    (
        "refresh_tokens",
        "session_id IN (SELECT id FROM sessions WHERE user_id = ?)",
    ),
    ("files", "user_id = ?"),
    (
        "file_parts",
        "file_id IN (SELECT id FROM files WHERE user_id = ?)",
    ),
    (
        "file_shares",
        "file_id IN (SELECT id FROM files WHERE user_id = ?)",
    ),
    ("trust_links", "user_id = ?"),
    ("login_cookies", "user_id = ?"),
    ("idempotency_keys", "user_id = ?"),
    ("clipboard_items", "user_id = ?"),
    ("clipboard_prefs", "user_id = ?"),
    ("clipboard_accounts", "user_id = ?"),
    ("sync_counters", "user_id = ?"),
    ("settings_docs", "user_id = ?"),
    ("settings_policies", "user_id = ?"),
    ("settings_conflicts", "user_id = ?"),
    ("settings_resolutions", "user_id = ?"),
    ("pending_logins", "user_id = ?"),
    ("handoffs", "user_id = ?"),
    ("remote_sessions", "user_id = ?"),
    ("account_activity", "user_id = ?"),
    ("passkeys", "user_id = ?"),
];

/// At most this many events waiting in an account's D1 outbox move with it (an outbox holds
/// what one failed send left, seconds of changes).
const OUTBOX_MOVED: i64 = 100_000;

/// Statements (one parameter: the account's id) that keep in D1's directory what finds the
/// account, before its rows leave D1.
const DIRECTORY_KEPT: &[&str] = &[
    "INSERT OR IGNORE INTO account_directory (email, user_id, created_at) \
     SELECT email, id, created_at FROM users WHERE id = ? AND deleted_at IS NULL",
    "INSERT OR IGNORE INTO approval_directory (id, user_id, expires_at) \
     SELECT id, user_id, expires_at FROM pending_logins WHERE user_id = ?",
    "INSERT OR IGNORE INTO refresh_directory (token_hash, user_id, expires_at) \
     SELECT t.token_hash, s.user_id, t.expires_at FROM refresh_tokens t \
     JOIN sessions s ON s.id = t.session_id WHERE s.user_id = ?",
];

/// The account id the hub wrote in its tables when an object held the hub alone.
const HUB_ALONE: &str = "self";

/// Core's migrations on the object's storage. An object from before (the hub's tables alone,
/// with its `audience` column added outside any record) gets a record of that one migration
/// first; its rows take the account's id (tried at every start, so a start that failed after
/// the migrations does it next time).
pub async fn migrate(sql: &ObjectSql, account: &str, now_ms: i64) -> Result<(), SqlError> {
    let recorded = sql
        .query(Stmt::new("SELECT 1 FROM _udc_migrations LIMIT 1", vec![]))
        .await
        .is_ok();
    let hub_alone = !recorded
        && sql
            .query(Stmt::new("SELECT 1 FROM hub_events LIMIT 1", vec![]))
            .await
            .is_ok();
    if hub_alone {
        sql.batch(vec![
            Stmt::new(
                "CREATE TABLE IF NOT EXISTS _udc_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
                vec![],
            ),
            Stmt::new(
                "INSERT OR IGNORE INTO _udc_migrations (name, applied_at) VALUES ('0007_hub_audience', ?)",
                vec![now_ms.into()],
            ),
        ])
        .await?;
    }
    migrations::ensure(sql, now_ms).await?;
    sql.batch(
        ["hub_events", "hub_seq", "hub_presence", "hub_outbox"]
            .into_iter()
            .map(|table| hub_rename(table, account))
            .collect(),
    )
    .await?;
    Ok(())
}

fn hub_rename(table: &'static str, account: &str) -> Stmt {
    let sql = match table {
        "hub_events" => "UPDATE hub_events SET user_id = ? WHERE user_id = ?",
        "hub_seq" => "UPDATE hub_seq SET user_id = ? WHERE user_id = ?",
        "hub_presence" => "UPDATE hub_presence SET user_id = ? WHERE user_id = ?",
        _ => "UPDATE hub_outbox SET user_id = ? WHERE user_id = ?",
    };
    Stmt::new(sql, vec![account.into(), HUB_ALONE.into()])
}

/// What `move_from_d1` did.
#[derive(Debug, PartialEq)]
pub enum Moved {
    /// D1 holds nothing of the account (it was made in its object).
    Nothing,
    /// Its rows were copied here and removed from D1: how many.
    Rows(usize),
}

/// Moves the account's rows from D1 into the object: copied in one transaction, the events its
/// outbox still held given to `take` (the object's hub, which logs each id once), then all of
/// it removed from D1 in one batch. A move whose removal failed is found again next time (D1
/// still has the rows, the object has them already: the copy is skipped, the outbox taken
/// again and its ids ignored, the removal tried again).
pub async fn move_from_d1(
    sql: &ObjectSql,
    d1: &D1Sql,
    account: &str,
    take: impl FnOnce(Vec<Outboxed>) -> Result<(), SqlError>,
) -> Result<Moved, SqlError> {
    let outbox = d1
        .query(Stmt::new(
            OUTBOX_PAGE,
            // D1 numbers are doubles: a LIMIT past 2^53 would be no integer.
            vec![account.into(), OUTBOX_MOVED.into()],
        ))
        .await?
        .iter()
        .map(|row| outboxed(row).map_err(SqlError::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut copies = Vec::new();
    for (table, condition) in ACCOUNT_TABLES {
        let select = format!("SELECT * FROM {table} WHERE {condition}");
        for row in d1::objects(d1, &select, account).await? {
            copies.push(insert(table, row));
        }
    }
    if copies.is_empty() {
        return Ok(Moved::Nothing);
    }
    let copied = copies.len();
    let here = sql
        .query(Stmt::new(
            "SELECT 1 FROM users WHERE id = ?",
            vec![account.into()],
        ))
        .await?;
    if here.is_empty() {
        sql.transaction_of(copies)?;
    }
    if !outbox.is_empty() {
        take(outbox)?;
    }
    // What finds the account stays in D1's directory, whichever came first, this move or the
    // migration that fills the directory (0017): its email, its approval requests, its refresh
    // tokens from before tokens named their account.
    let removals = DIRECTORY_KEPT
        .iter()
        .chain(std::iter::once(
            &"DELETE FROM event_outbox WHERE user_id = ?",
        ))
        .map(|sql| ((*sql).to_owned(), vec![Value::from(account)]))
        .chain(ACCOUNT_TABLES.iter().rev().map(|(table, condition)| {
            (
                format!("DELETE FROM {table} WHERE {condition}"),
                vec![Value::from(account)],
            )
        }))
        .collect();
    d1::batch_of(d1, removals).await?;
    Ok(Moved::Rows(copied))
}

/// An INSERT of one row as D1 answered it (its columns by name).
fn insert(table: &str, row: Map<String, Json>) -> (String, Vec<Value>) {
    let columns: Vec<String> = row.keys().map(|c| format!("\"{c}\"")).collect();
    let marks = vec!["?"; columns.len()].join(", ");
    let values = row.into_values().map(d1::from_json).collect();
    (
        format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            columns.join(", ")
        ),
        values,
    )
}
