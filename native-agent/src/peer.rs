//! A WebRTC peer connection for a remote session (the webrtc crate): H.264 video and an ordered
//! data channel for input. The description goes as a hub signal naming the session the moment it
//! is made, and each ICE candidate after it as it is found (trickle ICE), so connecting waits for
//! no gathering; host candidates alone connect two devices on one network, a TURN relay the rest.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry,
};

use crate::client::Client;
use crate::feedback::{Feedback, TargetBitrate};
use rtc::interceptor::Gcc;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, CongestionFeedback,
};

/// The congestion controller's first target and its bounds, in bits per second: a start that
/// carries a screen's first keyframe without a long wait behind the pacer, a floor at which a
/// screen is still legible, and a ceiling above what 1080p at 30 fps needs.
const START_BPS: f64 = 4_000_000.0;
const MIN_BPS: f64 = 250_000.0;
const MAX_BPS: f64 = 20_000_000.0;

/// `UDC_RTC_RELAY_ONLY=1`: connect through the TURN relay only, never directly (the peer then
/// sees the relay's address, not this device's; and a test can prove the relay path works).
const RELAY_ONLY: &str = "UDC_RTC_RELAY_ONLY";

/// Where the peer listens: every interface (expanded to each address) and loopback, so two
/// devices on one machine meet without a network. `UDC_RTC_BIND` (comma-separated) overrides.
const DEFAULT_BIND: &str = "0.0.0.0:0,127.0.0.1:0";

pub type Candidate = RTCIceCandidateInit;

/// Where a peer's ICE candidates go as they are found: to the hub, as signals.
pub type OnCandidate = Box<dyn Fn(Candidate) + Send + Sync>;

/// What the connection reports, as channels the session's loop can select on.
struct Events {
    candidates: OnCandidate,
    state: watch::Sender<RTCPeerConnectionState>,
    channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(candidate) => (self.candidates)(candidate),
            Err(e) => eprintln!("udc-agent: an ICE candidate not sent: {e}"),
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.channels.send(channel);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    /// What the congestion controller says the link carries now.
    pub target: TargetBitrate,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub channels: mpsc::UnboundedReceiver<Arc<dyn DataChannel>>,
    pub tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

impl Client {
    /// The STUN/TURN servers the account's host hands out (TURN credentials are short-lived).
    pub async fn ice_servers(&self, token: &str) -> crate::client::Result<Vec<RTCIceServer>> {
        let body: Value = self
            .call_with(
                reqwest::Method::GET,
                "/remote/ice-servers",
                Some(token),
                None,
                &[],
            )
            .await?;
        Ok(ice_servers_from(&body))
    }
}

fn ice_servers_from(body: &Value) -> Vec<RTCIceServer> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    body["ice_servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            // `urls` is a string or a list of strings, as in the browser API.
            let urls: Vec<String> = match &s["urls"] {
                Value::String(u) => vec![u.clone()],
                Value::Array(us) => us
                    .iter()
                    .filter_map(|u| u.as_str())
                    .map(String::from)
                    .collect(),
                _ => vec![],
            };
            (!urls.is_empty()).then(|| RTCIceServer {
                urls,
                username: text(&s["username"]),
                credential: text(&s["credential"]),
            })
        })
        .collect()
}

impl Peer {
    /// A peer connection for video in `codec` (see `codec`) using `ice_servers`; each local ICE
    /// candidate goes to `candidates`.
    pub async fn open(
        codec: RTCRtpCodec,
        ice_servers: Vec<RTCIceServer>,
        candidates: OnCandidate,
    ) -> Result<Peer> {
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec,
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        // Send-side congestion control: the viewer reports arrivals (transport-wide feedback,
        // which browsers send), GCC turns them into a target bit rate, a pacer keeps to it, and
        // the encoder is set to it (`feedback`).
        let registry = configure_congestion_control(
            registry,
            Gcc::new(START_BPS, MIN_BPS, MAX_BPS),
            CongestionFeedback::Twcc,
            &mut media,
        )?;
        let target = TargetBitrate::default();
        let registry = registry.with(
            rtc::interceptor::Slot::from(crate::feedback::SLOT),
            Feedback::new(target.clone()),
        );
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (channels_tx, channels) = mpsc::unbounded_channel();
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let bind = std::env::var("UDC_RTC_BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .with_ice_transport_policy(
                        if std::env::var(RELAY_ONLY).is_ok_and(|v| v == "1") {
                            RTCIceTransportPolicy::Relay
                        } else {
                            RTCIceTransportPolicy::All
                        },
                    )
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events {
                candidates,
                state: state_tx,
                channels: channels_tx,
                tracks: tracks_tx,
            }))
            .with_runtime(
                crate::udp::Fallback::runtime().ok_or_else(|| anyhow!("webrtc has no runtime"))?,
            )
            .with_udp_addrs(
                bind.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
            )
            .build()
            .await
            .context("WebRTC peer connection")?;
        Ok(Peer {
            pc: Arc::new(pc),
            target,
            state,
            channels,
            tracks,
        })
    }

    /// Sets `desc` as the local description and returns it, at once: its candidates follow as
    /// they are found.
    pub async fn local(&mut self, desc: RTCSessionDescription) -> Result<RTCSessionDescription> {
        self.pc.set_local_description(desc).await?;
        self.pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))
    }

    /// Waits until the connection is up; an error when it fails or closes first.
    pub async fn connected(&mut self, within: Duration) -> Result<()> {
        let state = tokio::time::timeout(
            within,
            self.state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .map_err(|_| anyhow!("no WebRTC connection within {within:?}"))?
        .map_err(|_| anyhow!("the peer connection went away"))?;
        match *state {
            RTCPeerConnectionState::Connected => Ok(()),
            other => Err(anyhow!("the peer connection is {other}")),
        }
    }
}

