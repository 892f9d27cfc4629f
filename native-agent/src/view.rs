//! `udc-agent remote view DEVICE [--control] [--snapshot PATH]`: the controlling side. It asks
//! for a session, waits for the target's answer, offers a peer connection (video to receive, an
//! input data channel), decodes the screen, and sends input.
//!
//! Standard input drives it, one JSON value per line: an array of input events (as
//! `POST /remote/session/{id}/input` takes them) is sent on the data channel — or relayed through
//! the host while there is no peer-to-peer path — `{"snapshot": "out.png"}` saves the latest
//! picture, and `{"keyframe": true}` asks the target for a keyframe (as a lost packet does).
//! On a desktop it also shows the screen in a window (`window`), whose input drives a control
//! session and whose closing ends it. End of input (without a window), `--snapshot` without
//! `--control`, or either side ending the session
//! ends it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use udc_client::events::{InputEvent, SessionEnd, SessionEvent, SessionState};
use udc_hub::names;
use udc_hub::{ClientFrame, HubFrame};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::client::Client;
use crate::context::Context;
use crate::output::say;
use crate::peer::{self, Peer};
use crate::realtime::{Incoming, Socket};
use crate::remote::HEARTBEAT_EVERY;
use crate::store::{Session, Store};
use crate::video::{Picture, VideoDecoder};
use crate::watch::{connect, PING_EVERY};
use crate::window::{ViewerWindow, WindowEvent};

pub struct ViewOptions {
    /// The target's name or id.
    pub device: String,
    pub control: bool,
    /// Show the screen in a window (a desktop session, no --snapshot); closing it ends the session.
    pub window: bool,
    pub snapshot: Option<PathBuf>,
    /// Seconds.
    pub max_duration: u32,
    /// The target's screen to show (its id, or `all`); its primary one when None.
    pub screen: Option<String>,
}

/// How long to wait for the target's owner (the host expires an unanswered request at 60 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(65);
const CONNECT_WITHIN: Duration = Duration::from_secs(15);

/// How many pictures were decoded, and the latest.
type Latest = (u64, Option<Arc<Picture>>);

