//! Settings sync: namespaced, versioned JSON documents. Every applied change takes the next
//! number of the account's change counter as its version, so a device asks for "everything
//! since N". A write based on a stale version is settled by the namespace's policy
//! (`conflict.rs`), and every such settlement is logged.
//!
//! A write is one batch that first swaps the account's counter (from the value read to the new
//! one, under a fresh writer id) and guards every other statement on that swap: a concurrent
//! writer makes the whole batch a no-op, and it is decided again from fresh reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use udc_hub::names;
use udc_hub::NewEvent;

use crate::auth::Caller;
use crate::conflict::{decide, Decision, Held, Policy};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, When};
use crate::ports::{Ports, Row, Sql, Stmt, Value};
use crate::web::{int_param, json_body, json_body_max, query_param, Reply, MAX_EXACT};
use crate::{rows, validate, Core, Rq};

pub const MAX_VALUE_BYTES: usize = 16 * 1024;
pub const MAX_BATCH: usize = 100;
const MAX_PAGE: i64 = 500;
const ATTEMPTS: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    namespace: String,
    key: String,
    value: Option<serde_json::Value>,
    #[serde(default)]
    deleted: bool,
    base_version: i64,
    /// When the device made the change (RFC 3339); `most_recent_wins` compares it.
    modified_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    changes: Vec<ChangeBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    policy: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    /// `server` keeps the server's document, `client` takes the held write, `value` writes `value`.
    #[serde(rename = "use")]
    choice: String,
    value: Option<serde_json::Value>,
}

