//! `udc-remote-bench [--seconds 5] [--inputs 200]`: remote control's figures on this machine.
//! - the target's pipeline (X11 capture of the root window, BGRX→I420, H.264 encode) in
//!   frames/s on 1280×720 and 1920×1080 Xvfb screens, for a screen that changes every frame
//!   (a scrolling gradient) and a still one, with the bytes per second each produces;
//! - input latency through the host at `UDC_BASE_URL`, from the controlling device's send to the
//!   pointer motion arriving at a window on the target display (`udc-agent remote serve` replays
//!   it with XTEST): over the WebRTC data channel (`udc-agent remote view --control`, fed on its
//!   standard input) and relayed by the host (`POST /remote/session/{id}/input`), p50/p99;
//! - a keyframe asked for with an RTCP PLI, from the request to the keyframe sent, p50/p99.
//!
//! Prints figures; asserts nothing but that every input arrived.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use udc_agent::screen::X11Capture;
use udc_agent::video::VideoEncoder;
use udc_conformance::desktop::{Display, DisplayAgent, Recorder};
use udc_conformance::{ms, percentile, Account};

/// Runs the capture → encode loop for `seconds`, encoding each capture, or in its place the next
/// frame of `pattern` (a changing screen). Frames per second and bytes per second.
fn pipeline(
    cap: &mut X11Capture,
    seconds: f64,
    paced: bool,
    pattern: Option<&[Vec<u8>]>,
) -> Result<(f64, f64)> {
    let (w, h) = cap.size();
    let mut enc = VideoEncoder::new(w, h, udc_agent::stream::FPS)?;
    let period = Duration::from_secs_f32(1.0 / udc_agent::stream::FPS);
    let (mut frames, mut bytes) = (0usize, 0usize);
    let started = Instant::now();
    for i in 0.. {
        if started.elapsed().as_secs_f64() >= seconds {
            break;
        }
        let t = Instant::now();
        if let Some(e) = cap.capture_with(|bgrx| {
            enc.encode(pattern.map_or(bgrx, |p| p[i % p.len()].as_slice()))
        })?? {
            frames += 1;
            bytes += e.data.len();
        }
        if paced {
            if let Some(rest) = period.checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }
    let s = started.elapsed().as_secs_f64();
    Ok((frames as f64 / s, bytes as f64 / s))
}

fn video_figures(seconds: f64) -> Result<()> {
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let display = Display::start_sized(w, h);
        let mut cap = X11Capture::open(Some(&display.name()))?;
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(1) {
            cap.capture()?;
            n += 1;
        }
        let capture_fps = f64::from(n) / started.elapsed().as_secs_f64();
        // Every frame differs: a diagonal gradient scrolling by 4 pixels a frame (eight frames
        // made beforehand, so the figure is the pipeline's, not the pattern's).
        let scrolled: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let mut bgrx = vec![0u8; w as usize * h as usize * 4];
                for (p, px) in bgrx.chunks_exact_mut(4).enumerate() {
                    let (x, y) = (p % w as usize, p / w as usize);
                    let v = ((x + y + 4 * i) % 256) as u8;
                    px[0] = v;
                    px[1] = v.wrapping_mul(3);
                    px[2] = 255 - v;
                }
                bgrx
            })
            .collect();
        let (fps, _) = pipeline(&mut cap, seconds, false, Some(&scrolled))?;
        let (paced_fps, changing_bps) = pipeline(&mut cap, seconds, true, Some(&scrolled))?;
        let (still_fps, still_bps) = pipeline(&mut cap, seconds, true, None)?;
        println!(
            "video {w}x{h}: capture alone {capture_fps:.0} frames/s; capture + I420 + H.264 {fps:.1} frames/s unpaced (target >= 30 at 1080p); \
             paced at 30: changing screen {paced_fps:.1} frames/s {:.0} KB/s, still screen {still_fps:.1} frames/s {:.1} KB/s",
            changing_bps / 1000.0,
            still_bps / 1000.0
        );
    }
    Ok(())
}

fn positions(i: usize) -> (f64, f64, (i16, i16)) {
    // Distinct positions, so each motion is a new one.
    let (x, y) = (
        (i % 50) as f64 / 50.0 + 0.01,
        ((i / 50) % 10) as f64 / 10.0 + 0.05,
    );
    let want = (
        udc_agent::input::to_pixel(x, 1280),
        udc_agent::input::to_pixel(y, 720),
    );
    (x, y, want)
}

