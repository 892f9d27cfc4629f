//! `udc-agent remote serve` (X11 on Linux, GDI and SendInput on Windows): the controlled side of remote control. It answers
//! requests — at once for devices its owner allowed unattended (`remote allow`), by asking the
//! owner at the terminal otherwise, and denying when nobody can be asked — keeps each live
//! session's heartbeat, replays relayed input (only for `view_and_control` sessions), and says,
//! for the log and the person at the screen, when it is being controlled and when that ends.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::json;
use udc_client::events::RemoteSession;
use udc_client::events::{Mode, RemoteInput, SessionEnd, SessionEvent, SessionState};
use udc_hub::names;
use udc_hub::{ClientFrame, HubFrame};

use crate::client::Client;
use crate::context::Context;
use crate::output::say;
use crate::realtime::Incoming;
use crate::store::Store;
use crate::watch::{self, PING_EVERY};

use super::{Unattended, CAPABILITY, HEARTBEAT_EVERY};

/// A viewer's ICE candidates taken per session: a browser offers a handful per interface and
/// server; more is a peer flooding this device.
const MAX_CANDIDATES: usize = 64;
/// How long the owner has to answer at the terminal.
const ASK_AT_MOST: Duration = Duration::from_secs(55);

/// Adds `CAPABILITY` to this device's capabilities (`serving`), or takes it away.
async fn advertise(
    client: &Client,
    store: &Store,
    session: &mut crate::store::Session,
    me: &str,
    serving: bool,
) -> Result<()> {
    let token = session.access_token(client, store).await?;
    let caps = client.device(&token, me).await?.capabilities;
    if caps.iter().any(|c| c == CAPABILITY) == serving {
        return Ok(());
    }
    let mut caps: Vec<String> = caps.into_iter().filter(|c| c != CAPABILITY).collect();
    if serving {
        caps.push(CAPABILITY.to_owned());
    }
    client
        .update_device(&token, me, &json!({ "capabilities": caps }))
        .await?;
    Ok(())
}

/// Asks the person at this device's terminal; nobody there means no.
async fn ask_owner(requester: &str, session: &RemoteSession) -> bool {
    // The question goes to standard error: a terminal to read it on too (`run --log` sends it
    // to the log, where nobody would see it in time).
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
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
    /// The viewer's ICE candidates taken so far (a viewer sending without end is cut off).
    candidates: usize,
    stream: Option<crate::stream::Streaming>,
}

impl Live {
    /// Ends its stream, if any (capture stops, the peer connection closes).
    async fn stop(self) {
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
    let me = session.device()?;
    // Capture and the pointer count the screen's real pixels on a scaled display: a process
    // that does not say it knows of scaling is shown a scaled-down screen by Windows.
    #[cfg(windows)]
    if enigo::set_dpi_awareness().is_err() {
        eprintln!("udc-agent: could not declare this process DPI aware: on a scaled display the picture may be scaled down");
    }
    // Without it the web app offers no View or Control here; serving still works for agents.
    if let Err(e) = advertise(client, store, session, &me, true).await {
        eprintln!("udc-agent: could not say this device serves remote sessions: {e:#}");
    }
    let injector = std::sync::Arc::new(std::sync::Mutex::new(crate::input::Injector::open(None)?));
    let mut live: BTreeMap<String, Live> = BTreeMap::new();
    // This device's ICE candidates for each session's viewer: (session, viewer, candidate).
    let (found, mut candidates) =
        tokio::sync::mpsc::unbounded_channel::<(String, String, crate::peer::Candidate)>();
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
                                crate::input::let_go(&injector).await;
                            }
                            say(json, "ended", json!({ "session_id": id, "reason": e.code() }), format!("remote session {id} is over ({e})"));
                        }
                    }
                }
                Some((id, viewer, candidate)) = candidates.recv() => {
                    let sent = socket.send(&ClientFrame::Signal {
                        to_device: viewer,
                        payload: crate::peer::candidate_signal(&id, &candidate)?,
                        reference: None,
                    }).await;
                    if sent.is_err() {
                        break None;
                    }
                }
                // Stopped by its owner (Ctrl-C): the web app stops offering this device, and
                // whatever a session held down is let go of.
                _ = tokio::signal::ctrl_c() => {
                    for (_, l) in std::mem::take(&mut live) {
                        l.stop().await;
                    }
                    crate::input::let_go(&injector).await;
                    if let Err(e) = advertise(client, store, session, &me, false).await {
                        eprintln!("udc-agent: could not withdraw {CAPABILITY}: {e:#}");
                    }
                    socket.close().await;
                    return Ok(());
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
                                            candidates: 0,
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
                                    crate::input::let_go(&injector).await;
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
                    // A viewer's offer, or a candidate of its: only from the device the session
                    // was approved for.
                    Incoming::Frame(HubFrame::Signal { from_device, payload }) => {
                        let Some((id, signal)) = crate::peer::read_signal(&payload) else { continue };
                        let Some(l) = live.get_mut(&id).filter(|l| l.requester == from_device) else { continue };
                        let offer = match signal {
                            crate::peer::Signal::Description(offer) => *offer,
                            crate::peer::Signal::Candidate(c) => {
                                l.candidates += 1;
                                if l.candidates > MAX_CANDIDATES {
                                    continue;
                                }
                                if let Some(stream) = &l.stream {
                                    if let Err(e) = stream.add_candidate(c).await {
                                        eprintln!("udc-agent: session {id}: a candidate not used: {e}");
                                    }
                                }
                                continue;
                            }
                        };
                        if let Some(old) = l.stream.take() {
                            old.stop().await;
                        }
                        let token = session.access_token(client, store).await?;
                        let ice = client.ice_servers(&token).await?;
                        let control = l.mode == Mode::ViewAndControl;
                        let to_viewer = {
                            let (found, id, viewer) = (found.clone(), id.clone(), from_device.clone());
                            Box::new(move |c| { let _ = found.send((id.clone(), viewer.clone(), c)); })
                        };
                        match crate::stream::answer(offer, ice, to_viewer, id.clone(), control, injector.clone(), json).await {
                            Ok((stream, answer)) => {
                                l.stream = Some(stream);
                                socket.send(&ClientFrame::Signal {
                                    to_device: from_device,
                                    payload: crate::peer::signal(&id, &answer)?,
                                    reference: None,
                                }).await?;
                            }
                            Err(e) => eprintln!("udc-agent: session {id}: no peer connection: {e:#}"),
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