/// A validated change.
#[derive(Clone)]
struct Change {
    namespace: String,
    key: String,
    /// Serialized JSON; `None` deletes.
    value: Option<String>,
    base_version: i64,
    modified_at: i64,
    /// Resolving a conflict writes over whatever is current.
    force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Doc {
    pub namespace: String,
    pub key: String,
    pub value: Option<serde_json::Value>,
    pub deleted: bool,
    pub version: i64,
    pub modified_at: String,
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Resolution {
    policy: &'static str,
    outcome: &'static str,
    server_version: i64,
}

#[derive(Debug, Clone, Serialize)]
struct ChangeResult {
    namespace: String,
    key: String,
    /// `applied`, `rejected` (the server's document stays; it is in `server`) or `conflict`
    /// (held for the user; `conflict_id`).
    status: &'static str,
    /// The document's version after this change.
    version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<Resolution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<Doc>,
}

fn timestamp_ms(field: &str, raw: &str) -> ApiResult<i64> {
    // The contract's pattern is the form (chrono takes more: a Unicode minus, say); a day the
    // calendar lacks, the form cannot tell.
    if !rfc3339_form(raw) {
        return Err(ApiError::invalid(format!(
            "{field}: must be an RFC 3339 time"
        )));
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::unprocessable(format!("{field}: no such date or time")))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with each number in its range: the form
/// `schema/openapi.yaml` gives `modified_at`.
fn rfc3339_form(raw: &str) -> bool {
    let b = raw.as_bytes();
    let num = |from: usize, to: usize, max: u32| -> bool {
        b.get(from..to)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && raw[from..to].parse::<u32>().is_ok_and(|n| n <= max)
    };
    let at = |i: usize, set: &[u8]| b.get(i).is_some_and(|c| set.contains(c));
    let fixed = num(0, 4, 9999)
        && at(4, b"-")
        && num(5, 7, 12)
        && !raw[5..7].starts_with("00")
        && at(7, b"-")
        && num(8, 10, 31)
        && !raw[8..10].starts_with("00")
        && at(10, b"Tt ")
        && num(11, 13, 23)
        && at(13, b":")
        && num(14, 16, 59)
        && at(16, b":")
        && num(17, 19, 60);
    if !fixed {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += 1 + digits;
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && num(i + 1, i + 3, 23) && at(i + 3, b":") && num(i + 4, i + 6, 59)
        }
        _ => false,
    }
}

fn check(body: ChangeBody, now_ms: i64, at: &str) -> ApiResult<Change> {
    let namespace = validate::token(&format!("{at}namespace"), &body.namespace, 64)?;
    let key = validate::token(&format!("{at}key"), &body.key, 128)?;
    if !(0..=MAX_EXACT).contains(&body.base_version) {
        return Err(ApiError::invalid(format!(
            "{at}base_version: must be 0 to {MAX_EXACT}"
        )));
    }
    let value = match (body.deleted, body.value) {
        (true, None) => None,
        (false, Some(v)) => {
            let text = v.to_string();
            if text.len() > MAX_VALUE_BYTES {
                return Err(ApiError::too_large(format!(
                    "{at}value: must be at most {MAX_VALUE_BYTES} bytes of JSON"
                )));
            }
            Some(text)
        }
        (true, Some(_)) => {
            return Err(ApiError::invalid(format!(
                "{at}value: a delete carries no value"
            )))
        }
        (false, None) => {
            return Err(ApiError::invalid(format!(
                "{at}value: required (JSON other than null); to delete send \"deleted\": true"
            )))
        }
    };
    let modified_at = match body.modified_at {
        Some(raw) => timestamp_ms(&format!("{at}modified_at"), &raw)?,
        None => now_ms,
    };
    Ok(Change {
        namespace,
        key,
        value,
        base_version: body.base_version,
        modified_at,
        force: false,
    })
}

fn doc(row: &Row) -> ApiResult<Doc> {
    let value = rows::opt_text(row, 2)?
        .map(|t| serde_json::from_str(&t).map_err(|e| ApiError::internal(e.to_string())))
        .transpose()?;
    Ok(Doc {
        namespace: rows::text(row, 0)?,
        key: rows::text(row, 1)?,
        deleted: value.is_none(),
        value,
        version: rows::int(row, 3)?,
        modified_at: rows::timestamp(rows::int(row, 4)?),
        device_id: rows::opt_text(row, 5)?,
    })
}

/// What a write needs to know, read fresh before each attempt.
struct Snapshot {
    seq: i64,
    writer: Option<String>,
    policies: BTreeMap<String, Policy>,
    /// (namespace, key) -> (document, raw modified_at)
    docs: BTreeMap<(String, String), (Doc, i64)>,
}

/// A conflict being settled by the user, written with the change it decides.
struct Settling {
    conflict_id: String,
    choice: &'static str,
}

impl<P: Ports> Core<P> {
    async fn snapshot(&self, user: &str, changes: &[Change]) -> ApiResult<Snapshot> {
        let mut reads = vec![
            Stmt::new(
                "SELECT seq, writer FROM sync_counters WHERE user_id = ?",
                vec![user.into()],
            ),
            Stmt::new(
                "SELECT namespace, policy FROM settings_policies WHERE user_id = ?",
                vec![user.into()],
            ),
        ];
        for c in changes {
            reads.push(Stmt::new(
                "SELECT namespace, key, value, version, modified_at, device_id FROM settings_docs \
                 WHERE user_id = ? AND namespace = ? AND key = ?",
                vec![
                    user.into(),
                    c.namespace.as_str().into(),
                    c.key.as_str().into(),
                ],
            ));
        }
        let found = self.ports.sql().query_many(reads).await?;
        let (seq, writer) = match found.first().and_then(|r| r.first()) {
            Some(row) => (rows::int(row, 0)?, rows::opt_text(row, 1)?),
            None => (0, None),
        };
        let mut policies = BTreeMap::new();
        for row in found.get(1).map(Vec::as_slice).unwrap_or_default() {
            if let Some(p) = Policy::parse(&rows::text(row, 1)?) {
                policies.insert(rows::text(row, 0)?, p);
            }
        }
        let mut docs = BTreeMap::new();
        for rows_of in found.iter().skip(2) {
            if let Some(row) = rows_of.first() {
                let d = doc(row)?;
                docs.insert(
                    (d.namespace.clone(), d.key.clone()),
                    (d, rows::int(row, 4)?),
                );
            }
        }
        Ok(Snapshot {
            seq,
            writer,
            policies,
            docs,
        })
    }

    /// Decides and writes `changes` as one guarded batch; retried on a concurrent write.
    async fn write_settings(
        &self,
        rq: &Rq<'_>,
        caller: &Caller,
        changes: Vec<Change>,
        settling: Option<Settling>,
    ) -> ApiResult<Written> {
        let user = caller.user_id.as_str();
        for _ in 0..ATTEMPTS {
            let snap = self.snapshot(user, &changes).await?;
            let seq = snap.seq;
            let prior = snap.writer.clone();
            let writer = self.new_id()?;
            let writing = Writing {
                user,
                device: caller.device_id.as_deref(),
                writer: &writer,
                now_ms: rq.now_ms,
                settling: settling.as_ref(),
            };
            let Plan {
                stmts,
                results,
                next,
            } = plan(&writing, &changes, snap, &|| self.new_id())?;
            // Every write below is guarded by this swap; settling a conflict, the swap also
            // needs the conflict still open, so a resolve that lost the race writes nothing.
            let swap: Vec<Value> = vec![
                next.into(),
                writer.as_str().into(),
                user.into(),
                seq.into(),
                prior.into(),
                settling.as_ref().map(|s| s.conflict_id.as_str()).into(),
            ];
            let mut batch = events::Change::new(vec![
                Stmt::new(
                    "INSERT INTO sync_counters (user_id, seq, writer) VALUES (?, 0, NULL) ON CONFLICT DO NOTHING",
                    vec![user.into()],
                ),
                Stmt::new(
                    "UPDATE sync_counters SET seq = ?, writer = ? WHERE user_id = ? AND seq = ? AND writer IS ? \
                     AND NOT EXISTS (SELECT 1 FROM settings_conflicts WHERE id = ? AND resolved_at IS NOT NULL)",
                    swap,
                ),
            ]);
            // The events stand or fall with the swap, like every write below it.
            for event in settings_events(next, &results) {
                batch.event(user, event, When::Changed);
            }
            batch.extend(stmts);
            let done = self.commit(batch).await?;
            if !done.one(1) {
                if let Some(s) = &settling {
                    if self.conflict_settled(user, &s.conflict_id).await? {
                        return Err(already_resolved());
                    }
                }
                continue;
            }
            return Ok(Written {
                version: next,
                results,
                warning: done.warning,
            });
        }
        Err(ApiError::conflict(
            "busy",
            "settings kept changing under this write; retry in a moment",
        ))
    }

    async fn conflict_settled(&self, user: &str, id: &str) -> ApiResult<bool> {
        let found = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT 1 FROM settings_conflicts WHERE id = ? AND user_id = ? AND resolved_at IS NOT NULL",
                vec![id.into(), user.into()],
            ))
            .await?;
        Ok(!found.is_empty())
    }

