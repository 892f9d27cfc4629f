//! The account's security activity: its owner's own record of what happened to it — sign-ins
//! and failed attempts, devices added and removed, trust given and withdrawn, approvals,
//! password and recovery code changes, remote sessions. Each entry is a statement in the batch
//! of the change it records (so an entry exists exactly when the change does), kept 90 days.
//! Only the account's own sessions read it (`GET /account/activity`).

use udc_client::wire::ActivityEntry;

use crate::auth::client_name;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Ports, Row, Stmt};
use crate::web::{int_param, limit_param, Reply, MAX_EXACT};
use crate::{rows, Core, Rq};

/// How long entries are kept.
pub const KEEP_MS: i64 = 90 * 24 * 3600 * 1000;
/// At most this many entries a page, and by default.
const PAGE_MAX: i64 = 200;
const PAGE_DEFAULT: i64 = 50;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    AccountCreated,
    SignedIn,
    SignInFailed,
    DeviceAdded,
    DeviceRemoved,
    TrustAdded,
    TrustRemoved,
    ApprovalApproved,
    ApprovalDenied,
    PasswordChanged,
    PasswordReset,
    RecoveryCodeChanged,
    RemoteSession,
    PasskeyAdded,
    PasskeyRemoved,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::AccountCreated => "account_created",
            Kind::SignedIn => "signed_in",
            Kind::SignInFailed => "sign_in_failed",
            Kind::DeviceAdded => "device_added",
            Kind::DeviceRemoved => "device_removed",
            Kind::TrustAdded => "trust_added",
            Kind::TrustRemoved => "trust_removed",
            Kind::ApprovalApproved => "approval_approved",
            Kind::ApprovalDenied => "approval_denied",
            Kind::PasswordChanged => "password_changed",
            Kind::PasswordReset => "password_reset",
            Kind::RecoveryCodeChanged => "recovery_code_changed",
            Kind::RemoteSession => "remote_session",
            Kind::PasskeyAdded => "passkey_added",
            Kind::PasskeyRemoved => "passkey_removed",
        }
    }
}

/// When an entry is written: always, or only when the statement just before it in the batch
/// changed a row (SQLite's `changes()`; an entry so written changes one row itself, so a
/// `When::Changed` event after it still reports the same change).
#[derive(Clone, Copy)]
pub(crate) enum If {
    Always,
    Changed,
}

const INSERT_ALWAYS: &str = "INSERT INTO account_activity (user_id, at, kind, device_id, \
    session_id, client_ip, client, target_device_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_IF_CHANGED: &str = "INSERT INTO account_activity (user_id, at, kind, device_id, \
    session_id, client_ip, client, target_device_id, detail) \
    SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() > 0";
/// A failed sign-in, by the same statement whether the email has an account or not (it then
/// inserts nothing): the request does the same work either way.
const INSERT_FAILED_SIGN_IN: &str = "INSERT INTO account_activity (user_id, at, kind, device_id, \
    session_id, client_ip, client, target_device_id, detail) \
    SELECT id, ?, ?, NULL, NULL, ?, ?, NULL, ? FROM users \
    WHERE email = ? AND deleted_at IS NULL";

/// Who acted: a session (and its device), or nobody signed in (a failed attempt, a sign-up).
#[derive(Clone, Copy, Default)]
pub(crate) struct Actor<'a> {
    pub session_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// A session the request itself starts (a sign-in), with no device yet.
    pub fn new_session(session_id: &'a str) -> Actor<'a> {
        Actor {
            session_id: Some(session_id),
            device_id: None,
        }
    }
}

impl<'a> From<&'a crate::auth::Caller> for Actor<'a> {
    fn from(c: &'a crate::auth::Caller) -> Actor<'a> {
        Actor {
            session_id: Some(&c.session_id),
            device_id: c.device_id.as_deref(),
        }
    }
}

/// What happened: its kind, the device it happened to, and what else it says (JSON).
pub(crate) struct Entry<'a> {
    pub kind: Kind,
    pub target: Option<&'a str>,
    pub detail: serde_json::Value,
}

