//! The controlled side of a session's peer connection: answers the viewer's offer, sends the
//! screen as an H.264 track once connected, and replays what arrives on the input data channel —
//! only when the session's mode is `view_and_control`.
//!
//! Capture and encoding run on their own thread at up to `FPS`; the encoded frames go to the
//! track through a two-frame queue, so a slow encoder or link lowers the frame rate instead of
//! building a backlog.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCIceServer};

use crate::input::{Injector, InputEvent};
use crate::output::say;
use crate::peer::{self, Peer};
use crate::screen::{open_choice, Area, Choice, Screen};
use crate::video::{Encoded, VideoEncoder};

/// The most frames per second sent; fewer when the screen is still or the encoder is slower.
pub const FPS: f32 = 30.0;
/// The least time between two keyframes sent because the viewer asked.
const KEYFRAME_AT_MOST_EVERY: Duration = Duration::from_millis(250);
/// How often the encoder is fitted to the congestion controller's estimate.
const FIT_EVERY: Duration = Duration::from_millis(500);
/// How often a screen out of reach is tried again.
const RETRY_CAPTURE: Duration = Duration::from_millis(500);
/// How long the viewer has to connect after the answer.
const CONNECT_WITHIN: Duration = Duration::from_secs(15);

/// A session being streamed; `stop` ends capture and closes the connection.
pub struct Streaming {
    stop: Arc<AtomicBool>,
    pc: Arc<dyn PeerConnection>,
    task: JoinHandle<()>,
}

