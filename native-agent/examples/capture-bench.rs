//! `capture-bench [--seconds 5]`: the controlled side's pipeline on this system, as `remote
//! serve` runs it — the screen captured (X11 on Linux; desktop duplication, else GDI, on
//! Windows) and encoded as H.264 at its size — as fast as it goes: frames/s of capture alone,
//! of capture + encode, and the bytes/s sent. scripts/bench.sh runs the Windows build under Wine
//! on a screen that changes every frame (scripts/wine/canvas.c, "moving"): Wine's GDI, so
//! figures for Wine on this machine, not for Windows. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use udc_agent::screen::Capture;
use udc_agent::video::VideoEncoder;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(5.0),
        None => 5.0,
    };
    let run = Duration::from_secs_f64(seconds);
    let mut capture = Capture::open(None)?;
    let (w, h) = capture.size();
    if w % 2 != 0 || h % 2 != 0 {
        bail!("a {w}x{h} screen: the encoder takes even sides");
    }
    let method = capture.method();

    let (mut frames, started) = (0u64, Instant::now());
    while started.elapsed() < run {
        capture.capture_with(|_| ())?;
        frames += 1;
    }
    let captured = frames as f64 / started.elapsed().as_secs_f64();

    let mut encoder = VideoEncoder::new(w, h, udc_agent::stream::FPS)?;
    let (mut frames, mut bytes, started) = (0u64, 0usize, Instant::now());
    while started.elapsed() < run {
        if let Some(e) = capture.capture_with(|bgrx| encoder.encode(bgrx))?? {
            bytes += e.data.len();
        }
        frames += 1;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "capture at {w}x{h} ({method}): {captured:.1} frames/s alone; capture + H.264 encode \
         {:.1} frames/s, {:.0} kbit/s",
        frames as f64 / took,
        bytes as f64 * 8.0 / took / 1000.0
    );
    Ok(())
}