pub async fn view(cx: Context<'_>, opts: &ViewOptions) -> Result<()> {
    let Context {
        client,
        store,
        session,
        json,
    } = cx;
    let token = session.access_token(client, store).await?;
    let target = client
        .devices(&token)
        .await?
        .into_iter()
        .find(|d| d.name == opts.device || d.id == opts.device)
        .ok_or_else(|| anyhow!("no device \"{}\" in this account", opts.device))?;
    // The socket first: the answer may come the moment the request is made.
    let mut attempt = 0;
    let mut socket = connect(client, store, session, None, &mut attempt).await?;
    let mode = if opts.control {
        "view_and_control"
    } else {
        "view_only"
    };
    let s = client
        .request_remote(&token, &target.id, mode, opts.max_duration)
        .await?;
    let id = s.id.clone();
    say(
        json,
        "requested",
        json!({ "session_id": id, "target": target.name, "mode": mode }),
        format!("Asked \"{}\" to {mode}; waiting for its owner", target.name),
    );
    let result = run(
        client,
        store,
        session,
        opts,
        json,
        &mut socket,
        &id,
        &target.id,
    )
    .await;
    // However it went, the session ends here (the target may have ended it already).
    let token = session.access_token(client, store).await?;
    let ended = match client.end_remote(&token, &id).await {
        Ok(s) => Ok(s),
        // Already over (the target ended it, or it was never approved): say how.
        Err(_) => client.remote_session(&token, &id).await,
    };
    if let Some(s) = ended.ok().filter(|s| s.state == SessionState::Ended) {
        say(
            json,
            "ended",
            json!({ "session_id": id, "reason": s.end_reason }),
            format!(
                "Session {id} ended ({})",
                s.end_reason.as_deref().unwrap_or("")
            ),
        );
    }
    socket.close().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run(
    client: &Client,
    store: &Store,
    session: &mut Session,
    opts: &ViewOptions,
    json: bool,
    socket: &mut Socket,
    id: &str,
    target: &str,
) -> Result<()> {
    // The target's answer.
    let answered = tokio::time::timeout(ANSWER_WITHIN, async {
        loop {
            match socket.next().await {
                Incoming::Frame(HubFrame::Event(e)) => {
                    let _ = socket.send(&ClientFrame::Ack { seq: e.seq }).await;
                    let s = serde_json::from_value::<SessionEvent>(e.data).ok();
                    match (e.event.as_str(), s) {
                        (names::REMOTE_APPROVED, Some(s)) if s.session.id == id => return Ok(true),
                        (names::REMOTE_DENIED, Some(s)) if s.session.id == id => return Ok(false),
                        _ => {}
                    }
                }
                Incoming::Closed { reason, .. } => bail!("the hub closed the socket: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| anyhow!("nobody answered within {ANSWER_WITHIN:?}"))??;
    if !answered {
        say(
            json,
            "denied",
            json!({ "session_id": id }),
            "The target's owner said no".into(),
        );
        bail!("the request was denied");
    }
    say(
        json,
        "approved",
        json!({ "session_id": id }),
        "Approved".into(),
    );

    let token = session.access_token(client, store).await?;
    let (found, mut candidates) = tokio::sync::mpsc::unbounded_channel();
    let mut peer = Peer::open(
        crate::codec::offered(),
        client.ice_servers(&token).await?,
        Box::new(move |c| {
            let _ = found.send(c);
        }),
    )
    .await?;
    peer.pc
        .add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await?;
    let channel = peer.pc.create_data_channel("input", None).await?;
    let offer = peer.pc.create_offer(None).await?;
    let offer = peer.local(offer).await?;
    socket
        .send(&ClientFrame::Signal {
            to_device: target.to_owned(),
            payload: peer::signal(id, &offer)?,
            reference: None,
        })
        .await?;

    let (pictures_tx, mut pictures) = watch::channel::<Latest>((0, None));
    let (ask_keyframe, keyframe_asks) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut keyframe_asks = Some(keyframe_asks);
    let mut decoding = None;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut channel_open = false;
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut connect_by = Some(Instant::now() + CONNECT_WITHIN);
    let mut seen = 0u64;
    let (window_tx, mut window_events) = tokio::sync::mpsc::unbounded_channel();
    let mut window: Option<ViewerWindow> = None;
    let mut window_failed = false;
    // The kinds of the candidates this side offered, for the "connected" line.
    let mut sent_kinds: Vec<String> = Vec::new();
    let outcome: Result<()> = async { loop {
        tokio::select! {
            _ = ping.tick() => { let _ = socket.send(&ClientFrame::Ping).await; }
            Some(candidate) = candidates.recv() => {
                sent_kinds.push(peer::candidate_kind(&candidate).to_owned());
                socket.send(&ClientFrame::Signal {
                    to_device: target.to_owned(),
                    payload: peer::candidate_signal(id, &candidate)?,
                    reference: None,
                }).await?;
            }
            _ = beat.tick() => {
                let token = session.access_token(client, store).await?;
                if let Err(e) = client.remote_action(&token, id, "heartbeat").await {
                    bail!("the session is over: {e}");
                }
            }
            _ = tokio::time::sleep_until(connect_by.unwrap_or_else(Instant::now).into()), if connect_by.is_some() => {
                bail!("no connection to the target within {CONNECT_WITHIN:?}");
            }
            frame = socket.next() => match frame {
                Incoming::Frame(HubFrame::Signal { from_device, payload }) if from_device == target => {
                    match peer::read_signal(&payload) {
                        Some((sid, peer::Signal::Description(answer))) if sid == id => {
                            peer.pc.set_remote_description(*answer).await?;
                        }
                        Some((sid, peer::Signal::Candidate(c))) if sid == id => {
                            if let Err(e) = peer.pc.add_ice_candidate(c).await {
                                eprintln!("udc-agent: a candidate of the target not used: {e}");
                            }
                        }
                        _ => {}
                    }
                }
                Incoming::Frame(HubFrame::Event(e)) => {
                    let _ = socket.send(&ClientFrame::Ack { seq: e.seq }).await;
                    if e.event == names::REMOTE_SESSION_END
                        && serde_json::from_value::<SessionEnd>(e.data)
                            .is_ok_and(|end| end.session_id == id)
                    {
                        return Ok(());
                    }
                }
                Incoming::Closed { reason, .. } => bail!("the hub closed the socket: {reason}"),
                _ => {}
            },
            changed = peer.state.changed() => {
                if changed.is_err() { bail!("the peer connection went away"); }
                let state = *peer.state.borrow();
                match state {
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        say(json, "disconnected", json!({ "session_id": id, "state": state.to_string() }), format!("The peer connection is {state}"));
                        return Ok(());
                    }
                    _ => {}
                }
            }
            Some(track) = peer.tracks.recv() => {
                if let Some(asks) = keyframe_asks.take() {
                    decoding = Some(tokio::spawn(decode(track, pictures_tx.clone(), asks)));
                }
            }
            event = channel.poll() => match event {
                // Input and video both go peer to peer from here.
                Some(DataChannelEvent::OnOpen) if !channel_open => {
                    channel_open = true;
                    connect_by = None;
                    say(json, "connected", json!({ "session_id": id, "candidates": sent_kinds }), "Connected peer to peer".into());
                    if let Some(screen) = &opts.screen {
                        channel.send_text(&json!({ "screen": screen }).to_string()).await?;
                    }
                }
                Some(DataChannelEvent::OnMessage(msg)) => from_target(&msg.data, id, json),
                // The target closed it: the session is over (its end event may come after).
                Some(DataChannelEvent::OnClose) | None if channel_open => {
                    say(json, "disconnected", json!({ "session_id": id, "state": "closed" }), "The target closed the connection".into());
                    return Ok(());
                }
                Some(DataChannelEvent::OnClose) | None => bail!("the input channel closed"),
                _ => {}
            },
            changed = pictures.changed() => {
                if changed.is_err() { bail!("the video stopped"); }
                let (n, picture) = pictures.borrow_and_update().clone();
                let Some(picture) = picture else { continue };
                if seen == 0 {
                    say(json, "frame", json!({ "session_id": id, "width": picture.width, "height": picture.height }),
                        format!("Receiving {}x{} video", picture.width, picture.height));
                    if opts.window {
                        let title = format!("{} — udc ({})", opts.device, if opts.control { "control" } else { "view only" });
                        window = Some(ViewerWindow::open(title, opts.control, window_tx.clone()));
                        say(json, "window", json!({ "session_id": id }), "Showing it in a window; closing the window ends the session".into());
                    }
                    if let Some(path) = &opts.snapshot {
                        save(&picture, path, json)?;
                        if !opts.control {
                            return Ok(());
                        }
                    }
                }
                if let Some(w) = &window {
                    w.show(picture);
                }
                seen = n;
            }
            line = stdin.next_line(), if stdin_open => match line? {
                None => {
                    stdin_open = false;
                    // A window is what the person uses: its closing ends the session.
                    if opts.window && !window_failed {
                        continue;
                    }
                    // Nothing more to send: a viewer without a snapshot to wait for is done.
                    if opts.control || opts.snapshot.is_none() || seen > 0 {
                        return Ok(());
                    }
                }
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    let value: Value = match serde_json::from_str(&line) {
                        Ok(v) => v,
                        Err(e) => { eprintln!("udc-agent: not JSON: {e}"); continue; }
                    };
                    if value["keyframe"] == true {
                        let _ = ask_keyframe.send(());
                        say(json, "keyframe_asked", json!({ "session_id": id }), "Asked for a keyframe".into());
                        continue;
                    }
                    if value.get("screen").is_some() {
                        if !channel_open {
                            eprintln!("udc-agent: not connected yet: a screen is chosen once connected");
                            continue;
                        }
                        channel.send_text(&value.to_string()).await?;
                        continue;
                    }
                    if let Some(path) = value["snapshot"].as_str() {
                        let picture = pictures.borrow().1.clone();
                        match picture {
                            Some(p) => save(&p, &PathBuf::from(path), json)?,
                            None => eprintln!("udc-agent: no picture yet"),
                        }
                        continue;
                    }
                    if let Err(e) = serde_json::from_value::<Vec<InputEvent>>(value.clone()) {
                        eprintln!("udc-agent: not a list of input events: {e}");
                        continue;
                    }
                    send_input(&value, channel_open.then_some(&channel), client, store, session, id, json, true).await?;
                }
            },
            Some(event) = window_events.recv() => match event {
                WindowEvent::Input(events) => {
                    let value = serde_json::to_value(&events)?;
                    // Said for --json only: a line per mouse move would flood a person's terminal.
                    send_input(&value, channel_open.then_some(&channel), client, store, session, id, json, json).await?;
                }
                WindowEvent::Closed => return Ok(()),
                WindowEvent::Failed(e) => {
                    window = None;
                    window_failed = true;
                    // Nothing would be left to end it by: no window, and no input to read.
                    if !stdin_open {
                        bail!("no window could be opened ({e})");
                    }
                    eprintln!("udc-agent: no window ({e}); the session goes on without one");
                }
            },
        }
    } }
    .await;
    if let Some(d) = decoding {
        d.abort();
    }
    let _ = peer.pc.close().await;
    outcome
}

/// What the target says on the data channel: its screens, which one it shows, or why it did not
/// show the one asked for.
fn from_target(message: &[u8], id: &str, json: bool) {
    let Ok(value) = serde_json::from_slice::<Value>(message) else {
        return;
    };
    if let Some(error) = value["error"].as_str() {
        eprintln!("udc-agent: the target says: {error}");
    } else if let Some(screens) = value["screens"].as_array() {
        let names: Vec<String> = screens
            .iter()
            .map(|s| {
                format!(
                    "{} ({}x{}{})",
                    s["id"].as_str().unwrap_or("?"),
                    s["width"],
                    s["height"],
                    if s["primary"] == true {
                        ", primary"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        say(
            json,
            "screens",
            json!({ "session_id": id, "screens": screens, "screen": value["screen"] }),
            format!("Its screens: {} (--screen ID or all)", names.join(", ")),
        );
    } else if let Some(screen) = value["screen"].as_str() {
        say(
            json,
            "screen",
            json!({ "session_id": id, "screen": screen }),
            format!("Showing its screen {screen}"),
        );
    }
}

/// Sends input events (a JSON list) on the data channel when it is open, else through the host;
/// with `tell`, says which way they went.
#[allow(clippy::too_many_arguments)]
async fn send_input(
    value: &Value,
    channel: Option<&Arc<dyn DataChannel>>,
    client: &Client,
    store: &Store,
    session: &mut Session,
    id: &str,
    json: bool,
    tell: bool,
) -> Result<()> {
    let via = if let Some(channel) = channel {
        channel.send_text(&value.to_string()).await?;
        "webrtc"
    } else {
        let token = session.access_token(client, store).await?;
        if let Err(e) = client.relay_input(&token, id, value).await {
            eprintln!("udc-agent: input not sent: {e}");
            return Ok(());
        }
        "relay"
    };
    if tell {
        say(
            json,
            "sent",
            json!({ "session_id": id, "via": via }),
            format!("sent input ({via})"),
        );
    }
    Ok(())
}

fn save(picture: &Picture, path: &PathBuf, json: bool) -> Result<()> {
    picture.save_png(path)?;
    say(
        json,
        "snapshot",
        json!({ "path": path, "width": picture.width, "height": picture.height }),
        format!("Saved {}", path.display()),
    );
    Ok(())
}

/// Reassembles the track's RTP packets into access units (the marker bit ends one; a gap in
/// sequence numbers drops it, and asks the target for a keyframe) and decodes them. `asks` are
/// keyframe requests from the person (a `{"keyframe": true}` line).
async fn decode(
    track: Arc<dyn TrackRemote>,
    pictures: watch::Sender<Latest>,
    mut asks: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let mut decoder = match VideoDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("udc-agent: {e}");
            return;
        }
    };
    let mut depacketizer = H264Packet::default();
    let mut unit: Vec<u8> = Vec::new();
    let mut next_seq: Option<u16> = None;
    let mut broken = false;
    let mut after_loss = AfterLoss::default();
    let mut count = 0u64;
    let mut media_ssrc = None;
    let mut last_ask: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            event = track.poll() => event,
            Some(()) = asks.recv() => {
                if let Some(ssrc) = media_ssrc {
                    ask_for_keyframe(track.as_ref(), ssrc).await;
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        let seq = packet.header.sequence_number;
        if next_seq.is_some_and(|n| n != seq) {
            broken = true;
        }
        next_seq = Some(seq.wrapping_add(1));
        match depacketizer.depacketize(&Bytes::from(packet.payload.to_vec())) {
            Ok(nal) => unit.extend_from_slice(&nal),
            Err(_) => broken = true,
        }
        if !packet.header.marker {
            continue;
        }
        media_ssrc = Some(packet.header.ssrc);
        let decodable = after_loss.admit(!broken, &unit);
        // A lost packet spoils every picture until the next keyframe: ask for one at once, and
        // again (at most every quarter second) with each picture that comes before it, rather
        // than wait for the periodic one. A packet that came out of order counts as lost.
        if after_loss.waiting && last_ask.is_none_or(|t| t.elapsed() > Duration::from_millis(250)) {
            last_ask = Some(Instant::now());
            ask_for_keyframe(track.as_ref(), packet.header.ssrc).await;
        }
        if decodable {
            match decoder.decode(&unit) {
                Ok(Some(picture)) => {
                    count += 1;
                    let _ = pictures.send((count, Some(Arc::new(picture))));
                }
                Ok(None) => {}
                Err(e) => eprintln!("udc-agent: {e}"),
            }
        }
        unit.clear();
        broken = false;
    }
}

/// Which access units may be decoded: after a loss, the pictures that follow refer to what was
/// lost and would show as smears, so none is decoded until a keyframe (an IDR) comes.
#[derive(Default)]
struct AfterLoss {
    waiting: bool,
}

impl AfterLoss {
    /// Whether to decode `unit`, which arrived whole or not (`complete`).
    fn admit(&mut self, complete: bool, unit: &[u8]) -> bool {
        if !complete {
            self.waiting = true;
            return false;
        }
        if self.waiting && crate::video::nal_types(unit).contains(&5) {
            self.waiting = false;
        }
        !self.waiting && !unit.is_empty()
    }
}

/// A Picture Loss Indication for the stream `media_ssrc`: the sender answers with a keyframe.
async fn ask_for_keyframe(track: &dyn TrackRemote, media_ssrc: u32) {
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
        eprintln!("udc-agent: no keyframe request: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_loss_nothing_is_decoded_until_a_keyframe() {
        let idr = [0, 0, 0, 1, 0x67, 0, 0, 1, 0x68, 0, 0, 1, 0x65];
        let delta = [0, 0, 1, 0x41];
        let mut gate = AfterLoss::default();
        assert!(gate.admit(true, &delta), "a whole picture, nothing lost");
        assert!(!gate.admit(false, &delta), "a picture missing a packet");
        // The pictures after it refer to it: held back, however whole, until a keyframe.
        assert!(!gate.admit(true, &delta));
        assert!(gate.waiting);
        assert!(!gate.admit(false, &idr), "a keyframe missing a packet");
        assert!(gate.admit(true, &idr));
        assert!(gate.admit(true, &delta));
        assert!(!gate.admit(true, &[]), "nothing to decode");
    }
}
