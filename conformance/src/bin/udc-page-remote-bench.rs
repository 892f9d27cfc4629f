//! `udc-page-remote-bench [--rounds 5] [--repaints 30] [--moves 100] [--plis 20]
//! [--link SECONDS]`: a remote session in the web app (headless Chromium) against a desk (`udc-agent remote serve` on a
//! 1280×720 Xvfb display), on the host at `UDC_BASE_URL`, on loopback:
//! - click to first frame: from the Control button's click to the first video frame the page
//!   presents (`requestVideoFrameCallback`), per round (target <= 1 s);
//! - glass to glass: from repainting the desk's screen to the page presenting a frame with the
//!   new colour, p50/p99;
//! - input: from a pointer move in the page to its motion on the desk's X server (XTEST), p50/p99
//!   (target p50 <= 10 ms);
//! - keyframes on request: the page asks as Chromium does when its picture breaks (an RTCP PLI),
//!   and the desk says how soon it sent one (target <= 200 ms); and when the page decoded it.
//!
//! `--link SECONDS` instead: a busy screen (a terminal scrolling text) sent for that long, and the
//! bit rate and frame rate the desk's encoder settles at as the congestion controller reads the
//! page's feedback, with what the page's bar says (scripts/bench.sh runs it over a lossy, slow
//! loopback in a network namespace).
//!
//! Times across the page and this program are wall-clock milliseconds of the one machine.
//! Prints figures; asserts nothing but that everything arrived.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use udc_conformance::browser::{Browser, PAGE_PATIENCE};
use udc_conformance::desktop::{Display, DisplayAgent, Recorder};
use udc_conformance::unique_email;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Clicks Control for the desk and notes, in `window.__first`, the milliseconds from the click to
/// the first presented frame.
const CLICK: &str = "
    window.__first = null;
    const row = [...document.querySelectorAll('.device')].find((d) => d.querySelector('.device-name')?.textContent === 'Bench Desk');
    const btn = row?.querySelector('.control-button');
    if (!btn || btn.disabled) return false;
    const t0 = performance.now();
    btn.click();
    const wait = setInterval(() => {
      const v = document.querySelector('#remote-video');
      if (!v) return;
      clearInterval(wait);
      v.requestVideoFrameCallback((now) => { window.__first = now - t0; });
    }, 1);
    return true;";

/// Watches every presented frame: when the colour at a quarter across and down changes, notes
/// which (`r`, `g` or `b`, the brightest channel) and the wall-clock time, in `window.__seen`.
const WATCH: &str = "
    window.__seen = [];
    const v = document.querySelector('#remote-video');
    const c = document.createElement('canvas'); c.width = 1; c.height = 1;
    const g = c.getContext('2d', { willReadFrequently: true });
    let last = null;
    const on = () => {
      g.drawImage(v, v.videoWidth / 4, v.videoHeight / 4, 1, 1, 0, 0, 1, 1);
      const d = g.getImageData(0, 0, 1, 1).data;
      const key = d[0] > 128 && d[1] < 128 ? 'r' : d[1] > 128 && d[0] < 128 ? 'g' : 'b';
      if (key !== last) { last = key; window.__seen.push([key, performance.timeOrigin + performance.now()]); }
      v.requestVideoFrameCallback(on);
    };
    v.requestVideoFrameCallback(on);";

/// A pointer move over the picture at fractions (arguments 0 and 1), as the page's stage gets it;
/// the wall-clock time it was dispatched.
const MOVE: &str = "
    const st = document.querySelector('.remote-stage'), v = document.querySelector('#remote-video');
    const r = v.getBoundingClientRect();
    const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
    const w = v.videoWidth * s, h = v.videoHeight * s;
    const x = r.left + (r.width - w) / 2 + arguments[0] * w, y = r.top + (r.height - h) / 2 + arguments[1] * h;
    const t = performance.timeOrigin + performance.now();
    st.dispatchEvent(new PointerEvent('pointermove', { clientX: x, clientY: y, bubbles: true }));
    return t;";

