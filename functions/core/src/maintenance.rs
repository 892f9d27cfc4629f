//! Periodic cleanup, run by the platform's scheduler (Workers cron trigger, udc-server's timer):
//! rows no request needs any more. Spent refresh tokens stay until they would have expired,
//! because reuse detection needs them.

use crate::error::ApiResult;
use crate::idempotency::KEEP_MS;
use crate::ports::{Ports, Sql, Stmt};
use crate::throttle::WINDOW_MS;
use crate::{rows, Core};

/// Live sessions that can no longer be refreshed (no unspent token left before its expiry);
/// the one parameter is now.
macro_rules! lapsed_sessions {
    () => {
        "WHERE revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM refresh_tokens t \
         WHERE t.session_id = sessions.id AND t.used_at IS NULL AND t.expires_at > ?)"
    };
}

/// Each run closes the sockets of at most this many lapsed sessions (one hub call each); the
/// rest stay live until a later run, so none is forgotten.
pub const EXPIRE_PER_RUN: i64 = 200;

/// An outbox row this old was left by a failed send, not one under way.
pub const OUTBOX_LEFT_MS: i64 = 10_000;

/// Revoked sessions are kept this long (for support and audit) before they go.
pub const KEEP_REVOKED_MS: i64 = 30 * 24 * 3600 * 1000;

/// Sign-in approval requests (and their routes) are kept this long past their end, to answer a
/// late poll.
pub const PENDING_KEPT_MS: i64 = 24 * 3600 * 1000;

/// How many rows each step removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Swept {
    pub throttle_windows: u64,
    /// Sessions whose last refresh token expired: ended, and their sockets closed.
    pub sessions_expired: u64,
    /// Lapsed sessions whose sockets could not be closed (the hub failed): retried next run.
    pub sessions_left_live: u64,
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub idempotency_keys: u64,
    /// Deleted files past their restore window (and their objects, when no other file uses them).
    pub files_purged: u64,
    /// Uploads nobody touched for a week, aborted at the store.
    pub uploads_aborted: u64,
    /// Remote sessions past their duration, silent or unanswered, that nobody had settled.
    pub remote_sessions_ended: u64,
    /// Accounts whose outbox a failed send had left behind, sent now (the Worker only).
    pub outboxes_sent: u64,
    /// Those whose hub failed again: retried next run.
    pub outboxes_left: u64,
    /// Deleted accounts whose erasure had stopped part-way, finished now.
    pub accounts_erased: u64,
    /// Those still not erased (the store or the hub failed again): retried next run.
    pub accounts_left: u64,
    /// Entries of accounts' activity past 90 days.
    pub activity_entries: u64,
    /// Routes of sign-in approval requests past `PENDING_KEPT_MS` (the directory).
    pub approval_routes: u64,
    /// Routes of refresh tokens from before tokens named their account, expired.
    pub refresh_routes: u64,
}

impl<P: Ports> Core<P> {
    /// Everything: the accounts' rows (`account_maintenance`) and the directory's. For a host
    /// whose one database holds both, and for the Worker's own core over D1.
    pub async fn maintenance(&self, now_ms: i64) -> ApiResult<Swept> {
        let mut swept = self.account_maintenance(now_ms).await?;
        let directory = self
            .ports
            .directory()
            .batch(vec![
                Stmt::new(
                    "DELETE FROM login_throttle WHERE window_start + ? <= ?",
                    vec![WINDOW_MS.into(), now_ms.into()],
                ),
                crate::directory::sweep(now_ms - PENDING_KEPT_MS),
                crate::directory::sweep_refresh(now_ms),
            ])
            .await?;
        swept.throttle_windows = directory.first().copied().unwrap_or(0);
        swept.approval_routes = directory.get(1).copied().unwrap_or(0);
        swept.refresh_routes = directory.get(2).copied().unwrap_or(0);
        Ok(swept)
    }

