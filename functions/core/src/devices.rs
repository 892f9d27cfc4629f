//! The device registry and trust between a user's own devices. Every query is scoped by the
//! caller's user id: another account's device is simply not found.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use udc_hub::names;
use udc_hub::{DevicePresence, NewEvent, PresenceState, Revoked};

use crate::activity::{Actor, Entry, If, Kind};
use crate::auth::{Caller, Guard};
use crate::error::{ApiError, ApiResult};
use crate::events::{Change, When};
use crate::ports::{Hub, Ports, Row, Sql, Stmt};
use crate::tokens::{self, TokenPair};
use crate::web::{json_body, Reply};
use crate::{rows, validate, Core, Rq};

pub const PLATFORMS: [&str; 7] = [
    "ios", "android", "macos", "windows", "linux", "web", "other",
];
const MAX_CAPABILITIES: usize = 32;

#[derive(Deserialize)]
struct RegisterBody {
    name: String,
    platform: String,
    #[serde(default)]
    os_version: String,
    #[serde(default)]
    app_version: String,
    #[serde(default)]
    capabilities: Vec<String>,
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    os_version: Option<String>,
    app_version: Option<String>,
    capabilities: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TrustBody {
    target_device_id: String,
}

#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub platform: String,
    pub os_version: String,
    pub app_version: String,
    pub capabilities: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_seen_at: String,
    /// Devices this one trusts.
    pub trusts: Vec<String>,
    /// Devices that trust this one.
    pub trusted_by: Vec<String>,
    /// Whether this is the device the request came from.
    pub is_current: bool,
    /// `online` (socket open, heartbeats arriving), `idle` (the device says its user is away)
    /// or `offline`, from the account's hub.
    pub presence: String,
}

#[derive(Serialize)]
struct Registered {
    device: DeviceView,
    tokens: TokenPair,
}

/// A device SELECT with every column `device_view` reads, in its order, followed by `$tail`.
macro_rules! select_devices {
    ($tail:literal) => {
        concat!(
            "SELECT d.id, d.name, d.platform, d.os_version, d.app_version, d.capabilities, ",
            "d.created_at, d.updated_at, d.last_seen_at, ",
            "(SELECT group_concat(t.target_device_id) FROM trust_links t WHERE t.device_id = d.id), ",
            "(SELECT group_concat(t.device_id) FROM trust_links t WHERE t.target_device_id = d.id) ",
            "FROM devices d ",
            $tail
        )
    };
}

fn id_list(value: Option<String>) -> Vec<String> {
    let mut ids: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

fn device_view(row: &Row, caller: &Caller) -> ApiResult<DeviceView> {
    let id = rows::text(row, 0)?;
    let capabilities = serde_json::from_str(&rows::text(row, 5)?)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(DeviceView {
        is_current: caller.device_id.as_deref() == Some(id.as_str()),
        id,
        name: rows::text(row, 1)?,
        platform: rows::text(row, 2)?,
        os_version: rows::text(row, 3)?,
        app_version: rows::text(row, 4)?,
        capabilities,
        created_at: rows::timestamp(rows::int(row, 6)?),
        updated_at: rows::timestamp(rows::int(row, 7)?),
        last_seen_at: rows::timestamp(rows::int(row, 8)?),
        trusts: id_list(rows::opt_text(row, 9)?),
        trusted_by: id_list(rows::opt_text(row, 10)?),
        presence: "offline".to_owned(),
    })
}

/// Presence and the latest sign of life come from the hub; the row's `last_seen_at` is the
/// last registration or token refresh.
fn apply_presence(view: &mut DeviceView, presence: &[DevicePresence], last_seen_ms: i64) {
    if let Some(p) = presence.iter().find(|p| p.device_id == view.id) {
        view.presence = p.state.as_str().to_owned();
        if p.last_seen > last_seen_ms {
            view.last_seen_at = rows::timestamp(p.last_seen);
        }
    }
}

/// A device as other devices see it in events: `is_current` means nothing there.
fn public(device: &DeviceView) -> serde_json::Value {
    let mut v = serde_json::to_value(device).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("is_current");
    }
    v
}

fn platform(raw: &str) -> ApiResult<String> {
    let p = raw.trim().to_ascii_lowercase();
    if PLATFORMS.contains(&p.as_str()) {
        Ok(p)
    } else {
        Err(ApiError::invalid(format!(
            "platform: must be one of {}",
            PLATFORMS.join(", ")
        )))
    }
}

