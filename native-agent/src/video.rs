//! The screen as H.264: captured frames in, Annex-B access units out (Cisco's openh264, built
//! from source), and back to RGB on the viewing side. The encoder skips a screen that did not
//! change, so a still desktop costs a comparison per capture and a refresh a second.
// One call the openh264 crate has no safe wrapper for: changing the bit rate of a running
// encoder (the link's estimate moves; re-creating the encoder would cost a keyframe each time).
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::{BgraSliceU8, YUVBuffer, YUVSource};
use openh264::OpenH264API;

/// A static screen is still re-sent this often, so a viewer that lost a packet catches up.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// And a full (intra) picture at least this often, for the same reason.
const KEYFRAME_EVERY: Duration = Duration::from_secs(3);

pub struct VideoEncoder {
    encoder: Encoder,
    /// The bit rate the picture's size calls for, and the one the encoder aims at now.
    full_bps: u32,
    bps: u32,
    fps: f32,
    /// Whether a frame went in: openh264 is set up by the first one, options only after it.
    started: bool,
    yuv: YUVBuffer,
    /// The last frame sent, to tell whether the screen changed.
    last: Vec<u8>,
    last_sent: Option<Instant>,
    last_key: Option<Instant>,
}

/// An encoded frame: Annex-B NAL units, and whether it stands alone.
pub struct Encoded {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

impl VideoEncoder {
    /// An encoder for `width`×`height` frames (even sides), aiming at `fps`.
    pub fn new(width: usize, height: usize, fps: f32) -> Result<VideoEncoder> {
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) || width == 0 || height == 0 {
            bail!("video needs even, non-zero sides (got {width}x{height})");
        }
        // Screen content: text and flat areas; ~0.1 bit per pixel per frame keeps text sharp.
        let bps = ((width * height) as f32 * fps * 0.1).clamp(500_000.0, 20_000_000.0) as u32;
        // Low complexity on two threads: 1080p at ~40 frames/s on two cores instead of ~34, for
        // a few per cent more bytes (measured in issue 6's notes).
        let config = EncoderConfig::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .complexity(Complexity::Low)
            .num_threads(2)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(fps))
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            // Over the bit rate, the encoder drops a frame rather than blur the next ones.
            .skip_frames(true)
            // Not available for screen content (openh264 says so on every start otherwise).
            .adaptive_quantization(false)
            .background_detection(false)
            .debug(false);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| anyhow!("H.264 encoder: {e}"))?;
        Ok(VideoEncoder {
            encoder,
            full_bps: bps,
            bps,
            fps,
            started: false,
            yuv: YUVBuffer::new(width, height),
            last: Vec::new(),
            last_sent: None,
            last_key: None,
        })
    }

    /// The bit rate the encoder aims at now, and its frames per second.
    pub fn rate(&self) -> (u32, f32) {
        (self.bps, self.fps)
    }

    /// Aims the encoder at what the link carries (`link_bps`, the congestion controller's
    /// estimate): never more than the picture needs; fewer frames on a slow link, so each stays
    /// legible. Whether anything changed.
    pub fn fit_link(&mut self, link_bps: u64) -> Result<bool> {
        let (bps, fps) = fit(link_bps, self.full_bps);
        let moved = bps.abs_diff(self.bps) * 10 > self.bps || fps != self.fps;
        if !self.started || !moved {
            return Ok(false);
        }
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: bps as std::os::raw::c_int,
        };
        let mut rate = fps;
        // SAFETY: the encoder was initialized by its first frame (`started`); SetOption reads
        // the option's struct (an SBitrateInfo, a float) only during the call, and both live on
        // this stack frame until it returns.
        let rc = unsafe {
            let api = self.encoder.raw_api();
            api.set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                std::ptr::addr_of_mut!(info).cast(),
            ) | api.set_option(
                openh264_sys2::ENCODER_OPTION_FRAME_RATE,
                std::ptr::addr_of_mut!(rate).cast(),
            )
        };
        if rc != 0 {
            bail!("H.264 encoder refused a bit rate of {bps} ({rc})");
        }
        (self.bps, self.fps) = (bps, fps);
        Ok(true)
    }

    /// The next frame is a keyframe, sent even if the screen did not change (a viewer lost the
    /// picture and asked for one).
    pub fn request_keyframe(&mut self) {
        self.last_key = None;
        self.last_sent = None;
    }

    /// Encodes a frame of BGRX pixels unless the screen is unchanged and was sent within
    /// `REFRESH_EVERY`. It borrows the pixels, so a capture in shared memory is never copied.
    pub fn encode(&mut self, bgrx: &[u8]) -> Result<Option<Encoded>> {
        let (w, h) = self.yuv.dimensions();
        if bgrx.len() != w * h * 4 {
            bail!("{} bytes for a {w}x{h} encoder", bgrx.len());
        }
        let now = Instant::now();
        let same = self.last == bgrx;
        if same && self.last_sent.is_some_and(|t| now - t < REFRESH_EVERY) {
            return Ok(None);
        }
        let keyframe = self.last_key.is_none_or(|t| now - t >= KEYFRAME_EVERY);
        if keyframe {
            self.encoder.force_intra_frame();
            self.last_key = Some(now);
        }
        // X's 32-bit pixels are B, G, R, unused: the converter ignores the fourth byte.
        self.yuv.read_bgra8(BgraSliceU8::new(bgrx, (w, h)));
        let data = self
            .encoder
            .encode(&self.yuv)
            .map_err(|e| anyhow!("H.264 encode: {e}"))?
            .to_vec();
        self.started = true;
        if data.is_empty() {
            // Skipped by rate control: the next capture is encoded again, as a keyframe if
            // this one was to be.
            if keyframe {
                self.last_key = None;
            }
            return Ok(None);
        }
        if !same {
            self.last.clear();
            self.last.extend_from_slice(bgrx);
        }
        self.last_sent = Some(now);
        Ok(Some(Encoded { data, keyframe }))
    }
}