/// What a session's hub signal carries: the description (an offer or its answer), or one ICE
/// candidate found after it, as browsers spell it (`RTCIceCandidate.toJSON()`).
#[derive(Debug)]
pub enum Signal {
    Description(Box<RTCSessionDescription>),
    Candidate(RTCIceCandidateInit),
}

/// The hub signal carrying a session's description.
pub fn signal(session_id: &str, desc: &RTCSessionDescription) -> Result<Value> {
    Ok(json!({ "remote_session": session_id, "description": serde_json::to_value(desc)? }))
}

/// The hub signal carrying one of a session's ICE candidates.
pub fn candidate_signal(session_id: &str, candidate: &RTCIceCandidateInit) -> Result<Value> {
    Ok(json!({ "remote_session": session_id, "candidate": serde_json::to_value(candidate)? }))
}

/// A signal's session and what it carries, when it is one of ours.
pub fn read_signal(payload: &Value) -> Option<(String, Signal)> {
    let id = payload["remote_session"].as_str()?.to_owned();
    if let Ok(desc) = serde_json::from_value(payload["description"].clone()) {
        return Some((id, Signal::Description(Box::new(desc))));
    }
    let candidate = serde_json::from_value(payload["candidate"].clone()).ok()?;
    Some((id, Signal::Candidate(candidate)))
}

/// The kind of an ICE candidate (`host`, `srflx`, `relay`…), from its attribute text.
pub fn candidate_kind(candidate: &Candidate) -> &str {
    let mut words = candidate.candidate.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "typ")
        .and_then(|_| words.next())
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_read_as_the_host_hands_them_out() {
        let body = json!({ "ice_servers": [
            { "urls": ["stun:a:3478", "stun:b:3478"] },
            { "urls": "turn:t:3478?transport=udp", "username": "u", "credential": "c" },
            { "urls": [] },
        ]});
        let s = ice_servers_from(&body);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].urls, ["stun:a:3478", "stun:b:3478"]);
        assert_eq!(
            (
                s[1].urls[0].as_str(),
                s[1].username.as_str(),
                s[1].credential.as_str()
            ),
            ("turn:t:3478?transport=udp", "u", "c")
        );
        assert!(ice_servers_from(&json!({})).is_empty());
    }

    #[test]
    fn signals_carry_the_session_and_a_description_or_a_candidate() {
        let desc: RTCSessionDescription =
            serde_json::from_value(json!({ "type": "offer", "sdp": "v=0\r\n" })).unwrap();
        let Some((id, Signal::Description(back))) = read_signal(&signal("s1", &desc).unwrap())
        else {
            panic!("a description")
        };
        assert_eq!((id.as_str(), back.sdp.as_str()), ("s1", "v=0\r\n"));
        // A browser's candidate, as `RTCIceCandidate.toJSON()` gives it.
        let browser = json!({ "remote_session": "s2", "candidate": {
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd" } });
        let Some((id, Signal::Candidate(c))) = read_signal(&browser) else {
            panic!("a candidate")
        };
        assert_eq!((id.as_str(), c.sdp_mid.as_deref()), ("s2", Some("0")));
        let again = candidate_signal("s2", &c).unwrap();
        assert_eq!(again["candidate"]["sdpMLineIndex"], 0);
        assert_eq!(
            again["candidate"]["candidate"],
            browser["candidate"]["candidate"]
        );
        assert!(read_signal(&json!({ "remote_session": "s1" })).is_none());
        assert_eq!(candidate_kind(&c), "host");
    }
}