/// Capability names are open-ended (newer agents may know more than this server), but shaped:
/// lowercase identifiers, at most 32 of them, duplicates dropped.
fn capabilities(raw: &[String]) -> ApiResult<String> {
    if raw.len() > MAX_CAPABILITIES {
        return Err(ApiError::invalid(format!(
            "capabilities: at most {MAX_CAPABILITIES}"
        )));
    }
    let mut caps: Vec<&str> = Vec::with_capacity(raw.len());
    for c in raw {
        let ok = (1..=32).contains(&c.len())
            && c.starts_with(|ch: char| ch.is_ascii_lowercase())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !ok {
            return Err(ApiError::invalid(format!(
                "capabilities: {c:?} must be a lowercase identifier (a-z, 0-9, _), 1 to 32 characters"
            )));
        }
        if !caps.contains(&c.as_str()) {
            caps.push(c);
        }
    }
    serde_json::to_string(&caps).map_err(|e| ApiError::internal(e.to_string()))
}

/// Standing: who may act on the account's other devices (remove or edit them, withdraw trust
/// they gave) and answer sign-in requests. A session without a device (it proved the password,
/// or a device with standing approved it), a device another live device trusts, or the
/// account's first device (nobody could vouch for it) while it lives — never the next oldest
/// once it is gone, or retiring a laptop would crown whatever device came second. A device
/// nobody trusts acts on itself only, so it can never gain rights by removing or editing the
/// devices that could.
pub(crate) fn standing_stmt(caller: &Caller) -> Stmt {
    let device = caller.device_id.as_deref().unwrap_or_default();
    Stmt::new(
        "SELECT EXISTS (SELECT 1 FROM trust_links t JOIN devices d ON d.id = t.device_id \
         WHERE t.target_device_id = ? AND t.device_id != t.target_device_id AND d.removed_at IS NULL), \
         (SELECT id FROM devices WHERE user_id = ? ORDER BY created_at, id LIMIT 1)",
        vec![device.into(), caller.user_id.as_str().into()],
    )
}

/// Reads `standing_stmt`'s rows.
pub(crate) fn has_standing(caller: &Caller, found: Option<&Vec<Row>>) -> ApiResult<bool> {
    let Some(device) = caller.device_id.as_deref() else {
        return Ok(true);
    };
    let Some(row) = found.and_then(|r| r.first()) else {
        return Ok(false);
    };
    Ok(rows::int(row, 0)? == 1 || rows::opt_text(row, 1)?.as_deref() == Some(device))
}

pub(crate) fn no_standing(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "device_not_trusted",
        format!(
            "{what} needs a device another of your devices trusts, your first device, \
             or a fresh password sign-in"
        ),
    )
}

fn find_device_stmt(caller: &Caller, id: &str) -> Stmt {
    Stmt::new(
        select_devices!("WHERE d.id = ? AND d.user_id = ? AND d.removed_at IS NULL"),
        vec![id.into(), caller.user_id.as_str().into()],
    )
}

impl<P: Ports> Core<P> {
    async fn find_device(&self, caller: &Caller, id: &str) -> ApiResult<DeviceView> {
        let found = self.ports.sql().query(find_device_stmt(caller, id)).await?;
        let row = found.first().ok_or_else(|| ApiError::not_found("device"))?;
        self.viewed(vec![row], caller)
            .await?
            .pop()
            .ok_or_else(|| ApiError::not_found("device"))
    }

    /// Device rows as the API shows them, with the hub's presence.
    async fn viewed(&self, found: Vec<&Row>, caller: &Caller) -> ApiResult<Vec<DeviceView>> {
        let presence = self.ports.hub().presence(&caller.user_id).await?;
        found
            .into_iter()
            .map(|row| {
                let mut view = device_view(row, caller)?;
                apply_presence(&mut view, &presence, rows::int(row, 8)?);
                Ok(view)
            })
            .collect()
    }