    /// The accounts' own rows, without the directory: what an account's Durable Object sweeps
    /// in its own storage (the directory is D1's, swept once by the Worker's scheduled run, not
    /// by every account).
    pub async fn account_maintenance(&self, now_ms: i64) -> ApiResult<Swept> {
        let revoked_before = now_ms - KEEP_REVOKED_MS;
        let (sessions_expired, sessions_left_live) = self.expire_sessions(now_ms).await?;
        let changes = self
            .ports
            .sql()
            .batch(vec![
                Stmt::new(
                    "DELETE FROM refresh_tokens WHERE expires_at <= ? OR session_id IN \
                     (SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at < ?)",
                    vec![now_ms.into(), revoked_before.into()],
                ),
                // Sessions long revoked, or left with no token at all (abandoned past expiry).
                Stmt::new(
                    "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < ?) OR \
                     (created_at < ? AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = sessions.id))",
                    vec![revoked_before.into(), (now_ms - self.config.refresh_ttl_secs * 1000).into()],
                ),
                Stmt::new(
                    "DELETE FROM realtime_tickets_used WHERE expires_at <= ?",
                    vec![now_ms.into()],
                ),
                Stmt::new(
                    "DELETE FROM login_cookies WHERE expires_at <= ?",
                    vec![now_ms.into()],
                ),
                Stmt::new(
                    "DELETE FROM idempotency_keys WHERE created_at <= ?",
                    vec![(now_ms - KEEP_MS).into()],
                ),
                // Sign-in requests a day past their end (kept a while to answer a late poll).
                Stmt::new(
                    "DELETE FROM pending_logins WHERE expires_at + ? <= ?",
                    vec![PENDING_KEPT_MS.into(), now_ms.into()],
                ),
                Stmt::new(
                    "DELETE FROM handoffs WHERE created_at + ? <= ?",
                    vec![crate::handoff::KEEP_MS.into(), now_ms.into()],
                ),
                crate::activity::sweep(now_ms),
                Stmt::new(
                    "DELETE FROM passkey_challenges_used WHERE expires_at <= ?",
                    vec![now_ms.into()],
                ),
            ])
            .await?;
        let (files_purged, uploads_aborted) = self.purge_files(now_ms, None).await?;
        let remote_sessions_ended = self.settle_lapsed_sessions(now_ms).await?;
        let (outboxes_sent, outboxes_left) = self.send_left_outboxes(now_ms).await?;
        let (accounts_erased, accounts_left) = self.erase_deleted_accounts().await?;
        Ok(Swept {
            sessions_expired,
            sessions_left_live,
            refresh_tokens: changes.first().copied().unwrap_or(0),
            sessions: changes.get(1).copied().unwrap_or(0),
            idempotency_keys: changes.get(4).copied().unwrap_or(0),
            files_purged,
            uploads_aborted,
            remote_sessions_ended,
            outboxes_sent,
            outboxes_left,
            accounts_erased,
            accounts_left,
            activity_entries: changes.get(7).copied().unwrap_or(0),
            ..Swept::default()
        })
    }

    /// Finishes erasing the deleted accounts whose erasure stopped part-way (their tombstones).
    /// Returns (erased, failed again).
    async fn erase_deleted_accounts(&self) -> ApiResult<(u64, u64)> {
        let users = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT id FROM users WHERE deleted_at IS NOT NULL LIMIT ?",
                vec![EXPIRE_PER_RUN.into()],
            ))
            .await?;
        let (mut erased, mut left) = (0, 0);
        for row in &users {
            match self.erase_account(&rows::text(row, 0)?).await {
                Ok(()) => erased += 1,
                Err(_) => left += 1,
            }
        }
        Ok((erased, left))
    }

    /// Sends the outboxes of accounts whose events have waited past `OUTBOX_LEFT_MS` (a send
    /// failed and no change of theirs came since). Returns (sent, failed again).
    async fn send_left_outboxes(&self, now_ms: i64) -> ApiResult<(u64, u64)> {
        // What a change of a deleted account committed as it was being erased goes nowhere.
        self.ports
            .sql()
            .batch(vec![Stmt::new(
                "DELETE FROM event_outbox WHERE NOT EXISTS \
                 (SELECT 1 FROM users WHERE id = event_outbox.user_id AND deleted_at IS NULL)",
                vec![],
            )])
            .await?;
        let users = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT DISTINCT user_id FROM event_outbox WHERE at < ? LIMIT ?",
                vec![(now_ms - OUTBOX_LEFT_MS).into(), EXPIRE_PER_RUN.into()],
            ))
            .await?;
        let (mut sent, mut left) = (0, 0);
        for row in &users {
            match self.send_outbox(&rows::text(row, 0)?, None).await {
                Ok(()) => sent += 1,
                Err(_) => left += 1,
            }
        }
        Ok((sent, left))
    }

    /// Ends the sessions that can no longer be refreshed: a socket outlives its access token,
    /// so the sockets a device's session opened are closed first, and the session is marked
    /// ended only once they are. Returns (ended, left live for the next run).
    async fn expire_sessions(&self, now_ms: i64) -> ApiResult<(u64, u64)> {
        let sql = self.ports.sql();
        let with_sockets = sql
            .query(Stmt::new(
                concat!(
                    "SELECT user_id, id FROM sessions ",
                    lapsed_sessions!(),
                    " AND device_id IS NOT NULL LIMIT ?"
                ),
                vec![now_ms.into(), EXPIRE_PER_RUN.into()],
            ))
            .await?;
        let mut ends = Vec::with_capacity(with_sockets.len() + 1);
        let mut left_live = 0;
        for row in &with_sockets {
            let session = rows::text(row, 1)?;
            if self
                .end_sockets(&rows::text(row, 0)?, &session)
                .await
                .is_err()
            {
                left_live += 1;
                continue;
            }
            ends.push(Stmt::new(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'expired' \
                 WHERE id = ? AND revoked_at IS NULL",
                vec![now_ms.into(), session.into()],
            ));
        }
        // Sessions without a device hold no socket.
        ends.push(Stmt::new(
            concat!(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'expired' ",
                lapsed_sessions!(),
                " AND device_id IS NULL"
            ),
            vec![now_ms.into(), now_ms.into()],
        ));
        let ended = sql.batch(ends).await?.iter().sum();
        Ok((ended, left_live))
    }
}