impl<'a> Entry<'a> {
    pub fn new(kind: Kind) -> Entry<'a> {
        Entry {
            kind,
            target: None,
            detail: serde_json::json!({}),
        }
    }

    pub fn on(mut self, device: &'a str) -> Entry<'a> {
        self.target = Some(device);
        self
    }

    pub fn with(mut self, detail: serde_json::Value) -> Entry<'a> {
        self.detail = detail;
        self
    }

    /// The entry in the account of `user`, done by `actor`, as a statement of the change's
    /// batch.
    pub fn stmt(self, rq: &Rq<'_>, user: &str, actor: Actor<'_>, when: If) -> Stmt {
        Stmt::new(
            match when {
                If::Always => INSERT_ALWAYS,
                If::Changed => INSERT_IF_CHANGED,
            },
            vec![
                user.into(),
                rq.now_ms.into(),
                self.kind.as_str().into(),
                actor.device_id.into(),
                actor.session_id.into(),
                rq.client_ip.clone().into(),
                client_name(rq.headers).into(),
                self.target.into(),
                self.detail.to_string().into(),
            ],
        )
    }
}

/// A failed sign-in for `email` by `method` (`password`, `recovery_code`); nothing when the
/// email has no account.
pub(crate) fn failed_sign_in(rq: &Rq<'_>, email: &str, method: &str) -> Stmt {
    Stmt::new(
        INSERT_FAILED_SIGN_IN,
        vec![
            rq.now_ms.into(),
            Kind::SignInFailed.as_str().into(),
            rq.client_ip.clone().into(),
            client_name(rq.headers).into(),
            serde_json::json!({ "method": method }).to_string().into(),
            email.into(),
        ],
    )
}

/// Entries older than `KEEP_MS`.
pub(crate) fn sweep(now: i64) -> Stmt {
    Stmt::new(
        "DELETE FROM account_activity WHERE at <= ?",
        vec![(now - KEEP_MS).into()],
    )
}

fn view(row: &Row) -> ApiResult<ActivityEntry> {
    Ok(ActivityEntry {
        id: rows::int(row, 0)?,
        at: rows::timestamp(rows::int(row, 1)?),
        kind: rows::text(row, 2)?,
        device_id: rows::opt_text(row, 3)?,
        device_name: rows::opt_text(row, 4)?,
        client_ip: rows::opt_text(row, 5)?,
        client: rows::opt_text(row, 6)?,
        target_device_id: rows::opt_text(row, 7)?,
        target_device_name: rows::opt_text(row, 8)?,
        detail: serde_json::from_str(&rows::text(row, 9)?)
            .map_err(|e| ApiError::internal(format!("activity detail: {e}")))?,
    })
}

impl<P: Ports> Core<P> {
    /// `GET /account/activity?limit=N&before=ID`: the newest entries first, within 90 days;
    /// `next_before` pages on.
    pub(crate) async fn list_activity(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let limit = limit_param(rq.query, PAGE_DEFAULT, PAGE_MAX)?;
        // No entry's id reaches the largest exact integer.
        let before = int_param(rq.query, "before", 1)?.unwrap_or(MAX_EXACT);
        let since = rq.now_ms - KEEP_MS;
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT a.id, a.at, a.kind, a.device_id, d.name, a.client_ip, a.client, \
                     a.target_device_id, t.name, a.detail FROM account_activity a \
                     LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN devices t ON t.id = a.target_device_id \
                     WHERE a.user_id = ? AND a.id < ? AND a.at > ? ORDER BY a.id DESC LIMIT ?",
                    vec![
                        c.user_id.as_str().into(),
                        before.into(),
                        since.into(),
                        (limit + 1).into(),
                    ],
                )]
            })
            .await?;
        let rows = found.first().map(Vec::as_slice).unwrap_or_default();
        let more = rows.len() as i64 > limit;
        let entries = rows
            .iter()
            .take(limit as usize)
            .map(view)
            .collect::<ApiResult<Vec<_>>>()?;
        let next = more.then(|| entries.last().map(|e| e.id)).flatten();
        Reply::ok(serde_json::json!({ "activity": entries, "next_before": next }))
    }
}