async fn wait_value(b: &Browser, script: &str) -> Result<Value> {
    let started = Instant::now();
    loop {
        let v = b.js(script, json!([])).await;
        if !v.is_null() {
            return Ok(v);
        }
        if started.elapsed() > PAGE_PATIENCE {
            bail!("the page never answered {script}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "{} samples  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut repaints, mut moves, mut plis, mut link) =
        (5usize, 30usize, 100usize, 20usize, 0usize);
    while let Some(a) = args.next() {
        let mut n = || -> Result<usize> { Ok(args.next().context("a number")?.parse()?) };
        match a.as_str() {
            "--rounds" => rounds = n()?,
            "--repaints" => repaints = n()?,
            "--moves" => moves = n()?,
            "--plis" => plis = n()?,
            "--link" => link = n()?,
            other => bail!("unknown argument {other}"),
        }
    }
    if link > 0 {
        return busy_link(Duration::from_secs(link as u64)).await;
    }
    let b = Browser::start().await;
    b.watch_peers().await;
    let email = unique_email();
    b.sign_up(&email, "Bench Page").await;
    let display = Display::start();
    let recorder = Recorder::start(&display);
    recorder.paint([0x2040e0; 4]);
    let desk = DisplayAgent::login_as(&email, "Bench Desk");
    desk.run(&["devices", "trust", "Bench Page"]);
    desk.run(&[
        "remote",
        "allow",
        "Bench Page",
        "--mode",
        "view_and_control",
    ]);
    let desk = desk.spawn(&display, &["remote", "serve"], "remote");

    let mut firsts = Vec::with_capacity(rounds);
    for round in 0..rounds {
        b.until("Control for the desk", CLICK, json!([])).await;
        firsts.push(
            wait_value(&b, "return window.__first")
                .await?
                .as_f64()
                .context("ms")?,
        );
        desk.expect("streaming");
        if round + 1 < rounds {
            b.click("#remote-end").await;
            desk.expect("stream_stopped");
            b.click("#remote-close").await;
        }
    }
    println!(
        "page: click to first frame  {}  (target <= 1000 ms)",
        summary(&mut firsts)
    );

    b.js(WATCH, json!([])).await;
    let mut glass = Vec::with_capacity(repaints);
    for i in 0..repaints {
        let (colour, key) = if i % 2 == 0 {
            (0xe02020, "r")
        } else {
            (0x20e020, "g")
        };
        let painted = now_ms();
        recorder.paint([colour; 4]);
        let started = Instant::now();
        let seen = loop {
            let seen = b.js("return window.__seen.at(-1)", json!([])).await;
            if seen[0] == key {
                break seen[1].as_f64().context("ms")?;
            }
            if started.elapsed() > PAGE_PATIENCE {
                bail!("repaint {i} never reached the page");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        glass.push(seen - painted);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    println!(
        "page: glass to glass (repaint → frame presented)  {}",
        summary(&mut glass)
    );

    let mut input = Vec::with_capacity(moves);
    for i in 0..moves {
        let (fx, fy) = (
            (i % 40) as f64 / 40.0 + 0.01,
            ((i / 40) % 8) as f64 / 8.0 + 0.05,
        );
        let want = (
            udc_agent::input::to_pixel(fx, 1280),
            udc_agent::input::to_pixel(fy, 720),
        );
        let sent = b.js(MOVE, json!([fx, fy])).await.as_f64().context("ms")?;
        recorder.wait_event("the pointer motion", |e| {
            matches!(e, x11rb::protocol::Event::MotionNotify(m)
                if (m.root_x - want.0).abs() <= 1 && (m.root_y - want.1).abs() <= 1)
        });
        input.push(now_ms() - sent);
    }
    println!(
        "page: input (pointer move → XTEST on the desk)  {}  (target p50 <= 10 ms)",
        summary(&mut input)
    );
    // Keyframes the page asks for (an RTCP PLI from Chromium, as when its picture breaks): how
    // soon the still desk sent one, and how soon the page had decoded it (as its statistics,
    // polled, tell: the poll's own time is in it). Last: the first request puts the encoded
    // transform that sends them in front of the page's video, and nothing above is measured
    // through it.
    let (mut sent_after, mut decoded_after) = (Vec::new(), Vec::new());
    for _ in 0..plis {
        // The desk answers at most one request per 250 ms.
        desk.drain(Duration::from_millis(300));
        let before = b.video_received().await["keyframes"].as_u64();
        let asked = Instant::now();
        b.ask_keyframe().await;
        sent_after.push(desk.expect("keyframe")["after_ms"].as_f64().context("ms")?);
        loop {
            if b.video_received().await["keyframes"].as_u64() > before {
                break;
            }
            if asked.elapsed() > PAGE_PATIENCE {
                bail!("the page never decoded the keyframe it asked for");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        decoded_after.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "desk: keyframe sent after the page's PLI  {}  (target <= 200 ms)",
        summary(&mut sent_after)
    );
    println!(
        "page: keyframe decoded after asking (as the page's statistics, polled, show it)  {}",
        summary(&mut decoded_after)
    );
    let figures = b
        .js(
            "return document.querySelector('#remote-figures')?.textContent",
            json!([]),
        )
        .await;
    println!("page: the session's bar said {figures}");
    b.click("#remote-end").await;
    let stopped = desk.expect("stream_stopped");
    println!(
        "desk: {} frames, {} bytes, {} keyframes, {} keyframe requests",
        stopped["frames"], stopped["bytes"], stopped["keyframes"], stopped["keyframe_requests"]
    );
    Ok(())
}

/// A busy screen sent for `how_long`: the encoder's rate as it settles, and the page's figures.
async fn busy_link(how_long: Duration) -> Result<()> {
    let b = Browser::start().await;
    let email = unique_email();
    b.sign_up(&email, "Bench Page").await;
    let display = Display::start();
    // A terminal filling the screen with scrolling text: a screen that changes every frame, in
    // the small detail that costs an encoder most.
    let mut flood = std::process::Command::new("xterm")
        .args(["-geometry", "210x56+0+0", "-e", "sh", "-c"])
        .arg("while :; do head -c 4000 /dev/urandom | base64; done")
        .env("DISPLAY", display.name())
        .spawn()
        .context("xterm")?;
    let desk = DisplayAgent::login_as(&email, "Bench Desk");
    desk.run(&["devices", "trust", "Bench Page"]);
    desk.run(&["remote", "allow", "Bench Page", "--mode", "view_only"]);
    let desk = desk.spawn(&display, &["remote", "serve"], "remote");
    b.until(
        "View for the desk",
        &CLICK.replace(".control-button", ".view-button"),
        json!([]),
    )
    .await;
    desk.expect("streaming");
    let started = Instant::now();
    let mut said = Vec::new();
    while started.elapsed() < how_long {
        for line in desk.lines_for(Duration::from_secs(1)) {
            if line["remote"] == "rate" {
                said.push(format!(
                    "{:.0}s {} kbit/s {} fps",
                    started.elapsed().as_secs_f64(),
                    line["kbps"],
                    line["fps"]
                ));
            }
        }
    }
    let figures = b
        .js(
            "return document.querySelector('#remote-figures')?.textContent",
            json!([]),
        )
        .await;
    b.click("#remote-end").await;
    let stopped = desk.expect("stream_stopped");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "link: the encoder's rate as it moved: {}",
        if said.is_empty() {
            "never moved".to_owned()
        } else {
            said.join(", ")
        }
    );
    println!(
        "link: {:.0} s of a busy screen: {:.0} kbit/s and {:.1} frames/s sent on average; the page's bar said {figures}",
        secs,
        stopped["bytes"].as_f64().unwrap_or(0.0) * 8.0 / secs / 1000.0,
        stopped["frames"].as_f64().unwrap_or(0.0) / secs,
    );
    let _ = flood.kill();
    let _ = flood.wait();
    Ok(())
}