impl Streaming {
    /// One of the viewer's ICE candidates, as it trickles in.
    pub async fn add_candidate(&self, candidate: RTCIceCandidateInit) -> Result<()> {
        Ok(self.pc.add_ice_candidate(candidate).await?)
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.pc.close().await;
        // The task reports how much it sent; give it a moment to do so.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// Answers `offer` for `session_id`; returns the stream and the answer to signal back (its ICE
/// candidates go to `candidates` as they are found).
#[allow(clippy::too_many_arguments)]
pub async fn answer(
    offer: RTCSessionDescription,
    ice: Vec<RTCIceServer>,
    candidates: peer::OnCandidate,
    session_id: String,
    control: bool,
    injector: Arc<Mutex<Injector>>,
    json: bool,
) -> Result<(Streaming, RTCSessionDescription)> {
    let codec = crate::codec::answering(&offer.sdp)
        .ok_or_else(|| anyhow!("the viewer offered no H.264 this screen can be sent in"))?;
    let mut peer = Peer::open(codec.clone(), ice, candidates).await?;
    let mut ssrc = [0u8; 4];
    getrandom::fill(&mut ssrc).map_err(|e| anyhow!("random: {e}"))?;
    let ssrc = u32::from_le_bytes(ssrc);
    let track = Arc::new(TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            "udc-screen".to_owned(),
            "udc-screen-video".to_owned(),
            "screen".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            }],
        ),
    )?);
    let sender = peer
        .pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await?;
    peer.pc.set_remote_description(offer).await?;
    let answer = peer.pc.create_answer(None).await?;
    let answer = peer.local(answer).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let pc = Arc::clone(&peer.pc);
    let stopping = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        if let Err(e) = peer.connected(CONNECT_WITHIN).await {
            eprintln!("udc-agent: session {session_id}: {e}");
            return;
        }
        let payload_type = match sender.get_parameters().await {
            Ok(p) => p.rtp_parameters.codecs.first().map(|c| c.payload_type),
            Err(_) => None,
        };
        let Some(payload_type) = payload_type else {
            eprintln!("udc-agent: session {session_id}: the viewer accepted no H.264");
            return;
        };
        let shown = Arc::new(Shown::default());
        let inputs = tokio::spawn(take_input(
            peer.channels,
            session_id.clone(),
            control,
            Arc::clone(&injector),
            Arc::clone(&shown),
            json,
        ));
        let (frames, sent_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let asked = Arc::new(Asked::default());
        let requests = tokio::spawn(keyframe_requests(Arc::clone(&track), Arc::clone(&asked)));
        let (tx, mut rx) = mpsc::channel::<Encoded>(2);
        let capture = {
            let (stop, frames, asked, link, shown) = (
                Arc::clone(&stopping),
                Arc::clone(&frames),
                Arc::clone(&asked),
                peer.target.clone(),
                Arc::clone(&shown),
            );
            let id = session_id.clone();
            // The rate the encoder settles at, said when it moves, for the log and the owner.
            let on_rate = move |bps: u32, fps: f32| {
                say(
                    json,
                    "rate",
                    json!({ "session_id": id, "kbps": bps / 1000, "fps": fps }),
                    format!("Sending at {} kbit/s, {fps} frames/s", bps / 1000),
                );
            };
            let id = session_id.clone();
            let injector = Arc::clone(&injector);
            // What is captured, how and at what size, said at the start and on each change. In
            // a control session the pointer's fractions are of that part of the desktop from
            // then on; a view-only session's choice never moves where another's clicks land.
            let on_capture = move |method: &str, area: Area| {
                if control {
                    if let Ok(injector) = injector.lock() {
                        injector.set_area(area);
                    }
                }
                say(
                    json,
                    "capturing",
                    json!({ "session_id": id, "method": method, "x": area.x, "y": area.y,
                            "width": area.width, "height": area.height }),
                    format!(
                        "Capturing the screen at {}x{} ({method})",
                        area.width, area.height
                    ),
                );
            };
            tokio::task::spawn_blocking(move || {
                let hooks = Hooks {
                    on_rate: &on_rate,
                    on_capture: &on_capture,
                };
                capture_loop(&stop, &frames, &asked, &link, &shown, &hooks, &tx)
            })
        };
        say(
            json,
            "streaming",
            json!({ "session_id": session_id }),
            format!("Sending this screen (session {session_id})"),
        );
        let mut last = Instant::now();
        let mut keyframes = 0u64;
        while let Some(e) = rx.recv().await {
            let now = Instant::now();
            let n = e.data.len() as u64;
            let written = track
                .sample_writer(ssrc, payload_type)
                .write_sample(&Sample {
                    data: Bytes::from(e.data),
                    duration: now - last,
                    ..Sample::new(now)
                })
                .await;
            if written.is_err() {
                break;
            }
            sent_bytes.fetch_add(n, Ordering::Relaxed);
            last = now;
            if e.keyframe {
                keyframes += 1;
                // For the log and the tests (--json); a person at the screen need not see it.
                if let Some(at) = asked.answered().filter(|_| json) {
                    say(
                        json,
                        "keyframe",
                        json!({ "session_id": session_id, "requested": true,
                                "after_ms": at.elapsed().as_secs_f64() * 1000.0 }),
                        format!(
                            "Sent a keyframe the viewer asked for ({:.0?} after)",
                            at.elapsed()
                        ),
                    );
                }
            }
        }
        stopping.store(true, Ordering::SeqCst);
        let ended = capture.await;
        inputs.abort();
        requests.abort();
        // Whatever the viewer held down when the session ended is let go of here.
        crate::input::let_go(&injector).await;
        if let Ok(Err(e)) = ended {
            eprintln!("udc-agent: session {session_id}: capture stopped: {e}");
        }
        say(
            json,
            "stream_stopped",
            json!({ "session_id": session_id, "frames": frames.load(Ordering::Relaxed),
                    "bytes": sent_bytes.load(Ordering::Relaxed), "keyframes": keyframes,
                    "keyframe_requests": asked.count.load(Ordering::Relaxed) }),
            format!("Stopped sending this screen (session {session_id})"),
        );
    });
    Ok((Streaming { stop, pc, task }, answer))
}

/// The viewer's keyframe requests (PLI, FIR): the next capture is encoded as a keyframe.
#[derive(Default)]
struct Asked {
    /// Set by a request, taken by the capture loop.
    wanted: AtomicBool,
    count: AtomicU64,
    /// When the request not yet answered by a sent keyframe came.
    at: Mutex<Option<Instant>>,
}

impl Asked {
    fn ask(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut at) = self.at.lock() {
            at.get_or_insert_with(Instant::now);
        }
        self.wanted.store(true, Ordering::SeqCst);
    }

    /// A keyframe went out: when it had been asked for, if it had.
    fn answered(&self) -> Option<Instant> {
        self.at.lock().ok().and_then(|mut at| at.take())
    }
}

async fn keyframe_requests(track: Arc<TrackLocalStaticSample>, asked: Arc<Asked>) {
    let mut last: Option<Instant> = None;
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        // One keyframe per `KEYFRAME_AT_MOST_EVERY` however often the viewer asks: a keyframe
        // costs many frames' bytes, and a viewer asking on every frame must not flood the link.
        if packets
            .iter()
            .any(|p| crate::feedback::is_request(p.as_ref()))
            && last.is_none_or(|t| t.elapsed() >= KEYFRAME_AT_MOST_EVERY)
        {
            last = Some(Instant::now());
            asked.ask();
        }
    }
}

