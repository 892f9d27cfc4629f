//! The screen as H.264: captured frames in, Annex-B access units out (Cisco's openh264, built
//! from source), and back to RGB on the viewing side. The encoder skips a screen that did not
//! change, so a still desktop costs a comparison per capture and a refresh a second.

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
        let bps = (width * height) as f32 * fps * 0.1;
        // Low complexity on two threads: 1080p at ~40 frames/s on two cores instead of ~34, for
        // a few per cent more bytes (measured in issue 6's notes).
        let config = EncoderConfig::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .complexity(Complexity::Low)
            .num_threads(2)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bps.clamp(500_000.0, 20_000_000.0) as u32))
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
            yuv: YUVBuffer::new(width, height),
            last: Vec::new(),
            last_sent: None,
            last_key: None,
        })
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

    #[test]
    fn odd_sides_and_mismatched_frames_are_refused() {
        assert!(VideoEncoder::new(321, 240, 30.0).is_err());
        let mut enc = VideoEncoder::new(320, 240, 30.0).unwrap();
        assert!(enc.encode(&frame(160, 120, |_, _| [0, 0, 0])).is_err());
    }
}