    pub(crate) async fn register_device(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let body: RegisterBody = json_body(rq.headers, rq.body)?;
        if caller.device_id.is_some() {
            return Err(ApiError::conflict(
                "device_already_registered",
                "this session already belongs to a device; sign in again to register another",
            ));
        }
        let name = validate::label("name", &body.name, 64)?;
        let platform = platform(&body.platform)?;
        let os_version = validate::optional_label("os_version", &body.os_version, 64)?;
        let app_version = validate::optional_label("app_version", &body.app_version, 32)?;
        let caps = capabilities(&body.capabilities)?;

        let device_id = self.new_id()?;
        let session_id = self.new_id()?;
        let (refresh, refresh_hash) = tokens::new_refresh(self.ports.random(), &caller.user_id)?;
        let now = rq.now_ms;
        let user = caller.user_id.as_str();
        // The caller's device-less session is swapped for one bound to the new device; every
        // later statement is guarded on that swap, so a concurrent registration or a revoked
        // session creates nothing.
        // The device as it will be, for its event (written in the same batch) and the answer.
        let device = DeviceView {
            id: device_id.clone(),
            name: name.clone(),
            platform: platform.clone(),
            os_version: os_version.clone(),
            app_version: app_version.clone(),
            capabilities: serde_json::from_str(&caps)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            created_at: rows::timestamp(now),
            updated_at: rows::timestamp(now),
            last_seen_at: rows::timestamp(now),
            trusts: Vec::new(),
            trusted_by: Vec::new(),
            is_current: true,
            presence: PresenceState::Offline.as_str().to_owned(),
        };
        let registered = NewEvent::to_all(
            names::DEVICE_REGISTERED,
            serde_json::json!({ "device": public(&device) }),
        );
        let mut change = Change::new(vec![
                Stmt::new(
                    "UPDATE sessions SET revoked_at = ?, revoked_reason = 'device_registered', replaced_by = ? \
                     WHERE id = ? AND revoked_at IS NULL AND device_id IS NULL",
                    vec![now.into(), session_id.as_str().into(), caller.session_id.as_str().into()],
                ),
                Stmt::new(
                    "INSERT INTO devices (id, user_id, name, platform, os_version, app_version, capabilities, \
                     created_at, updated_at, last_seen_at) \
                     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE replaced_by = ?)",
                    vec![
                        device_id.as_str().into(),
                        user.into(),
                        name.into(),
                        platform.into(),
                        os_version.into(),
                        app_version.into(),
                        caps.into(),
                        now.into(),
                        now.into(),
                        now.into(),
                        session_id.as_str().into(),
                    ],
                ),
        ]);
        change.push(Entry::new(Kind::DeviceAdded).on(&device_id).stmt(
            rq,
            user,
            Actor {
                session_id: Some(&session_id),
                device_id: Some(&device_id),
            },
            If::Changed,
        ));
        change.event(user, registered, When::Changed);
        change.extend([
            self.insert_session(
                &session_id,
                user,
                Some(&device_id),
                rq,
                Guard::SessionReplacedBy(&session_id),
            ),
            self.insert_refresh(
                &refresh_hash,
                &session_id,
                now,
                Guard::SessionReplacedBy(&session_id),
            ),
        ]);
        let done = self.commit(change).await?;
        if !done.one(1) {
            return Err(ApiError::unauthorized(
                "session_revoked",
                "this session has ended; sign in again",
            ));
        }
        let tokens = self.token_pair(user, &session_id, Some(device_id.clone()), refresh, now)?;
        Ok(Reply::json(StatusCode::CREATED, Registered { device, tokens })?.warn(done.warning))
    }

    pub(crate) async fn list_devices(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let (caller, found) = self
            .caller_with(rq, |c| {
                vec![Stmt::new(
                    select_devices!(
                        "WHERE d.user_id = ? AND d.removed_at IS NULL ORDER BY d.created_at, d.id"
                    ),
                    vec![c.user_id.as_str().into()],
                )]
            })
            .await?;
        let devices = self
            .viewed(found.first().into_iter().flatten().collect(), &caller)
            .await?;
        Reply::ok(serde_json::json!({ "devices": devices }))
    }

