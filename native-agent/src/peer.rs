//! A WebRTC peer connection for a remote session (the webrtc crate): H.264 video and an ordered
//! data channel for input. Descriptions travel whole (ICE candidates inside, no trickle) as hub
//! signals naming the session; host candidates alone connect two devices on one network.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, Registry,
};

use crate::client::Client;

pub use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;

/// Where the peer listens: every interface (expanded to each address) and loopback, so two
/// devices on one machine meet without a network. `UDC_RTC_BIND` (comma-separated) overrides.
const DEFAULT_BIND: &str = "0.0.0.0:0,127.0.0.1:0";
/// How long a description waits for ICE gathering; an unreachable STUN server must not hold the
/// session up, and host candidates are there at once.
const GATHER_AT_MOST: Duration = Duration::from_secs(2);

/// Baseline profile, packetization mode 1: what every browser decodes.
pub fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![],
    }
}

/// What the connection reports, as channels the session's loop can select on.
struct Events {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
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
    gathered: watch::Receiver<bool>,
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
    pub async fn open(ice_servers: Vec<RTCIceServer>) -> Result<Peer> {
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: h264(),
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        let (gathered_tx, gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (channels_tx, channels) = mpsc::unbounded_channel();
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let bind = std::env::var("UDC_RTC_BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events {
                gathered: gathered_tx,
                state: state_tx,
                channels: channels_tx,
                tracks: tracks_tx,
            }))
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
            gathered,
            state,
            channels,
            tracks,
        })
    }

    /// Sets `desc` as the local description and returns it with the candidates gathered.
    pub async fn local(&mut self, desc: RTCSessionDescription) -> Result<RTCSessionDescription> {
        self.pc.set_local_description(desc).await?;
        let _ = tokio::time::timeout(GATHER_AT_MOST, self.gathered.wait_for(|g| *g)).await;
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

/// The hub signal carrying a session's description.
pub fn signal(session_id: &str, desc: &RTCSessionDescription) -> Result<Value> {
    Ok(json!({ "remote_session": session_id, "description": serde_json::to_value(desc)? }))
}

/// A signal's session and description, when it is one of ours.
pub fn read_signal(payload: &Value) -> Option<(String, RTCSessionDescription)> {
    let id = payload["remote_session"].as_str()?.to_owned();
    let desc = serde_json::from_value(payload["description"].clone()).ok()?;
    Some((id, desc))
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
    fn signals_carry_the_session_and_a_description() {
        let desc: RTCSessionDescription =
            serde_json::from_value(json!({ "type": "offer", "sdp": "v=0\r\n" })).unwrap();
        let (id, back) = read_signal(&signal("s1", &desc).unwrap()).unwrap();
        assert_eq!((id.as_str(), back.sdp.as_str()), ("s1", "v=0\r\n"));
        assert!(read_signal(&json!({ "remote_session": "s1" })).is_none());
    }
}