    pub(crate) async fn put_setting(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let body: ChangeBody = json_body(rq.headers, rq.body)?;
        let change = check(body, rq.now_ms, "")?;
        let w = self.write_settings(rq, &caller, vec![change], None).await?;
        let result = w.results.into_iter().next();
        Ok(
            Reply::ok(serde_json::json!({ "version": w.version, "result": result }))?
                .warn(w.warning),
        )
    }

    pub(crate) async fn sync_batch(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        if rq.headers.get(crate::idempotency::HEADER).is_none() {
            return Err(ApiError::bad_request(
                "idempotency_key_required",
                "a batch needs an Idempotency-Key header, so a retry never applies it twice",
            ));
        }
        let body: BatchBody = json_body_max(rq.headers, rq.body, 1024 * 1024)?;
        if body.changes.is_empty() || body.changes.len() > MAX_BATCH {
            return Err(ApiError::invalid(format!(
                "changes: must hold 1 to {MAX_BATCH} changes"
            )));
        }
        let changes = body
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| check(c, rq.now_ms, &format!("changes[{i}].")))
            .collect::<ApiResult<Vec<_>>>()?;
        let w = self.write_settings(rq, &caller, changes, None).await?;
        Ok(
            Reply::ok(serde_json::json!({ "version": w.version, "results": w.results }))?
                .warn(w.warning),
        )
    }

    pub(crate) async fn get_settings(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let since = int_param(rq.query, "since", 0)?.unwrap_or(0);
        let namespace = query_param(rq.query, "namespace")
            .map(|n| validate::token("namespace", n, 64))
            .transpose()?;
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![
                    Stmt::new("SELECT seq FROM sync_counters WHERE user_id = ?", vec![c.user_id.as_str().into()]),
                    Stmt::new(
                        "SELECT namespace, key, value, version, modified_at, device_id FROM settings_docs \
                         WHERE user_id = ? AND version > ? AND (? IS NULL OR namespace = ?) ORDER BY version LIMIT ?",
                        vec![
                            c.user_id.as_str().into(),
                            since.into(),
                            namespace.clone().into(),
                            namespace.clone().into(),
                            (MAX_PAGE + 1).into(),
                        ],
                    ),
                ]
            })
            .await?;
        let mut version = match found.first().and_then(|r| r.first()) {
            Some(row) => rows::int(row, 0)?,
            None => 0,
        };
        let mut docs = found
            .get(1)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(doc)
            .collect::<ApiResult<Vec<_>>>()?;
        let more = docs.len() as i64 > MAX_PAGE;
        if more {
            docs.truncate(MAX_PAGE as usize);
            // The next page starts after the last document of this one.
            version = docs.last().map_or(version, |d| d.version);
        }
        Reply::ok(serde_json::json!({ "version": version, "changes": docs, "more": more }))
    }

    pub(crate) async fn settings_policies(
        &self,
        rq: &Rq<'_>,
        namespace: Option<&str>,
    ) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let user = caller.user_id.as_str();
        if let Some(ns) = namespace {
            let ns = validate::token("namespace", ns, 64)?;
            let body: PolicyBody = json_body(rq.headers, rq.body)?;
            let policy = Policy::parse(&body.policy).ok_or_else(|| {
                ApiError::invalid(
                    "policy: must be client_wins, server_wins, most_recent_wins or manual",
                )
            })?;
            self.ports
                .sql()
                .batch(vec![Stmt::new(
                    "INSERT INTO settings_policies (user_id, namespace, policy, updated_at) VALUES (?, ?, ?, ?) \
                     ON CONFLICT(user_id, namespace) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                    vec![user.into(), ns.as_str().into(), policy.as_str().into(), rq.now_ms.into()],
                )])
                .await?;
            return Reply::ok(serde_json::json!({ "namespace": ns, "policy": policy }));
        }
        let found = self
            .ports
            .sql()
            .query(Stmt::new(
                "SELECT namespace, policy FROM settings_policies WHERE user_id = ? ORDER BY namespace",
                vec![user.into()],
            ))
            .await?;
        let policies = found
            .iter()
            .map(|r| Ok(serde_json::json!({ "namespace": rows::text(r, 0)?, "policy": rows::text(r, 1)? })))
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({ "default": Policy::DEFAULT, "policies": policies }))
    }

    pub(crate) async fn settings_conflicts(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, namespace, key, device_id, base_version, server_version, client_value, \
                     client_modified_at, created_at FROM settings_conflicts \
                     WHERE user_id = ? AND resolved_at IS NULL ORDER BY created_at LIMIT 200",
                    vec![c.user_id.as_str().into()],
                )]
            })
            .await?;
        let conflicts = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let value: Option<serde_json::Value> = rows::opt_text(r, 6)?
                    .map(|t| {
                        serde_json::from_str(&t).map_err(|e| ApiError::internal(e.to_string()))
                    })
                    .transpose()?;
                Ok(serde_json::json!({
                    "id": rows::text(r, 0)?,
                    "namespace": rows::text(r, 1)?,
                    "key": rows::text(r, 2)?,
                    "device_id": rows::opt_text(r, 3)?,
                    "base_version": rows::int(r, 4)?,
                    "server_version": rows::int(r, 5)?,
                    "deleted": value.is_none(),
                    "client_value": value,
                    "client_modified_at": rows::timestamp(rows::int(r, 7)?),
                    "created_at": rows::timestamp(rows::int(r, 8)?),
                }))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({ "conflicts": conflicts }))
    }

    pub(crate) async fn resolve_conflict(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "conflict")?;
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT namespace, key, client_value, client_modified_at, base_version, resolved_at \
                     FROM settings_conflicts WHERE id = ? AND user_id = ?",
                    vec![id.as_str().into(), c.user_id.as_str().into()],
                )]
            })
            .await?;
        let row = found
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| ApiError::not_found("conflict"))?;
        if rows::opt_int(row, 5)?.is_some() {
            return Err(already_resolved());
        }
        let body: ResolveBody = json_body(rq.headers, rq.body)?;
        let held = Change {
            namespace: rows::text(row, 0)?,
            key: rows::text(row, 1)?,
            value: rows::opt_text(row, 2)?,
            base_version: rows::int(row, 4)?,
            modified_at: rq.now_ms,
            force: true,
        };
        let (choice, changes) = match (body.choice.as_str(), body.value) {
            ("server", None) => ("manual_server", vec![]),
            ("client", None) => ("manual_client", vec![held]),
            ("value", Some(v)) => {
                let text = v.to_string();
                if v.is_null() {
                    return Err(ApiError::invalid("value: JSON other than null"));
                }
                if text.len() > MAX_VALUE_BYTES {
                    return Err(ApiError::too_large(format!(
                        "value: at most {MAX_VALUE_BYTES} bytes of JSON"
                    )));
                }
                (
                    "manual_value",
                    vec![Change {
                        value: Some(text),
                        ..held
                    }],
                )
            }
            _ => {
                return Err(ApiError::invalid(
                    "use: \"server\" or \"client\" (no value), or \"value\" with a value",
                ))
            }
        };
        let w = self
            .write_settings(
                rq,
                &caller,
                changes,
                Some(Settling {
                    conflict_id: id.clone(),
                    choice,
                }),
            )
            .await?;
        Ok(Reply::ok(serde_json::json!({
            "conflict_id": id,
            "resolution": choice,
            "version": w.version,
            "result": w.results.into_iter().next(),
        }))?
        .warn(w.warning))
    }

    pub(crate) async fn settings_resolutions(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let limit = match query_param(rq.query, "limit") {
            None => 100,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| ApiError::invalid("limit: must be 1 to 500"))?,
        };
        let (_, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    "SELECT id, namespace, key, device_id, policy, outcome, base_version, server_version, version, \
                     conflict_id, at FROM settings_resolutions WHERE user_id = ? ORDER BY at DESC, rowid DESC LIMIT ?",
                    vec![c.user_id.as_str().into(), limit.into()],
                )]
            })
            .await?;
        let log = found
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "id": rows::text(r, 0)?,
                    "namespace": rows::text(r, 1)?,
                    "key": rows::text(r, 2)?,
                    "device_id": rows::opt_text(r, 3)?,
                    "policy": rows::text(r, 4)?,
                    "outcome": rows::text(r, 5)?,
                    "base_version": rows::int(r, 6)?,
                    "server_version": rows::int(r, 7)?,
                    "version": rows::opt_int(r, 8)?,
                    "conflict_id": rows::opt_text(r, 9)?,
                    "at": rows::timestamp(rows::int(r, 10)?),
                }))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Reply::ok(serde_json::json!({ "resolutions": log }))
    }
}

