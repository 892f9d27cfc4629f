//! `udc-remote-bench [--frames 120] [--inputs 200]`: remote control's figures on this machine.
//! - capture (X11 GetImage of the root window) and capture + BGRX→I420 conversion, frames/s, on
//!   1280×720 and 1920×1080 Xvfb screens;
//! - relayed input latency through the host at `UDC_BASE_URL`: from the controlling device's
//!   `POST /remote/session/{id}/input` to the pointer motion arriving at a window on the target
//!   display (`udc-agent remote serve` replays it with XTEST), p50/p99.
//!
//! Prints figures; asserts nothing but that every input arrived.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::json;
use udc_agent::screen::{to_i420, X11Capture};
use udc_conformance::desktop::{Display, DisplayAgent, Recorder};
use udc_conformance::{ms, percentile, Account};

fn capture_figures(frames: usize) -> Result<()> {
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let display = Display::start_sized(w, h);
        let cap = X11Capture::open(Some(&display.name()))?;
        let started = Instant::now();
        for _ in 0..frames {
            cap.capture()?;
        }
        let capture_fps = frames as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..frames {
            to_i420(&cap.capture()?)?;
        }
        let both_fps = frames as f64 / started.elapsed().as_secs_f64();
        println!("capture {w}x{h}: {capture_fps:.1} frames/s; capture + I420: {both_fps:.1} frames/s   (target >= 30 at 1080p with encoding)");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut frames, mut inputs) = (120usize, 200usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--frames" => frames = args.next().context("--frames N")?.parse()?,
            "--inputs" => inputs = args.next().context("--inputs N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    capture_figures(frames)?;

    let account = Account::create().await;
    let display = Display::start();
    let desk = DisplayAgent::login(&account, "Bench Desk");
    let laptop = account.device("Bench Laptop").await;
    let login = account.login().await;
    let devices = account.api.devices(&login.tokens.access_token).await?;
    let desk_id = devices
        .iter()
        .find(|d| d.name == "Bench Desk")
        .context("desk")?
        .id
        .clone();
    account
        .api
        .trust(&login.tokens.access_token, &desk_id, &laptop.id)
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
    let body =
        json!({ "target_device_id": desk_id, "mode": "view_and_control", "max_duration": 3600 });
    let r = account
        .raw(
            Method::POST,
            "/remote/session/request",
            Some(laptop.token()),
            Some(&body),
        )
        .await;
    let id = r.body["session"]["id"]
        .as_str()
        .context("session id")?
        .to_owned();
    desk.expect("controlled");
    let path = format!("/remote/session/{id}/input");
    let mut samples = Vec::with_capacity(inputs);
    for i in 0..inputs {
        // Distinct positions, so each motion is a new one.
        let (x, y) = (
            (i % 50) as f64 / 50.0 + 0.01,
            ((i / 50) % 10) as f64 / 10.0 + 0.05,
        );
        let want = (
            udc_agent::input::to_pixel(x, 1280),
            udc_agent::input::to_pixel(y, 720),
        );
        let events = json!({ "events": [{ "type": "pointer_move", "x": x, "y": y }] });
        let started = Instant::now();
        let r = account
            .raw(Method::POST, &path, Some(laptop.token()), Some(&events))
            .await;
        if r.status != 202 {
            bail!("input {i}: {}", r.body);
        }
        recorder.wait_event("the pointer motion", |e| {
            matches!(e, x11rb::protocol::Event::MotionNotify(m) if (m.root_x, m.root_y) == want)
        });
        samples.push(started.elapsed());
        if i % 25 == 24 {
            let _ = account
                .raw(
                    Method::POST,
                    &format!("/remote/session/{id}/heartbeat"),
                    Some(laptop.token()),
                    None,
                )
                .await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    samples.sort();
    println!(
        "relayed input on {}: {inputs} moves  p50 {:.2} ms  p99 {:.2} ms   (target p50 <= 5 ms over a WebRTC data channel)",
        udc_conformance::base_url(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99)),
    );
    Ok(())
}
