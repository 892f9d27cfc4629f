//! The H.264 format of a remote session: what a viewer offers, and what a target answers after
//! reading the viewer's offer. RFC 6184 §8.2.2: the profile and packetization mode are used as
//! offered. The level in each side's SDP is the highest it can receive; what a target sends is
//! stated in the stream's own SPS, which the encoder sets to cover the picture (1080p is level
//! 4.0, video.rs), and browsers decode past the 3.1 they offer (the suite's 1080p page test).

use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

/// Constrained Baseline at level 3.1, packetization mode 1: what browsers offer and decode,
/// offered by the agent's viewer (its decoder takes any level).
pub fn offered() -> RTCRtpCodec {
    with_fmtp("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned())
}

/// The format a target answers `offer_sdp` with: the parameters of the offer's first H.264
/// payload type the encoder can make (Constrained Baseline, else Baseline, in packetization
/// mode 1), or `None` when it has none. Answering with the offer's own profile is what lets the
/// webrtc crate match it (it compares profile bytes exactly): a viewer offering Baseline alone
/// is answered in Baseline.
pub fn answering(offer_sdp: &str) -> Option<RTCRtpCodec> {
    let formats = h264_formats(offer_sdp);
    let baseline = |constrained: bool| {
        formats.iter().find(|f| {
            f.packetization_mode == Some(1)
                && f.profile.0 == 0x42
                && (f.profile.1 & 0x40 != 0) == constrained
        })
    };
    let chosen = baseline(true).or_else(|| baseline(false))?;
    Some(with_fmtp(chosen.fmtp.clone()))
}

fn with_fmtp(sdp_fmtp_line: String) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line,
        rtcp_feedback: vec![],
    }
}

/// One H.264 payload type's parameters in an SDP.
#[derive(Debug)]
struct Format {
    /// profile_idc and the constraint flags (profile-iop).
    profile: (u8, u8),
    packetization_mode: Option<u8>,
    /// The `a=fmtp` line's parameters as written.
    fmtp: String,
}

/// The offer's H.264 payload types (`a=rtpmap:PT H264/90000`) with their `a=fmtp` parameters.
/// One without a readable profile-level-id is left out: the RFC's default, Baseline at level 1.0,
/// is far too low for a screen.
fn h264_formats(sdp: &str) -> Vec<Format> {
    let h264 = h264_payload_types(sdp);
    attribute(sdp, "a=fmtp:")
        .filter(|(pt, _)| h264.contains(pt))
        .filter_map(|(_, params)| {
            let param = |key: &str| {
                params.split(';').find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
                })
            };
            let id = param("profile-level-id")?;
            let byte = |i: usize| u8::from_str_radix(id.get(i..i + 2)?, 16).ok();
            // Six hex digits: profile, constraints, level.
            (id.len() == 6 && byte(4).is_some()).then_some(())?;
            Some(Format {
                profile: (byte(0)?, byte(2)?),
                packetization_mode: param("packetization-mode").and_then(|m| m.parse().ok()),
                fmtp: params.clone(),
            })
        })
        .collect()
}

/// The payload types an SDP maps to H.264.
fn h264_payload_types(sdp: &str) -> Vec<String> {
    attribute(sdp, "a=rtpmap:")
        .filter(|(_, codec)| codec.to_ascii_uppercase().starts_with("H264/"))
        .map(|(pt, _)| pt)
        .collect()
}

/// Each `PREFIX<payload type> <value>` line of an SDP.
fn attribute<'a>(
    sdp: &'a str,
    prefix: &'static str,
) -> impl Iterator<Item = (String, String)> + 'a {
    sdp.lines().filter_map(move |l| {
        let (pt, rest) = l.trim().strip_prefix(prefix)?.split_once(' ')?;
        Some((pt.to_owned(), rest.trim().to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The H.264 part of Chromium's offer for a receive-only video (payload types as it numbers
    /// them), with a VP8 line in front and Main, High and mode-0 entries around the baselines.
    const CHROMIUM: &str = "v=0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 103 104 105 106 107 108\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:103 H264/90000\r\n\
        a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:104 H264/90000\r\n\
        a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
        a=rtpmap:105 H264/90000\r\n\
        a=fmtp:105 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:106 H264/90000\r\n\
        a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
        a=rtpmap:107 H264/90000\r\n\
        a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640034\r\n\
        a=rtpmap:108 rtx/90000\r\n\
        a=fmtp:108 apt=107\r\n";

    fn fmtp(sdp: &str) -> Option<String> {
        answering(sdp).map(|c| c.sdp_fmtp_line)
    }

    #[test]
    fn a_browsers_offer_is_answered_in_constrained_baseline_with_its_own_parameters() {
        assert_eq!(
            fmtp(CHROMIUM).as_deref(),
            Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f")
        );
        // The agent's own viewer offers what a browser does.
        let own = format!(
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 {}\r\n",
            offered().sdp_fmtp_line
        );
        assert_eq!(fmtp(&own), fmtp(CHROMIUM));
    }

    #[test]
    fn an_offer_of_baseline_alone_is_answered_in_baseline() {
        let baseline = "a=rtpmap:97 h264/90000\n\
            a=fmtp:97 packetization-mode=1;profile-level-id=42001f\n";
        assert_eq!(
            fmtp(baseline).as_deref(),
            Some("packetization-mode=1;profile-level-id=42001f")
        );
    }

    #[test]
    fn an_offer_without_a_baseline_in_mode_1_is_not_answered() {
        for sdp in [
            "a=rtpmap:96 VP8/90000\r\n",
            // Mode 0 only, High only, a broken id, an fmtp for a payload type that is not H.264.
            "a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=0;profile-level-id=42e01f\r\n",
            "a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=1;profile-level-id=640c1f\r\n",
            "a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=1;profile-level-id=42e0\r\n",
            "a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=1;profile-level-id=42é01f\r\n",
            "a=rtpmap:96 VP8/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n",
        ] {
            assert_eq!(fmtp(sdp), None, "{sdp}");
        }
    }
}
