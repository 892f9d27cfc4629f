//! Remote control on this device: the API's session calls, the owner's unattended settings
//! (`remote allow`), the capability a serving device advertises, and serving itself
//! (`serve.rs`: X11 and Windows).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
pub use udc_client::events::RemoteSession;

use crate::client::Client;
use crate::store::Store;

/// How often a live session's heartbeat is sent (the server ends it after 15 s of silence).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct SessionBody {
    session: RemoteSession,
}

impl Client {
    /// Asks `target` for a session (`view_only` or `view_and_control`, up to `max_duration` s).
    pub async fn request_remote(
        &self,
        token: &str,
        target: &str,
        mode: &str,
        max_duration: u32,
    ) -> crate::client::Result<RemoteSession> {
        let body =
            json!({ "target_device_id": target, "mode": mode, "max_duration": max_duration });
        let b: SessionBody = self
            .call_with(
                Method::POST,
                "/remote/session/request",
                Some(token),
                Some(&body),
                &[],
            )
            .await?;
        Ok(b.session)
    }

    /// Input through the host, for when there is no peer-to-peer path.
    pub async fn relay_input(
        &self,
        token: &str,
        id: &str,
        events: &Value,
    ) -> crate::client::Result<()> {
        let _: Value = self
            .call_with(
                Method::POST,
                &format!("/remote/session/{id}/input"),
                Some(token),
                Some(&json!({ "events": events })),
                &[],
            )
            .await?;
        Ok(())
    }

    /// `approve`, `deny` or `heartbeat` on a session.
    pub async fn remote_action(
        &self,
        token: &str,
        id: &str,
        action: &str,
    ) -> crate::client::Result<RemoteSession> {
        self.session_call(
            Method::POST,
            &format!("/remote/session/{id}/{action}"),
            token,
        )
        .await
    }

    pub async fn remote_session(
        &self,
        token: &str,
        id: &str,
    ) -> crate::client::Result<RemoteSession> {
        self.session_call(Method::GET, &format!("/remote/session/{id}"), token)
            .await
    }

    pub async fn end_remote(&self, token: &str, id: &str) -> crate::client::Result<RemoteSession> {
        self.session_call(Method::DELETE, &format!("/remote/session/{id}"), token)
            .await
    }

    async fn session_call(
        &self,
        method: Method,
        path: &str,
        token: &str,
    ) -> crate::client::Result<RemoteSession> {
        let b: SessionBody = self.call_with(method, path, Some(token), None, &[]).await?;
        Ok(b.session)
    }
}

/// Devices this one lets in without asking, and for what.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Unattended {
    /// device id -> `view_only` or `view_and_control`
    pub devices: BTreeMap<String, String>,
}

impl Unattended {
    fn path(store: &Store) -> PathBuf {
        store.dir().join("remote-allow.json")
    }

    pub fn load(store: &Store) -> Result<Unattended> {
        match std::fs::read_to_string(Self::path(store)) {
            Ok(text) => Ok(serde_json::from_str(&text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Unattended::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn save(&self, store: &Store) -> Result<()> {
        std::fs::create_dir_all(store.dir())?;
        std::fs::write(Self::path(store), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    /// Whether `device` may have `mode` without asking: control covers viewing.
    pub fn allows(&self, device: &str, mode: &str) -> bool {
        match self.devices.get(device).map(String::as_str) {
            Some("view_and_control") => true,
            Some("view_only") => mode == "view_only",
            _ => false,
        }
    }
}

/// What a device serving remote sessions says in its capabilities: the web app offers View and
/// Control for it.
pub const CAPABILITY: &str = "remote_control";

#[cfg(any(target_os = "linux", windows))]
mod serve;
#[cfg(any(target_os = "linux", windows))]
pub use serve::serve;

/// Serving needs this system's screen and input: X11 and Windows so far (macOS next).
#[cfg(not(any(target_os = "linux", windows)))]
pub async fn serve(_: crate::context::Context<'_>) -> Result<()> {
    Err(anyhow::anyhow!(
        "serving this screen is not built for {} yet: `remote serve` runs on Linux (X11) and Windows",
        std::env::consts::OS
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unattended_control_covers_viewing_but_not_the_reverse() {
        let mut u = Unattended::default();
        u.devices.insert("a".into(), "view_and_control".into());
        u.devices.insert("b".into(), "view_only".into());
        assert!(u.allows("a", "view_only") && u.allows("a", "view_and_control"));
        assert!(u.allows("b", "view_only") && !u.allows("b", "view_and_control"));
        assert!(!u.allows("c", "view_only"));
    }
}
