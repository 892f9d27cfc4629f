//! `schema/migrations/`, embedded, and the runner udc-server and the Spin component use.
//! (On D1, `wrangler d1 migrations apply` runs the same files and keeps its own record.)

use crate::ports::{Sql, SqlError, Stmt};

pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_accounts_devices",
        include_str!("../../../schema/migrations/0001_accounts_devices.sql"),
    ),
    (
        "0002_hub",
        include_str!("../../../schema/migrations/0002_hub.sql"),
    ),
    (
        "0003_files",
        include_str!("../../../schema/migrations/0003_files.sql"),
    ),
    (
        "0004_sync",
        include_str!("../../../schema/migrations/0004_sync.sql"),
    ),
    (
        "0005_remote",
        include_str!("../../../schema/migrations/0005_remote.sql"),
    ),
    (
        "0006_hardening",
        include_str!("../../../schema/migrations/0006_hardening.sql"),
    ),
    (
        "0007_hub_audience",
        include_str!("../../../schema/migrations/0007_hub_audience.sql"),
    ),
    (
        "0008_hub_seq",
        include_str!("../../../schema/migrations/0008_hub_seq.sql"),
    ),
    (
        "0009_event_outbox",
        include_str!("../../../schema/migrations/0009_event_outbox.sql"),
    ),
    (
        "0010_hub_outbox",
        include_str!("../../../schema/migrations/0010_hub_outbox.sql"),
    ),
    (
        "0011_session_origin",
        include_str!("../../../schema/migrations/0011_session_origin.sql"),
    ),
    (
        "0012_account_deletion",
        include_str!("../../../schema/migrations/0012_account_deletion.sql"),
    ),
    (
        "0013_account_key",
        include_str!("../../../schema/migrations/0013_account_key.sql"),
    ),
    (
        "0014_activity",
        include_str!("../../../schema/migrations/0014_activity.sql"),
    ),
    (
        "0015_sealed_files",
        include_str!("../../../schema/migrations/0015_sealed_files.sql"),
    ),
    (
        "0016_passkeys",
        include_str!("../../../schema/migrations/0016_passkeys.sql"),
    ),
    (
        "0017_directory",
        include_str!("../../../schema/migrations/0017_directory.sql"),
    ),
];

/// The statements of one migration file: split at a `;` that ends a line, comments kept
/// (SQLite ignores them), chunks that hold nothing but comments dropped.
pub fn statements(file: &'static str) -> Vec<&'static str> {
    file.split(";\n")
        .map(str::trim)
        .filter(|chunk| {
            chunk
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        })
        .map(|chunk| chunk.trim_end_matches(';'))
        .collect()
}

/// Applies every migration not yet recorded, each in one batch with its record, and returns
/// the names applied. A migration applied meanwhile by a concurrent runner counts as done.
pub async fn apply(sql: &impl Sql, now_ms: i64) -> Result<Vec<&'static str>, SqlError> {
    sql.batch(vec![Stmt::new(
        "CREATE TABLE IF NOT EXISTS _udc_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        vec![],
    )])
    .await?;
    let mut applied = Vec::new();
    for (name, file) in MIGRATIONS {
        if is_applied(sql, name).await? {
            continue;
        }
        let mut batch: Vec<Stmt> = statements(file)
            .into_iter()
            .map(|s| Stmt::new(s, vec![]))
            .collect();
        batch.push(Stmt::new(
            "INSERT INTO _udc_migrations (name, applied_at) VALUES (?, ?)",
            vec![(*name).into(), now_ms.into()],
        ));
        if let Err(e) = sql.batch(batch).await {
            if is_applied(sql, name).await? {
                continue;
            }
            return Err(e);
        }
        applied.push(*name);
    }
    Ok(applied)
}

/// The per-request check for hosts with no start-up hook (Spin): one query when the schema is
/// current, `apply` otherwise.
pub async fn ensure(sql: &impl Sql, now_ms: i64) -> Result<(), SqlError> {
    let current = sql
        .query(Stmt::new("SELECT count(*) FROM _udc_migrations", vec![]))
        .await
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.first()).cloned());
    if current == Some(crate::ports::Value::Integer(MIGRATIONS.len() as i64)) {
        return Ok(());
    }
    apply(sql, now_ms).await.map(|_| ())
}

async fn is_applied(sql: &impl Sql, name: &str) -> Result<bool, SqlError> {
    let rows = sql
        .query(Stmt::new(
            "SELECT 1 FROM _udc_migrations WHERE name = ?",
            vec![name.into()],
        ))
        .await?;
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_drops_comment_only_chunks() {
        let stmts = statements(MIGRATIONS[0].1);
        assert!(stmts.iter().all(|s| !s.ends_with(';')));
        assert!(stmts.iter().any(|s| s.contains("CREATE TABLE users")));
        assert!(stmts
            .iter()
            .any(|s| s.contains("CREATE TABLE login_throttle")));
        assert_eq!(
            stmts.iter().filter(|s| s.contains("CREATE TABLE")).count(),
            6,
            "{stmts:#?}"
        );
    }
}