/// The bit rate and frame rate to send over a link that carries `link_bps`, for a picture that
/// needs `full_bps` at full rate: a tenth left for packet headers and retransmissions; 30 frames/s
/// from 1.5 Mbit/s, 20 from 600 kbit/s, else 10 (fewer, sharper pictures of a screen read better
/// than many blurred ones).
pub fn fit(link_bps: u64, full_bps: u32) -> (u32, f32) {
    let bps = ((link_bps as f64 * 0.9) as u32).clamp(150_000, full_bps.max(150_000));
    let fps = match bps {
        1_500_000.. => 30.0,
        600_000.. => 20.0,
        _ => 10.0,
    };
    (bps, fps)
}

/// A decoded picture: `width * height` pixels of R, G, B.
#[derive(Debug, Clone)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

pub struct VideoDecoder {
    decoder: Decoder,
}

impl VideoDecoder {
    pub fn new() -> Result<VideoDecoder> {
        Ok(VideoDecoder {
            decoder: Decoder::new().map_err(|e| anyhow!("H.264 decoder: {e}"))?,
        })
    }

    /// One access unit (Annex-B) in; a picture out when it completes one.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<Picture>> {
        let Some(yuv) = self
            .decoder
            .decode(access_unit)
            .map_err(|e| anyhow!("H.264 decode: {e}"))?
        else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let mut rgb = vec![0u8; width * height * 3];
        yuv.write_rgb8(&mut rgb);
        Ok(Some(Picture { width, height, rgb }))
    }
}

impl Picture {
    pub fn save_png(&self, path: &std::path::Path) -> Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut enc = png::Encoder::new(file, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&self.rgb)?;
        Ok(())
    }
}

