//! `udc-agent remote serve`: the controlled side of remote control. It answers requests — at
//! once for devices its owner allowed unattended (`remote allow`), by asking the owner at the
//! terminal otherwise, and denying when nobody can be asked — keeps each live session's
//! heartbeat, replays relayed input (only for `view_and_control` sessions), and says, for the
//! log and the person at the screen, when it is being controlled and when that ends.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
pub use udc_client::events::RemoteSession;
use udc_client::events::{Mode, RemoteInput, SessionEnd, SessionEvent, SessionState};
use udc_hub::names;
use udc_hub::{ClientFrame, HubFrame};

use crate::client::Client;
use crate::context::Context;
use crate::output::say;
use crate::realtime::Incoming;
use crate::store::Store;
use crate::watch::{self, PING_EVERY};

/// How often a live session's heartbeat is sent (the server ends it after 15 s of silence).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long the owner has to answer at the terminal.
const ASK_AT_MOST: Duration = Duration::from_secs(55);

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

/// Asks the person at this device's terminal; nobody there means no.
async fn ask_owner(requester: &str, session: &RemoteSession) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let question = format!(
        "\"{requester}\" asks to {} this device for up to {} min. Allow? [y/N] ",
        if session.mode == Mode::ViewAndControl {
            "view and control"
        } else {
            "view"
        },
        session.max_duration / 60
    );
    let answer = tokio::task::spawn_blocking(move || {
        eprint!("{question}");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).is_ok()
            && matches!(line.trim(), "y" | "Y" | "yes")
    });
    // The host expires the request at 60 s; no answer by then is no.
    matches!(
        tokio::time::timeout(ASK_AT_MOST, answer).await,
        Ok(Ok(true))
    )
}

/// A session this device has approved.
struct Live {
    mode: Mode,
    requester: String,
    #[cfg(target_os = "linux")]
    stream: Option<crate::stream::Streaming>,
}

impl Live {
    /// Ends its stream, if any (capture stops, the peer connection closes).
    async fn stop(self) {
        #[cfg(target_os = "linux")]
        if let Some(stream) = self.stream {
            stream.stop().await;
        }
    }
}