fn report(how: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "input {how} on {}: {} moves  p50 {:.2} ms  p99 {:.2} ms   (target p50 <= 5 ms on loopback)",
        udc_conformance::base_url(),
        samples.len(),
        ms(percentile(samples, 0.50)),
        ms(percentile(samples, 0.99)),
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut inputs) = (5.0f64, 200usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().context("--seconds S")?.parse()?,
            "--inputs" => inputs = args.next().context("--inputs N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    video_figures(seconds)?;

    let account = Account::create().await;
    let (display, viewing) = (Display::start(), Display::start());
    let desk = DisplayAgent::login(&account, "Bench Desk");
    let laptop = DisplayAgent::login(&account, "Bench Laptop");
    let login = account.login().await;
    let devices = account.api.devices(&login.tokens.access_token).await?;
    let id_of = |name: &str| -> Result<String> {
        Ok(devices
            .iter()
            .find(|d| d.name == name)
            .context("device")?
            .id
            .clone())
    };
    account
        .api
        .trust(
            &login.tokens.access_token,
            &id_of("Bench Desk")?,
            &id_of("Bench Laptop")?,
        )
        .await?;
    desk.run(&[
        "remote",
        "allow",
        "Bench Laptop",
        "--mode",
        "view_and_control",
    ]);
    let desk = desk.spawn(&display, &["remote", "serve"], "remote");
    let recorder = Recorder::start(&display);
    let mut viewer = laptop.start(
        &viewing,
        &["remote", "view", "Bench Desk", "--control", "--no-window"],
        "remote",
        "requested",
    );
    let id = desk.expect("controlled")["session_id"]
        .as_str()
        .context("session id")?
        .to_owned();
    viewer.expect("connected");

    let mut samples = Vec::with_capacity(inputs);
    for i in 0..inputs {
        let (x, y, want) = positions(i);
        let started = Instant::now();
        viewer.send(&json!([{ "type": "pointer_move", "x": x, "y": y }]));
        recorder.wait_event("the pointer motion", |e| {
            matches!(e, x11rb::protocol::Event::MotionNotify(m) if (m.root_x, m.root_y) == want)
        });
        samples.push(started.elapsed());
        let sent: Value = viewer.expect("sent");
        if sent["via"] != "webrtc" {
            bail!("input went {}, not over the data channel", sent["via"]);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    report("over the WebRTC data channel", &mut samples);

    // The same through the host, as a device without a peer-to-peer path sends it.
    let token = viewer_token(&viewer).await?;
    let path = format!("/remote/session/{id}/input");
    let mut samples = Vec::with_capacity(inputs);
    for i in 0..inputs {
        let (x, y, want) = positions(inputs + i);
        let events = json!({ "events": [{ "type": "pointer_move", "x": x, "y": y }] });
        let started = Instant::now();
        let r = account
            .raw(Method::POST, &path, Some(&token), Some(&events))
            .await;
        if r.status != 202 {
            bail!("input {i}: {}", r.body);
        }
        recorder.wait_event("the pointer motion", |e| {
            matches!(e, x11rb::protocol::Event::MotionNotify(m) if (m.root_x, m.root_y) == want)
        });
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    report("relayed by the host", &mut samples);

    // Keyframes on request: the viewer sends an RTCP PLI; the desk says how long after the
    // request its keyframe went out (the screen is still, so no periodic one is due).
    let mut after = Vec::with_capacity(20);
    for _ in 0..20 {
        viewer.send(&json!({ "keyframe": true }));
        viewer.expect("keyframe_asked");
        let sent = desk.expect("keyframe");
        after.push(Duration::from_secs_f64(
            sent["after_ms"].as_f64().context("after_ms")? / 1000.0,
        ));
        // Past the desk's least time between two requested keyframes (250 ms).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    after.sort();
    println!(
        "keyframe on request (PLI → keyframe written to the track): {} requests  p50 {:.1} ms  p99 {:.1} ms   (target <= 200 ms)",
        after.len(),
        ms(percentile(&after, 0.50)),
        ms(percentile(&after, 0.99)),
    );
    viewer.finish();
    Ok(())
}

/// The viewing device's access token, from its session file (the relay must come from the
/// session's requester).
async fn viewer_token(viewer: &DisplayAgent) -> Result<String> {
    let store = udc_agent::Store::at(&viewer.config);
    let mut session = store.load()?.context("the viewer's session")?;
    let client = udc_agent::Client::new(&udc_conformance::base_url());
    session.access_token(&client, &store).await
}