fn already_resolved() -> ApiError {
    ApiError::conflict(
        "conflict_already_resolved",
        "this conflict is already resolved",
    )
}

/// One attempt at a settings write, decided from a snapshot without I/O: the statements (each
/// guarded on the counter swap by `w.writer`), each change's result, and the account's version
/// after it.
struct Plan {
    stmts: Vec<Stmt>,
    results: Vec<ChangeResult>,
    next: i64,
}

/// Who writes, when, and what conflict the write settles.
struct Writing<'a> {
    user: &'a str,
    device: Option<&'a str>,
    /// This attempt's id, set by the counter swap that guards every other statement.
    writer: &'a str,
    now_ms: i64,
    settling: Option<&'a Settling>,
}

fn plan(
    w: &Writing,
    changes: &[Change],
    mut snap: Snapshot,
    new_id: &impl Fn() -> ApiResult<String>,
) -> ApiResult<Plan> {
    let user = w.user;
    let device: Value = w.device.into();
    let guard = || -> Vec<Value> { vec![user.into(), w.writer.into()] };
    let mut next = snap.seq;
    let mut stmts = Vec::new();
    let mut results = Vec::new();
    for c in changes {
        let policy = snap
            .policies
            .get(&c.namespace)
            .copied()
            .unwrap_or(Policy::DEFAULT);
        let slot = (c.namespace.clone(), c.key.clone());
        let held = snap.docs.get(&slot).map(|(d, at)| Held {
            version: d.version,
            modified_at: *at,
        });
        let server_version = held.map_or(0, |h| h.version);
        let decision = if c.force {
            Decision::Apply
        } else {
            decide(policy, c.base_version, c.modified_at, held)
        };
        let log = |outcome: &'static str,
                   version: Option<i64>,
                   conflict: Option<&str>|
         -> ApiResult<Stmt> {
            let mut p: Vec<Value> = vec![
                new_id()?.into(),
                user.into(),
                c.namespace.as_str().into(),
                c.key.as_str().into(),
                device.clone(),
                w.settling
                    .as_ref()
                    .map_or(policy.as_str(), |_| "manual")
                    .into(),
                outcome.into(),
                c.base_version.into(),
                server_version.into(),
                version.into(),
                conflict
                    .or(w.settling.map(|s| s.conflict_id.as_str()))
                    .into(),
                w.now_ms.into(),
            ];
            p.extend(guard());
            Ok(Stmt::new(
                "INSERT INTO settings_resolutions (id, user_id, namespace, key, device_id, policy, outcome, \
                 base_version, server_version, version, conflict_id, at) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 WHERE EXISTS (SELECT 1 FROM sync_counters WHERE user_id = ? AND writer = ?)",
                p,
            ))
        };
        match decision {
            Decision::Apply | Decision::Override { .. } => {
                next += 1;
                let mut p: Vec<Value> = vec![
                    user.into(),
                    c.namespace.as_str().into(),
                    c.key.as_str().into(),
                    c.value.clone().into(),
                    next.into(),
                    c.modified_at.into(),
                    device.clone(),
                ];
                p.extend(guard());
                stmts.push(Stmt::new(
                    "INSERT INTO settings_docs (user_id, namespace, key, value, version, modified_at, device_id) \
                     SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sync_counters WHERE user_id = ? AND writer = ?) \
                     ON CONFLICT(user_id, namespace, key) DO UPDATE SET value = excluded.value, \
                     version = excluded.version, modified_at = excluded.modified_at, device_id = excluded.device_id",
                    p,
                ));
                let resolution = match (decision, &w.settling) {
                    (Decision::Override { outcome }, _) => {
                        stmts.push(log(outcome, Some(next), None)?);
                        Some(Resolution {
                            policy: policy.as_str(),
                            outcome,
                            server_version,
                        })
                    }
                    (_, Some(s)) => {
                        stmts.push(log(s.choice, Some(next), None)?);
                        Some(Resolution {
                            policy: "manual",
                            outcome: s.choice,
                            server_version,
                        })
                    }
                    _ => None,
                };
                let value = c
                    .value
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                let written = Doc {
                    namespace: c.namespace.clone(),
                    key: c.key.clone(),
                    deleted: value.is_none(),
                    value,
                    version: next,
                    modified_at: rows::timestamp(c.modified_at),
                    device_id: w.device.map(str::to_owned),
                };
                snap.docs.insert(slot, (written, c.modified_at));
                results.push(ChangeResult {
                    namespace: c.namespace.clone(),
                    key: c.key.clone(),
                    status: "applied",
                    version: next,
                    resolution,
                    conflict_id: None,
                    server: None,
                });
            }
            Decision::Reject { outcome } => {
                stmts.push(log(outcome, None, None)?);
                results.push(ChangeResult {
                    namespace: c.namespace.clone(),
                    key: c.key.clone(),
                    status: "rejected",
                    version: server_version,
                    resolution: Some(Resolution {
                        policy: policy.as_str(),
                        outcome,
                        server_version,
                    }),
                    conflict_id: None,
                    server: snap.docs.get(&slot).map(|(d, _)| d.clone()),
                });
            }
            Decision::Hold => {
                let id = new_id()?;
                let mut p: Vec<Value> = vec![
                    id.as_str().into(),
                    user.into(),
                    c.namespace.as_str().into(),
                    c.key.as_str().into(),
                    device.clone(),
                    c.base_version.into(),
                    server_version.into(),
                    c.value.clone().into(),
                    c.modified_at.into(),
                    w.now_ms.into(),
                ];
                p.extend(guard());
                stmts.push(Stmt::new(
                    "INSERT INTO settings_conflicts (id, user_id, namespace, key, device_id, base_version, \
                     server_version, client_value, client_modified_at, created_at) \
                     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                     WHERE EXISTS (SELECT 1 FROM sync_counters WHERE user_id = ? AND writer = ?)",
                    p,
                ));
                stmts.push(log("held", None, Some(&id))?);
                results.push(ChangeResult {
                    namespace: c.namespace.clone(),
                    key: c.key.clone(),
                    status: "conflict",
                    version: server_version,
                    resolution: Some(Resolution {
                        policy: "manual",
                        outcome: "held",
                        server_version,
                    }),
                    conflict_id: Some(id),
                    server: snap.docs.get(&slot).map(|(d, _)| d.clone()),
                });
            }
        }
    }
    if let Some(s) = &w.settling {
        if changes.is_empty() {
            // Keeping the server's document: only the record changes.
            let mut p: Vec<Value> = vec![
                new_id()?.into(),
                user.into(),
                s.conflict_id.as_str().into(),
                device.clone(),
                s.choice.into(),
                w.now_ms.into(),
                s.conflict_id.as_str().into(),
            ];
            p.extend(guard());
            stmts.push(Stmt::new(
                "INSERT INTO settings_resolutions (id, user_id, namespace, key, device_id, policy, outcome, \
                 base_version, server_version, version, conflict_id, at) \
                 SELECT ?, ?, c.namespace, c.key, ?, 'manual', ?, c.base_version, c.server_version, NULL, c.id, ? \
                 FROM settings_conflicts c WHERE c.id = ? \
                 AND EXISTS (SELECT 1 FROM sync_counters WHERE user_id = ? AND writer = ?)",
                p,
            ));
        }
        let mut p: Vec<Value> = vec![
            w.now_ms.into(),
            s.choice.into(),
            s.conflict_id.as_str().into(),
            user.into(),
        ];
        p.extend(guard());
        stmts.push(Stmt::new(
            "UPDATE settings_conflicts SET resolved_at = ?, resolution = ? \
             WHERE id = ? AND user_id = ? AND resolved_at IS NULL \
             AND EXISTS (SELECT 1 FROM sync_counters WHERE user_id = ? AND writer = ?)",
            p,
        ));
    }
    Ok(Plan {
        stmts,
        results,
        next,
    })
}