/// The NAL unit types of an Annex-B access unit, in order (5 is an IDR slice: a keyframe).
pub fn nal_types(data: &[u8]) -> Vec<u8> {
    data.windows(4)
        .enumerate()
        .filter(|(_, w)| w[..3] == [0, 0, 1])
        .map(|(i, _)| data[i + 3] & 0x1f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, paint: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut bgrx = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = paint(x, y);
                bgrx.extend_from_slice(&[b, g, r, 0]);
            }
        }
        bgrx
    }

    #[test]
    fn a_frame_survives_encoding_within_tolerance_and_static_screens_are_skipped() {
        // Four flat quadrants: red, green, blue, white.
        let colours = [[220, 30, 30], [30, 200, 40], [20, 40, 210], [250, 250, 250]];
        let f = frame(320, 240, |x, y| {
            colours[usize::from(x >= 160) + 2 * usize::from(y >= 120)]
        });
        let mut enc = VideoEncoder::new(320, 240, 30.0).unwrap();
        let first = enc.encode(&f).unwrap().expect("the first frame is sent");
        assert!(first.keyframe);
        assert!(enc.encode(&f).unwrap().is_none(), "unchanged: skipped");

        let mut dec = VideoDecoder::new().unwrap();
        let pic = dec.decode(&first.data).unwrap().expect("a picture");
        assert_eq!((pic.width, pic.height), (320, 240));
        for (i, (x, y)) in [(80, 60), (240, 60), (80, 180), (240, 180)]
            .into_iter()
            .enumerate()
        {
            let p = &pic.rgb[(y * 320 + x) * 3..][..3];
            for c in 0..3 {
                let d = (i32::from(p[c]) - i32::from(colours[i][c])).abs();
                assert!(d <= 12, "quadrant {i}: {p:?} vs {:?}", colours[i]);
            }
        }

        // A change is sent, as a small difference from the last picture.
        let g = frame(320, 240, |x, y| {
            if (10..20).contains(&x) && (10..20).contains(&y) {
                [0, 0, 0]
            } else {
                colours[usize::from(x >= 160) + 2 * usize::from(y >= 120)]
            }
        });
        let second = enc.encode(&g).unwrap().expect("changed: sent");
        assert!(!second.keyframe && second.data.len() < first.data.len());
        let pic = dec.decode(&second.data).unwrap().expect("a picture");
        assert!(
            pic.rgb[(15 * 320 + 15) * 3] < 40,
            "the black square arrived"
        );
    }

    /// The level_idc of the access unit's SPS (the byte after profile and constraints).
    fn sps_level(data: &[u8]) -> u8 {
        let i = data
            .windows(4)
            .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
            .expect("an SPS");
        data[i + 6]
    }

    #[test]
    fn every_keyframe_carries_its_parameter_sets_and_a_level_that_covers_the_picture() {
        // Browsers offer level 3.1 (42e01f) and decode more; what a decoder checks is the
        // stream's own SPS: 3.1 covers 1280x720 at 30 fps, 4.0 1920x1080, 5.0 2560x1440.
        for (w, h, level) in [(1280, 720, 31), (1920, 1080, 40), (2560, 1440, 50)] {
            let mut enc = VideoEncoder::new(w, h, 30.0).unwrap();
            let first = enc
                .encode(&frame(w, h, |_, _| [40, 40, 40]))
                .unwrap()
                .unwrap();
            assert!(sps_level(&first.data) >= level, "{w}x{h}");
        }
        // A keyframe asked for mid-stream: SPS (7) and PPS (8) before the IDR slice (5).
        let mut enc = VideoEncoder::new(320, 240, 30.0).unwrap();
        enc.encode(&frame(320, 240, |_, _| [10, 10, 10]))
            .unwrap()
            .unwrap();
        let delta = enc
            .encode(&frame(320, 240, |x, _| [x as u8, 0, 0]))
            .unwrap()
            .unwrap();
        assert!(!delta.keyframe && !nal_types(&delta.data).contains(&5));
        enc.request_keyframe();
        let key = enc
            .encode(&frame(320, 240, |x, _| [x as u8, 0, 0]))
            .unwrap();
        let key = key.expect("a requested keyframe is sent though the screen is still");
        let types = nal_types(&key.data);
        assert!(key.keyframe, "{types:?}");
        let pos = |t: u8| types.iter().position(|&n| n == t).unwrap_or(usize::MAX);
        assert!(pos(7) < pos(8) && pos(8) < pos(5), "{types:?}");
    }

    #[test]
    fn a_slow_link_gets_fewer_bits_and_frames_never_more_than_the_picture_needs() {
        assert_eq!(fit(20_000_000, 2_764_800), (2_764_800, 30.0));
        assert_eq!(fit(2_000_000, 2_764_800), (1_800_000, 30.0));
        assert_eq!(fit(1_000_000, 2_764_800), (900_000, 20.0));
        assert_eq!(fit(300_000, 2_764_800), (270_000, 10.0));
        assert_eq!(fit(10_000, 2_764_800), (150_000, 10.0));
        // A running encoder takes the new rate; a still-unstarted one waits for its first frame.
        let mut enc = VideoEncoder::new(320, 240, 30.0).unwrap();
        assert!(!enc.fit_link(300_000).unwrap());
        enc.encode(&frame(320, 240, |_, _| [9, 9, 9])).unwrap();
        assert!(enc.fit_link(300_000).unwrap());
        assert_eq!(enc.rate(), (270_000, 10.0));
        assert!(!enc.fit_link(310_000).unwrap(), "a small move is no change");
    }

    #[test]
    fn odd_sides_and_mismatched_frames_are_refused() {
        assert!(VideoEncoder::new(321, 240, 30.0).is_err());
        let mut enc = VideoEncoder::new(320, 240, 30.0).unwrap();
        assert!(enc.encode(&frame(160, 120, |_, _| [0, 0, 0])).is_err());
    }
}
