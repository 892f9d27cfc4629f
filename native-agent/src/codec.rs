//! The H.264 format of a remote session: what a viewer offers, and what a target answers after
//! reading the viewer's offer (RFC 6184 §8.2.2: the profile and packetization mode are used as
//! offered; the level may differ where the offer allows level asymmetry).

use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

/// Level 3.1 (720p at 30 frames/s): what browsers offer, and the agent's viewer too.
const OFFERED_LEVEL: u8 = 0x1f;
/// Level 5.1: covers every picture up to 4096×2304 at 30 frames/s, which is more than a target
/// sends; a level is a bound on the stream, and the encoder's SPS states the one it meets.
const SENT_LEVEL: u8 = 0x33;

/// Constrained Baseline, packetization mode 1: what every browser decodes, offered by the agent's
/// viewer.
pub fn offered() -> RTCRtpCodec {
    with_fmtp(format!(
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e0{OFFERED_LEVEL:02x}"
    ))
}

/// The format a target answers `offer_sdp` with, or `None` when the offer has no H.264 the
/// encoder can make (Baseline or Constrained Baseline in packetization mode 1).
///
/// The profile is the offer's own, Constrained Baseline first. The level is one that covers the
/// target's pictures (1080p needs 4.0, and a screen may be larger) where the offer allows level
/// asymmetry, as browsers' offers do; else the offer's level, as RFC 6184 requires, and the
/// stream may exceed it: Chromium decodes past its offered level, as the suite's 1080p test
/// shows.
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
    let level = if chosen.level_asymmetry {
        SENT_LEVEL.max(chosen.level)
    } else {
        chosen.level
    };
    Some(with_fmtp(format!(
        "level-asymmetry-allowed={};packetization-mode=1;profile-level-id={:02x}{:02x}{level:02x}",
        u8::from(chosen.level_asymmetry),
        chosen.profile.0,
        chosen.profile.1,
    )))
}

/// `answer_sdp` (the webrtc crate's answer, which repeats the offer's parameters) with every
/// H.264 payload type's parameters set to `codec`'s.
pub fn in_answer(answer_sdp: &str, codec: &RTCRtpCodec) -> String {
    let h264 = h264_payload_types(answer_sdp);
    let mut out = String::with_capacity(answer_sdp.len());
    for line in answer_sdp.split_inclusive('\n') {
        let pt = line
            .strip_prefix("a=fmtp:")
            .and_then(|rest| rest.split_once(' '))
            .map(|(pt, _)| pt);
        match pt.filter(|pt| h264.iter().any(|h| h == pt)) {
            Some(pt) => {
                let end = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
                out.push_str(&format!("a=fmtp:{pt} {}{end}", codec.sdp_fmtp_line));
            }
            None => out.push_str(line),
        }
    }
    out
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
    level: u8,
    packetization_mode: Option<u8>,
    level_asymmetry: bool,
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
            (id.len() == 6).then_some(())?;
            Some(Format {
                profile: (byte(0)?, byte(2)?),
                level: byte(4)?,
                packetization_mode: param("packetization-mode").and_then(|m| m.parse().ok()),
                level_asymmetry: param("level-asymmetry-allowed") == Some("1"),
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
    fn a_browsers_offer_is_answered_in_constrained_baseline_at_a_level_that_covers_large_screens() {
        assert_eq!(
            fmtp(CHROMIUM).as_deref(),
            Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e033")
        );
        // The agent's own viewer offers what a browser does.
        let own = format!(
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 {}\r\n",
            offered().sdp_fmtp_line
        );
        assert_eq!(fmtp(&own), fmtp(CHROMIUM));
    }

    #[test]
    fn the_profile_and_level_come_from_the_offer() {
        // Baseline only (not constrained): answered in Baseline.
        let baseline = "a=rtpmap:97 H264/90000\r\n\
            a=fmtp:97 packetization-mode=1;profile-level-id=42001f;level-asymmetry-allowed=1\r\n";
        assert_eq!(
            fmtp(baseline).as_deref(),
            Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=420033")
        );
        // No level asymmetry: the offer's level, as the RFC says; a higher one is kept.
        let symmetric =
            "a=rtpmap:97 h264/90000\na=fmtp:97 profile-level-id=42E028;packetization-mode=1\n";
        assert_eq!(
            fmtp(symmetric).as_deref(),
            Some("level-asymmetry-allowed=0;packetization-mode=1;profile-level-id=42e028")
        );
        let high_level = "a=rtpmap:97 H264/90000\r\n\
            a=fmtp:97 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e034\r\n";
        assert!(fmtp(high_level).unwrap().ends_with("42e034"));
    }

    #[test]
    fn the_answer_carries_the_chosen_parameters_for_h264_only() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 105\r\na=rtpmap:105 H264/90000\r\n\
            a=rtcp-fb:105 nack pli\r\n\
            a=fmtp:105 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
            a=rtpmap:106 rtx/90000\r\na=fmtp:106 apt=105\r\n";
        let codec = answering(CHROMIUM).unwrap();
        assert_eq!(
            in_answer(answer, &codec),
            answer.replace("42e01f", "42e033"),
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