/// Which screen a session shows: the viewer's choice, and whether it changed since the capture
/// loop last looked.
#[derive(Default)]
struct Shown {
    chosen: Mutex<Option<Choice>>,
    changed: AtomicBool,
}

impl Shown {
    fn choice(&self) -> Choice {
        self.chosen
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or(Choice::Primary)
    }

    fn choose(&self, choice: Choice) {
        if let Ok(mut chosen) = self.chosen.lock() {
            *chosen = Some(choice);
        }
        self.changed.store(true, Ordering::SeqCst);
    }
}

/// What the capture loop tells the session: each change of rate (`on_rate`), and what it
/// captures and how, at the start and after each reopening (`on_capture`).
struct Hooks<'a> {
    on_rate: &'a dyn Fn(u32, f32),
    on_capture: &'a dyn Fn(&str, Area),
}

/// Captures and encodes until stopped or the sending side goes away, at the bit rate and frame
/// rate the link carries (`link`, checked every `FIT_EVERY`), showing the screen `shown` names.
fn capture_loop(
    stop: &AtomicBool,
    frames: &AtomicU64,
    asked: &Asked,
    link: &crate::feedback::TargetBitrate,
    shown: &Shown,
    hooks: &Hooks,
    tx: &mpsc::Sender<Encoded>,
) -> Result<()> {
    let (area, mut capture) = open_choice(&shown.choice())?;
    (hooks.on_capture)(capture.method(), area);
    // What was said last: a screen out of reach is reopened every RETRY_CAPTURE, and said
    // again only when that changes.
    let mut announced = (capture.method(), area);
    let (mut w, mut h) = capture.size();
    // Encoders take even sides: an odd last row or column is left out.
    let (mut ew, mut eh) = (w & !1, h & !1);
    let mut encoder = VideoEncoder::new(ew, eh, FPS)?;
    let mut period = Duration::from_secs_f32(1.0 / FPS);
    let mut fitted = Instant::now();
    // Since when the screen has been out of reach, if it is.
    let mut paused: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let chosen = shown.changed.swap(false, Ordering::SeqCst);
        if paused.is_some() || chosen {
            // The screen can be out of reach for a while (locked, a prompt on Windows' secure
            // desktop, its size changing): the session waits for it rather than end. The viewer
            // may choose another screen. A changed size gets an encoder of its own, which
            // starts with a keyframe.
            if !chosen {
                std::thread::sleep(RETRY_CAPTURE);
            }
            let Ok((area, again)) = open_choice(&shown.choice()) else {
                paused.get_or_insert_with(Instant::now);
                continue;
            };
            if announced != (again.method(), area) {
                announced = (again.method(), area);
                (hooks.on_capture)(again.method(), area);
            }
            if again.size() != (w, h) {
                (w, h) = again.size();
                (ew, eh) = (w & !1, h & !1);
                encoder = VideoEncoder::new(ew, eh, FPS)?;
                fitted = Instant::now() - FIT_EVERY;
            }
            capture = again;
        }
        if asked.wanted.swap(false, Ordering::SeqCst) {
            encoder.request_keyframe();
        }
        if fitted.elapsed() >= FIT_EVERY {
            fitted = started;
            if let Some(bps) = link.get() {
                match encoder.fit_link(bps) {
                    Ok(true) => {
                        let (bps, fps) = encoder.rate();
                        period = Duration::from_secs_f32(1.0 / fps);
                        (hooks.on_rate)(bps, fps);
                    }
                    Ok(false) => {}
                    // The picture goes on at the rate it had.
                    Err(e) => eprintln!("udc-agent: {e}"),
                }
            }
        }
        let encoded = match capture.capture_with(|bgrx| encoder.encode(&even(bgrx, w, ew, eh))) {
            Ok(encoded) => {
                if let Some(since) = paused.take() {
                    eprintln!(
                        "udc-agent: the screen is captured again ({w}x{h}), after {:.1?}",
                        since.elapsed()
                    );
                }
                encoded?
            }
            Err(e) => {
                if paused.is_none() {
                    eprintln!("udc-agent: the screen cannot be captured now ({e:#}): waiting");
                    paused = Some(Instant::now());
                }
                continue;
            }
        };
        if let Some(encoded) = encoded {
            frames.fetch_add(1, Ordering::Relaxed);
            if tx.blocking_send(encoded).is_err() {
                break;
            }
        }
        if let Some(rest) = period.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}