pub async fn serve(cx: Context<'_>) -> Result<()> {
    let Context {
        client,
        store,
        session,
        json,
    } = cx;
    let me = session
        .device_id
        .clone()
        .ok_or_else(|| anyhow!("this session has no device: sign in again"))?;
    #[cfg(target_os = "linux")]
    let injector = std::sync::Arc::new(std::sync::Mutex::new(crate::input::X11Injector::open(
        None,
    )?));
    let mut live: BTreeMap<String, Live> = BTreeMap::new();
    let mut attempt = 0u32;
    loop {
        let mut socket = watch::connect(client, store, session, None, &mut attempt).await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        let closed = loop {
            tokio::select! {
                _ = ping.tick() => {
                    if socket.send(&ClientFrame::Ping).await.is_err() {
                        break None;
                    }
                }
                _ = beat.tick() => {
                    let token = session.access_token(client, store).await?;
                    let ids: Vec<String> = live.keys().cloned().collect();
                    for id in ids {
                        if let Err(e) = client.remote_action(&token, &id, "heartbeat").await {
                            // Over (ended elsewhere, or lapsed): stop serving it.
                            if let Some(l) = live.remove(&id) {
                                l.stop().await;
                            }
                            say(json, "ended", json!({ "session_id": id, "reason": e.code() }), format!("remote session {id} is over ({e})"));
                        }
                    }
                }
                frame = socket.next() => match frame {
                    Incoming::Frame(HubFrame::Event(event)) => {
                        let _ = socket.send(&ClientFrame::Ack { seq: event.seq }).await;
                        match event.event.as_str() {
                            names::REMOTE_REQUEST => {
                                let Ok(SessionEvent { session: s }) = serde_json::from_value(event.data) else { continue };
                                if s.target_device_id != me || s.state != SessionState::Pending {
                                    continue;
                                }
                                let token = session.access_token(client, store).await?;
                                let name = client
                                    .device(&token, &s.requester_device_id)
                                    .await
                                    .map(|d| d.name)
                                    .unwrap_or_else(|_| s.requester_device_id.clone());
                                let allowed = Unattended::load(store)?.allows(&s.requester_device_id, s.mode.as_str())
                                    || ask_owner(&name, &s).await;
                                let action = if allowed { "approve" } else { "deny" };
                                match client.remote_action(&token, &s.id, action).await {
                                    Ok(answered) if answered.state == SessionState::Active => {
                                        live.insert(s.id.clone(), Live {
                                            mode: s.mode,
                                            requester: s.requester_device_id.clone(),
                                            #[cfg(target_os = "linux")]
                                            stream: None,
                                        });
                                        say(json, "controlled", json!({ "session_id": s.id, "by": name, "mode": s.mode }),
                                            format!("Being {} by \"{name}\" (session {}); `udc-agent remote end {}` ends it", if s.mode == Mode::ViewAndControl { "controlled" } else { "viewed" }, s.id, s.id));
                                    }
                                    Ok(_) => say(json, "denied", json!({ "session_id": s.id, "by": name }), format!("Denied \"{name}\"")),
                                    Err(e) => eprintln!("udc-agent: could not answer session {}: {e}", s.id),
                                }
                            }
                            names::REMOTE_SESSION_END => {
                                let Ok(SessionEnd { session_id: id, reason, .. }) = serde_json::from_value(event.data) else { continue };
                                if let Some(l) = live.remove(&id) {
                                    l.stop().await;
                                    say(json, "ended", json!({ "session_id": id, "reason": reason }), format!("Remote session {id} ended ({reason})"));
                                }
                            }
                            _ => {}
                        }
                    }
                    // Input relayed through the server (never logged there): only for a live
                    // view_and_control session.
                    Incoming::Frame(HubFrame::Relay { event, data, .. }) if event == names::REMOTE_INPUT => {
                        let RemoteInput { session_id: id, events } = match serde_json::from_value(data) {
                            Ok(input) => input,
                            Err(e) => { eprintln!("udc-agent: unreadable input: {e}"); continue; }
                        };
                        // A view-only session never drives this device, whatever arrives.
                        if live.get(&id).map(|l| l.mode) != Some(Mode::ViewAndControl) {
                            continue;
                        }
                        #[cfg(target_os = "linux")]
                        {
                            let inj = injector.clone();
                            let n = events.len();
                            let done = tokio::task::spawn_blocking(move || -> Result<()> {
                                let inj = inj.lock().map_err(|_| anyhow!("input lock poisoned"))?;
                                events.iter().try_for_each(|e| inj.inject(e))
                            }).await?;
                            match done {
                                Ok(()) => say(json, "input", json!({ "session_id": id, "count": n, "via": "relay" }), format!("input: {n} events")),
                                Err(e) => eprintln!("udc-agent: input not replayed: {e}"),
                            }
                        }
                    }
                    // A viewer's offer: only from the device the session was approved for.
                    #[cfg(target_os = "linux")]
                    Incoming::Frame(HubFrame::Signal { from_device, payload }) => {
                        let Some((id, offer)) = crate::peer::read_signal(&payload) else { continue };
                        let Some(l) = live.get_mut(&id).filter(|l| l.requester == from_device) else { continue };
                        if let Some(old) = l.stream.take() {
                            old.stop().await;
                        }
                        let token = session.access_token(client, store).await?;
                        let ice = client.ice_servers(&token).await?;
                        let control = l.mode == Mode::ViewAndControl;
                        match crate::stream::answer(offer, ice, id.clone(), control, injector.clone(), json).await {
                            Ok((stream, answer)) => {
                                l.stream = Some(stream);
                                socket.send(&ClientFrame::Signal {
                                    to_device: from_device,
                                    payload: crate::peer::signal(&id, &answer)?,
                                    reference: None,
                                }).await?;
                            }
                            Err(e) => eprintln!("udc-agent: session {id}: no peer connection: {e}"),
                        }
                    }
                    Incoming::Frame(HubFrame::Ready { .. }) => {
                        attempt = 0;
                        say(json, "ready", json!({}), "Waiting for remote control requests".into());
                    }
                    Incoming::Frame(_) | Incoming::Unreadable(_) => {}
                    Incoming::Closed { code, reason } => break Some((code, reason)),
                },
            }
        };
        watch::after_close(closed, &mut attempt).await?;
    }
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
