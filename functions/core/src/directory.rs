//! The directory (`schema/migrations/0017_directory.sql`): what a request must find before it
//! knows its account — an email's account, a sign-in approval request's. Core writes it through
//! `Ports::directory`; a host that keeps each account apart (the Worker: a Durable Object per
//! account) reads it to route a request (`find_email`, `find_approval`). The sign-in throttles
//! (`throttle`) count there too, across accounts.

use crate::error::{ApiError, ApiResult};
use crate::ports::{Sql, Stmt};
use crate::rows;

/// Claims `email` for `user_id` and answers the account that holds it after: `user_id`, or
/// the one that claimed it first.
pub async fn claim(
    directory: &impl Sql,
    email: &str,
    user_id: &str,
    now_ms: i64,
) -> ApiResult<String> {
    let (_, rows) = directory
        .batch_then_read(
            vec![Stmt::new(
                "INSERT INTO account_directory (email, user_id, created_at) VALUES (?, ?, ?) \
                 ON CONFLICT(email) DO NOTHING",
                vec![email.into(), user_id.into(), now_ms.into()],
            )],
            Stmt::new(
                "SELECT user_id FROM account_directory WHERE email = ?",
                vec![email.into()],
            ),
            &["user_id"],
        )
        .await?;
    rows.first()
        .map(|r| rows::text(r, 0))
        .transpose()?
        .ok_or_else(|| ApiError::internal("the directory lost a claim it had just taken"))
}

/// Frees every email `user_id` holds (its account is erased).
pub async fn release(directory: &impl Sql, user_id: &str) -> ApiResult<()> {
    directory
        .batch(vec![Stmt::new(
            "DELETE FROM account_directory WHERE user_id = ?",
            vec![user_id.into()],
        )])
        .await?;
    Ok(())
}

/// Records which account (`None`: no account) a sign-in approval request went to.
pub async fn record_approval(
    directory: &impl Sql,
    id: &str,
    user_id: Option<&str>,
    expires_at_ms: i64,
) -> ApiResult<()> {
    directory
        .batch(vec![Stmt::new(
            "INSERT INTO approval_directory (id, user_id, expires_at) VALUES (?, ?, ?)",
            vec![id.into(), user_id.into(), expires_at_ms.into()],
        )])
        .await?;
    Ok(())
}

/// The account that holds `email` (already normalized by `validate::email`).
pub async fn find_email(directory: &impl Sql, email: &str) -> ApiResult<Option<String>> {
    let rows = directory
        .query(Stmt::new(
            "SELECT user_id FROM account_directory WHERE email = ?",
            vec![email.into()],
        ))
        .await?;
    rows.first().map(|r| rows::text(r, 0)).transpose()
}

/// Where a sign-in approval request went: `None` if it is unknown (or expired and swept),
/// `Some(None)` if it went to no account.
pub async fn find_approval(directory: &impl Sql, id: &str) -> ApiResult<Option<Option<String>>> {
    let rows = directory
        .query(Stmt::new(
            "SELECT user_id FROM approval_directory WHERE id = ?",
            vec![id.into()],
        ))
        .await?;
    rows.first().map(|r| rows::opt_text(r, 0)).transpose()
}

/// The account a refresh token made before tokens named their account belongs to, by the
/// token's hash (`tokens::refresh_hash`).
pub async fn find_refresh(directory: &impl Sql, token_hash: &str) -> ApiResult<Option<String>> {
    let rows = directory
        .query(Stmt::new(
            "SELECT user_id FROM refresh_directory WHERE token_hash = ?",
            vec![token_hash.into()],
        ))
        .await?;
    rows.first().map(|r| rows::text(r, 0)).transpose()
}

/// Drops the routes of refresh tokens from before that have expired.
pub fn sweep_refresh(now_ms: i64) -> Stmt {
    Stmt::new(
        "DELETE FROM refresh_directory WHERE expires_at <= ?",
        vec![now_ms.into()],
    )
}

/// Drops the routes of approval requests that expired before `before_ms`.
pub fn sweep(before_ms: i64) -> Stmt {
    Stmt::new(
        "DELETE FROM approval_directory WHERE expires_at <= ?",
        vec![before_ms.into()],
    )
}