/// A viewer's choice of screen, if that is what `message` is.
fn screen_chosen(message: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(message).ok()?;
    value.get("screen")?.as_str().map(str::to_owned)
}

/// Shows the screen the viewer chose, if this device has it; the answer to send back.
fn choose(
    chosen: &str,
    screens: &[Screen],
    shown: &Shown,
    session_id: &str,
    json: bool,
) -> serde_json::Value {
    let choice = Choice::parse(chosen);
    if choice.area(screens).is_none() {
        let ids: Vec<&str> = screens.iter().map(|s| s.id.as_str()).collect();
        return json!({ "error": format!("no screen {chosen:?} here: {ids:?}, all or primary") });
    }
    say(
        json,
        "screen_chosen",
        json!({ "session_id": session_id, "screen": chosen }),
        format!("The viewer chose the screen {chosen}"),
    );
    shown.choose(choice);
    json!({ "screen": chosen })
}

/// The top-left `ew`x`eh` pixels of a `w`-wide frame (the frame itself when it fits).
fn even(bgrx: &[u8], w: usize, ew: usize, eh: usize) -> Cow<'_, [u8]> {
    if w == ew && bgrx.len() == ew * eh * 4 {
        return Cow::Borrowed(bgrx);
    }
    Cow::Owned(
        bgrx.chunks_exact(w * 4)
            .take(eh)
            .flat_map(|row| &row[..ew * 4])
            .copied()
            .collect(),
    )
}

/// The viewer's data channel: a JSON array of input events per message, or a choice of screen
/// (`{"screen": ID}`, `"all"` or `"primary"`), which view-only sessions may make too. The
/// viewer is first told the screens it may choose from (`{"screens": [...], "screen": ...}`).
async fn take_input(
    mut channels: mpsc::UnboundedReceiver<Arc<dyn DataChannel>>,
    session_id: String,
    control: bool,
    injector: Arc<Mutex<Injector>>,
    shown: Arc<Shown>,
    json: bool,
) {
    while let Some(channel) = channels.recv().await {
        let screens = match tokio::task::spawn_blocking(|| crate::screen::screens(None)).await {
            Ok(Ok(screens)) => screens,
            Ok(Err(e)) => {
                eprintln!("udc-agent: the screens could not be listed: {e:#}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let listed = json!({ "screens": screens, "screen": shown.choice().word() }).to_string();
        // The channel may be open already (it was the viewer's to open), or open soon.
        let mut told = channel.send_text(&listed).await.is_ok();
        while let Some(event) = channel.poll().await {
            let msg = match event {
                DataChannelEvent::OnMessage(msg) => msg,
                DataChannelEvent::OnOpen if !told => {
                    told = channel.send_text(&listed).await.is_ok();
                    continue;
                }
                DataChannelEvent::OnClose => break,
                _ => continue,
            };
            if let Some(chosen) = screen_chosen(&msg.data) {
                let answer = choose(&chosen, &screens, &shown, &session_id, json);
                let _ = channel.send_text(&answer.to_string()).await;
                continue;
            }
            let events: Vec<InputEvent> = match serde_json::from_slice(&msg.data) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("udc-agent: unreadable input: {e}");
                    continue;
                }
            };
            // A view-only session never drives this device, whatever its viewer sends.
            if !control {
                say(
                    json,
                    "input_dropped",
                    json!({ "session_id": session_id, "count": events.len() }),
                    format!("Ignored {} input events: view-only session", events.len()),
                );
                continue;
            }
            let inj = Arc::clone(&injector);
            let n = events.len();
            let done = tokio::task::spawn_blocking(move || -> Result<()> {
                let inj = inj.lock().map_err(|_| anyhow!("input lock poisoned"))?;
                events.iter().try_for_each(|e| inj.inject(e))
            })
            .await;
            match done {
                Ok(Ok(())) => say(
                    json,
                    "input",
                    json!({ "session_id": session_id, "count": n, "via": "webrtc" }),
                    format!("input: {n} events"),
                ),
                Ok(Err(e)) => eprintln!("udc-agent: input not replayed: {e}"),
                Err(e) => eprintln!("udc-agent: input not replayed: {e}"),
            }
        }
    }
}
