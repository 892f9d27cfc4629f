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
/// each table with the condition that picks the account's rows (`?1`: the account's id).
const ACCOUNT_TABLES: &[(&str, &str)] = &[
    ("users", "id = ?1"),
    ("devices", "user_id = ?1"),
    ("sessions", "user_id = ?1"),
    (
        "refresh_tokens",
        "session_id IN (SELECT id FROM sessions WHERE user_id = ?1)",
    ),
    ("files", "user_id = ?1"),
    (
        "file_parts",
        "file_id IN (SELECT id FROM files WHERE user_id = ?1)",
    ),
    (
        "file_shares",
        "file_id IN (SELECT id FROM files WHERE user_id = ?1)",
    ),
    ("trust_links", "user_id = ?1"),
    ("login_cookies", "user_id = ?1"),
    ("idempotency_keys", "user_id = ?1"),
    ("clipboard_items", "user_id = ?1"),
    ("clipboard_prefs", "user_id = ?1"),
    ("clipboard_accounts", "user_id = ?1"),
    ("sync_counters", "user_id = ?1"),
    ("settings_docs", "user_id = ?1"),
    ("settings_policies", "user_id = ?1"),
    ("settings_conflicts", "user_id = ?1"),
    ("settings_resolutions", "user_id = ?1"),
    ("pending_logins", "user_id = ?1"),
    ("handoffs", "user_id = ?1"),
    ("remote_sessions", "user_id = ?1"),
    ("account_activity", "user_id = ?1"),
    ("passkeys", "user_id = ?1"),
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

/// Rows read from D1 at a time, and copied in one transaction: a large account never sits in
/// memory whole.
const PAGE: usize = 500;

/// Row ids one DELETE removes (bound as one JSON array: D1 allows 100 parameters).
const REMOVED_AT_ONCE: usize = 5_000;

/// Rounds of one move. A round removes from D1 exactly the rows it copied; a row D1 gained
/// meanwhile (a Worker of the version before, during a deploy) stays, and the next round moves
/// it. (One that refers to a row the round copied makes D1 refuse the removal: the move fails
/// whole, and the next request moves both.)
const ROUNDS: usize = 3;

/// The column a copied row's D1 rowid is read into.
const ROWID: &str = "_udc_rowid";

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

/// Moves the account's rows from D1 into the object, in rounds until D1 holds none. A move
/// that fails part-way is done again next time: D1 loses only what the object holds.
pub async fn move_from_d1(
    sql: &ObjectSql,
    d1: &D1Sql,
    account: &str,
    mut take: impl FnMut(Vec<Outboxed>) -> Result<(), SqlError>,
) -> Result<Moved, SqlError> {
    let mut moved = 0;
    for _ in 0..ROUNDS {
        let round = move_round(sql, d1, account, &mut take).await?;
        moved += round.copied;
        if !round.left {
            return Ok(match moved {
                0 => Moved::Nothing,
                rows => Moved::Rows(rows),
            });
        }
    }
    Err(SqlError::new(format!(
        "D1 still gains rows of the account after {ROUNDS} rounds of its move; tried again next time"
    )))
}

/// What one round of a move did.
struct Round {
    copied: usize,
    /// D1 still holds the account: it gained rows while the round copied.
    left: bool,
}

/// One round: the events the account's D1 outbox holds given to `take` (the object's hub,
/// which logs each id once), its rows copied here page by page (`INSERT OR IGNORE`: a page
/// copied by a round that failed later is there already), then, in one D1 batch, what finds
/// the account kept in the directory, and removed exactly what was copied and taken. The
/// account's `users` row goes last, and only if nothing else of it is left.
async fn move_round(
    sql: &ObjectSql,
    d1: &D1Sql,
    account: &str,
    take: &mut impl FnMut(Vec<Outboxed>) -> Result<(), SqlError>,
) -> Result<Round, SqlError> {
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
    let taken: Vec<u64> = outbox.iter().map(|o| o.id).collect();
    if !outbox.is_empty() {
        take(outbox)?;
    }
    let mut copied = Vec::with_capacity(ACCOUNT_TABLES.len());
    for (table, condition) in ACCOUNT_TABLES {
        copied.push(copy_table(sql, d1, account, table, condition).await?);
    }
    let count = copied.iter().map(Vec::len).sum();
    if count == 0 && taken.is_empty() {
        return Ok(Round {
            copied: 0,
            left: false,
        });
    }
    // What finds the account stays in D1's directory, whichever came first, this move or the
    // migration that fills the directory (0017): its email, its approval requests, its refresh
    // tokens from before tokens named their account.
    let mut removals: Vec<(String, Vec<Value>)> = DIRECTORY_KEPT
        .iter()
        .map(|sql| ((*sql).to_owned(), vec![Value::from(account)]))
        .collect();
    removals.extend(by_rowid(
        ("event_outbox", "user_id = ?1"),
        "id",
        &taken,
        account,
    ));
    for (table, rowids) in ACCOUNT_TABLES.iter().zip(&copied).skip(1).rev() {
        removals.extend(by_rowid(*table, "rowid", rowids, account));
    }
    let rest: Vec<String> = std::iter::once(("event_outbox", "user_id = ?1"))
        .chain(ACCOUNT_TABLES.iter().skip(1).copied())
        .map(|(table, condition)| format!("NOT EXISTS (SELECT 1 FROM {table} WHERE {condition})"))
        .collect();
    removals.push((
        format!("DELETE FROM users WHERE id = ?1 AND {}", rest.join(" AND ")),
        vec![Value::from(account)],
    ));
    let changed = d1::batch_of(d1, removals).await?;
    Ok(Round {
        copied: count,
        left: changed.last() == Some(&0),
    })
}

/// Copies the rows of one table that `condition` picks, in pages by D1 rowid: the rowids copied.
async fn copy_table(
    sql: &ObjectSql,
    d1: &D1Sql,
    account: &str,
    table: &str,
    condition: &str,
) -> Result<Vec<i64>, SqlError> {
    let select = format!(
        "SELECT rowid AS {ROWID}, * FROM {table} WHERE ({condition}) AND rowid > ?2 \
         ORDER BY rowid LIMIT {PAGE}"
    );
    let mut rowids = Vec::new();
    loop {
        let after = rowids.last().copied().unwrap_or(0);
        let rows = d1::objects(d1, &select, &[account.into(), after.into()]).await?;
        let full = rows.len() == PAGE;
        let mut inserts = Vec::with_capacity(rows.len());
        for mut row in rows {
            let rowid = row
                .remove(ROWID)
                .and_then(|id| id.as_i64().or_else(|| id.as_f64().map(|f| f as i64)))
                .ok_or_else(|| SqlError::new(format!("{table}: a row without its rowid")))?;
            rowids.push(rowid);
            inserts.push(insert(table, row));
        }
        if !inserts.is_empty() {
            sql.transaction_of(inserts)?;
        }
        if !full {
            return Ok(rowids);
        }
    }
}

/// DELETEs of the account's rows of a table (its condition, `?1` the account) whose `key` is
/// one of `ids`. The condition stays: a rowid freed in D1 meanwhile (a Worker of the version
/// before deleting the table's newest row) may already be another account's row.
fn by_rowid(
    (table, condition): (&str, &str),
    key: &str,
    ids: &[impl serde::Serialize],
    account: &str,
) -> Vec<(String, Vec<Value>)> {
    ids.chunks(REMOVED_AT_ONCE)
        .map(|chunk| {
            let list = serde_json::to_string(chunk).unwrap_or_default();
            (
                format!(
                    "DELETE FROM {table} WHERE ({condition}) \
                     AND {key} IN (SELECT value FROM json_each(?2))"
                ),
                vec![Value::from(account), Value::Text(list)],
            )
        })
        .collect()
}

/// An INSERT of one row as D1 answered it (its columns by name), ignored where the object has
/// the row already.
fn insert(table: &str, row: Map<String, Json>) -> (String, Vec<Value>) {
    let columns: Vec<String> = row.keys().map(|c| format!("\"{c}\"")).collect();
    let marks = vec!["?"; columns.len()].join(", ");
    let values = row.into_values().map(d1::from_json).collect();
    (
        format!(
            "INSERT OR IGNORE INTO {table} ({}) VALUES ({marks})",
            columns.join(", ")
        ),
        values,
    )
}