    pub(crate) async fn get_device(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "device")?;
        let (caller, found) = self
            .caller_with(rq, |c| vec![find_device_stmt(c, &id)])
            .await?;
        let row = found
            .first()
            .and_then(|rows| rows.first())
            .ok_or_else(|| ApiError::not_found("device"))?;
        Reply::ok(self.viewed(vec![row], &caller).await?.pop())
    }

    /// The caller, refused unless it is one of `selves` or has standing over other devices.
    async fn caller_acting_on(
        &self,
        rq: &Rq<'_>,
        selves: &[&str],
        what: &str,
    ) -> ApiResult<Caller> {
        let (caller, found) = self.caller_with(rq, |c| vec![standing_stmt(c)]).await?;
        let itself = caller
            .device_id
            .as_deref()
            .is_some_and(|d| selves.contains(&d));
        if !itself && !has_standing(&caller, found.first())? {
            return Err(no_standing(what));
        }
        Ok(caller)
    }

    pub(crate) async fn update_device(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "device")?;
        let caller = self
            .caller_acting_on(rq, &[&id], "changing another device")
            .await?;
        let body: UpdateBody = json_body(rq.headers, rq.body)?;
        if body.name.is_none()
            && body.os_version.is_none()
            && body.app_version.is_none()
            && body.capabilities.is_none()
        {
            return Err(ApiError::invalid(
                "nothing to update: send name, os_version, app_version or capabilities",
            ));
        }
        let name = body
            .name
            .map(|n| validate::label("name", &n, 64))
            .transpose()?;
        let os_version = body
            .os_version
            .map(|v| validate::optional_label("os_version", &v, 64))
            .transpose()?;
        let app_version = body
            .app_version
            .map(|v| validate::optional_label("app_version", &v, 32))
            .transpose()?;
        let caps = body.capabilities.map(|c| capabilities(&c)).transpose()?;
        // The device as it will be, for its event (written with the change) and the answer.
        let mut device = self.find_device(&caller, &id).await?;
        if let Some(name) = &name {
            device.name = name.clone();
        }
        if let Some(v) = &os_version {
            device.os_version = v.clone();
        }
        if let Some(v) = &app_version {
            device.app_version = v.clone();
        }
        if let Some(c) = &caps {
            device.capabilities =
                serde_json::from_str(c).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        device.updated_at = rows::timestamp(rq.now_ms);
        let updated = NewEvent::to_all(
            names::DEVICE_UPDATED,
            serde_json::json!({ "device": public(&device) }),
        );
        let done = self
            .commit(Change::new(vec![Stmt::new(
                "UPDATE devices SET name = COALESCE(?, name), os_version = COALESCE(?, os_version), \
                 app_version = COALESCE(?, app_version), capabilities = COALESCE(?, capabilities), updated_at = ? \
                 WHERE id = ? AND user_id = ? AND removed_at IS NULL",
                vec![
                    name.into(),
                    os_version.into(),
                    app_version.into(),
                    caps.into(),
                    rq.now_ms.into(),
                    id.as_str().into(),
                    caller.user_id.as_str().into(),
                ],
            )])
            .with_event(&caller.user_id, updated, When::Changed))
            .await?;
        if !done.one(0) {
            return Err(ApiError::not_found("device"));
        }
        Ok(Reply::ok(device)?.warn(done.warning))
    }

    pub(crate) async fn remove_device(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let id = validate::id(id, "device")?;
        let caller = self
            .caller_acting_on(rq, &[&id], "removing another device")
            .await?;
        let user = caller.user_id.as_str();
        let now = rq.now_ms;
        // Every statement is scoped by user: a foreign id changes nothing and answers 404.
        let mut change = Change::new(vec![Stmt::new(
            "UPDATE devices SET removed_at = ? WHERE id = ? AND user_id = ? AND removed_at IS NULL",
            vec![now.into(), id.as_str().into(), user.into()],
        )]);
        change.push(Entry::new(Kind::DeviceRemoved).on(&id).stmt(
            rq,
            user,
            Actor::from(&caller),
            If::Changed,
        ));
        change.event(
            user,
            NewEvent::to_all(
                names::DEVICE_REMOVED,
                serde_json::json!({ "device_id": id }),
            ),
            When::Changed,
        );
        change.extend([
                Stmt::new(
                    "UPDATE sessions SET revoked_at = ?, revoked_reason = 'device_removed' \
                     WHERE device_id = ? AND user_id = ? AND revoked_at IS NULL",
                    vec![now.into(), id.as_str().into(), user.into()],
                ),
                Stmt::new(
                    "DELETE FROM trust_links WHERE user_id = ? AND (device_id = ? OR target_device_id = ?)",
                    vec![user.into(), id.as_str().into(), id.as_str().into()],
                ),
        ]);
        let done = self.commit(change).await?;
        if !done.one(0) {
            return Err(ApiError::not_found("device"));
        }
        let hub = self.ports.hub();
        let closed = hub
            .revoke(user, Revoked::Device(id.clone()))
            .await
            .err()
            .map(|e| e.to_string());
        Ok(Reply::no_content()?.warn(closed.or(done.warning)))
    }

    pub(crate) async fn add_trust(&self, rq: &Rq<'_>, id: &str) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let id = validate::id(id, "device")?;
        let body: TrustBody = json_body(rq.headers, rq.body)?;
        let target = validate::body_id("target_device_id", &body.target_device_id)?;
        let mut device = self.find_device(&caller, &id).await?;
        // Only a device itself (or a fresh password sign-in) says whom it trusts; a device must
        // not be able to make the others trust it.
        if caller.device_id.as_ref().is_some_and(|d| *d != id) {
            return Err(ApiError::forbidden(
                "only the device itself can add devices it trusts",
            ));
        }
        if target == id {
            return Err(ApiError::unprocessable(
                "target_device_id: a device cannot trust itself",
            ));
        }
        self.find_device(&caller, &target)
            .await
            .map_err(|_| ApiError::not_found("target device"))?;
        let now = rq.now_ms;
        let user = caller.user_id.as_str();
        // The device as it will be, for the event written with the change.
        if !device.trusts.contains(&target) {
            device.trusts.push(target.clone());
            device.trusts.sort();
        }
        let updated = NewEvent::to_all(
            names::DEVICE_UPDATED,
            serde_json::json!({ "device": public(&device) }),
        );
        let done = self
            .commit(Change::new(vec![Stmt::new(
                "INSERT INTO trust_links (device_id, target_device_id, user_id, created_at) \
                 SELECT ?, ?, ?, ? WHERE \
                 EXISTS (SELECT 1 FROM devices WHERE id = ? AND user_id = ? AND removed_at IS NULL) AND \
                 EXISTS (SELECT 1 FROM devices WHERE id = ? AND user_id = ? AND removed_at IS NULL) \
                 ON CONFLICT (device_id, target_device_id) DO NOTHING",
                vec![
                    id.as_str().into(),
                    target.as_str().into(),
                    user.into(),
                    now.into(),
                    id.as_str().into(),
                    user.into(),
                    target.as_str().into(),
                    user.into(),
                ],
            ), Entry::new(Kind::TrustAdded)
                .on(&target)
                .with(serde_json::json!({ "device_id": id }))
                .stmt(rq, user, Actor::from(&caller), If::Changed)])
            .with_event(user, updated, When::Changed))
            .await?;
        let created = done.one(0);
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(Reply::json(
            status,
            serde_json::json!({ "device_id": id, "target_device_id": target }),
        )?
        .warn(done.warning))
    }

    pub(crate) async fn remove_trust(
        &self,
        rq: &Rq<'_>,
        id: &str,
        target: &str,
    ) -> ApiResult<Reply> {
        let id = validate::id(id, "device")?;
        let target = validate::id(target, "trust link")?;
        // The trusting device withdraws its trust; the trusted one may decline it; anyone else
        // needs standing (a device must not strip the trust that vouches for others).
        let caller = self
            .caller_acting_on(rq, &[&id, &target], "withdrawing another device's trust")
            .await?;
        // The device as it will be, for the event written with the change.
        let mut device = self
            .find_device(&caller, &id)
            .await
            .map_err(|e| match e.status {
                StatusCode::NOT_FOUND => ApiError::not_found("trust link"),
                _ => e,
            })?;
        device.trusts.retain(|t| *t != target);
        let updated = NewEvent::to_all(
            names::DEVICE_UPDATED,
            serde_json::json!({ "device": public(&device) }),
        );
        let done = self
            .commit(
                Change::new(vec![Stmt::new(
                    "DELETE FROM trust_links WHERE device_id = ? AND target_device_id = ? AND user_id = ?",
                    vec![id.as_str().into(), target.as_str().into(), caller.user_id.as_str().into()],
                ), Entry::new(Kind::TrustRemoved)
                    .on(&target)
                    .with(serde_json::json!({ "device_id": id }))
                    .stmt(rq, &caller.user_id, Actor::from(&caller), If::Changed)])
                .with_event(&caller.user_id, updated, When::Changed),
            )
            .await?;
        if !done.one(0) {
            return Err(ApiError::not_found("trust link"));
        }
        Ok(Reply::no_content()?.warn(done.warning))
    }
}