/// What a settings write did: the account's version after it, each change's result, and a
/// warning when its events were logged but not sent.
struct Written {
    version: i64,
    results: Vec<ChangeResult>,
    warning: Option<String>,
}

/// What tells the account's devices what changed (so they ask for the delta) and which
/// changes wait for a person.
fn settings_events(version: i64, results: &[ChangeResult]) -> Vec<NewEvent> {
    let changed: Vec<_> = results
        .iter()
        .filter(|r| r.status == "applied")
        .map(
            |r| serde_json::json!({ "namespace": r.namespace, "key": r.key, "version": r.version }),
        )
        .collect();
    let mut events = Vec::new();
    if !changed.is_empty() {
        events.push(NewEvent::to_all(
            names::SETTINGS_CHANGED,
            serde_json::json!({ "version": version, "changes": changed }),
        ));
    }
    events.extend(results.iter().filter_map(|r| {
        r.conflict_id.as_ref().map(|id| {
            NewEvent::to_all(
                names::SETTINGS_CONFLICT,
                serde_json::json!({ "conflict_id": id, "namespace": r.namespace, "key": r.key }),
            )
        })
    }));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_of_the_right_form_on_no_such_day_is_422_and_a_wrong_form_400() {
        assert!(timestamp_ms("t", "2026-01-01T10:00:00Z").is_ok());
        assert!(timestamp_ms("t", "2026-01-01T10:00:00.25+02:00").is_ok());
        let status = |raw: &str| timestamp_ms("t", raw).map_err(|e| e.status.as_u16()).err();
        assert_eq!(status("2026-02-30T10:00:00Z"), Some(422));
        for wrong in [
            "soon",
            "2026-13-01T10:00:00Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00:00.Z",
            "２026-01-01T10:00:00Z",
            "2026-01-01T10:00:00\u{2212}05:00",
        ] {
            assert_eq!(status(wrong), Some(400), "{wrong}");
        }
    }
}
