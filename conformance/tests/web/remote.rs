//! Remote sessions from the page: a desk (`udc-agent remote serve` on an Xvfb display painted in
//! four known colours) seen in the page's `<video>` (frames drawn to a canvas and compared), and
//! driven by a person's clicks and keys in the page (WebDriver actions), which the desk's X server
//! receives; a view-only session sends nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use x11rb::protocol::xproto::KeyButMask;
use x11rb::protocol::Event;

use udc_conformance::browser::{Browser, PAGE_PATIENCE};
use udc_conformance::desktop::{Display, DisplayAgent, Recorder};
use udc_conformance::unique_email;

const FIRST: [u32; 4] = [0xdc1e1e, 0x1ec828, 0x1428d2, 0xfafafa];
const SECOND: [u32; 4] = [0xfafafa, 0x1428d2, 0xdc1e1e, 0x1ec828];

/// The page's account with a desk serving remote sessions on `display` (it trusts the page, and
/// lets it in without asking for `allow`, a mode; without, nobody is at the desk to say yes);
/// the desk's daemon and the account's email.
async fn page_and_serving_desk(
    b: &Browser,
    display: &Display,
    recorder: &Recorder,
    allow: Option<&str>,
) -> (DisplayAgent, String) {
    let email = unique_email();
    b.sign_up(&email, "Web Viewer").await;
    let desk = DisplayAgent::login_as(&email, "Desk");
    desk.run(&["devices", "trust", "Web Viewer"]);
    if let Some(mode) = allow {
        desk.run(&["remote", "allow", "Web Viewer", "--mode", mode]);
    }
    recorder.paint(FIRST);
    (desk.spawn(display, &["remote", "serve"], "remote"), email)
}

/// Session `id` as the host sees it `ahead` from now (a test host moves its clock for a request
/// that asks, `CLOCK_HEADER`), read by another device of the account: a session past its time is
/// ended by that read, and both of its sides are told. The device's access token is refreshed at
/// that time too: one from now would have expired by then.
async fn session_ahead(email: &str, id: &str, ahead: Duration) -> Value {
    let api = udc_conformance::client();
    let (signed, _) = api.login(email, udc_conformance::PASSWORD).await.unwrap();
    let clock = api
        .register_device(
            &signed.tokens.access_token,
            &udc_conformance::device_info("Clock"),
        )
        .await
        .unwrap();
    let ahead = ahead.as_millis().to_string();
    let at_that_time = [(udc_conformance::CLOCK_HEADER, ahead.as_str())];
    let refreshed = api
        .raw(
            reqwest::Method::POST,
            "/auth/token/refresh",
            None,
            Some(&json!({ "refresh_token": clock.tokens.refresh_token })),
            &at_that_time,
        )
        .await
        .unwrap();
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let token = refreshed.body["tokens"]["access_token"].as_str().unwrap();
    let read = api
        .raw(
            reqwest::Method::GET,
            &format!("/remote/session/{id}"),
            Some(token),
            None,
            &at_that_time,
        )
        .await
        .unwrap();
    assert_eq!(read.status, 200, "{}", read.body);
    read.body["session"].clone()
}

/// Clicks `button` (a CSS class) in the desk's row once it can be used (the desk is online, says
/// it serves remote sessions, and the page's link is live), and waits for the session to be live.
async fn start_session(b: &Browser, button: &str) {
    click_when_usable(b, button).await;
    b.until(
        "the live session",
        "return document.querySelector('#remote')?.dataset.phase === 'live'",
        json!([]),
    )
    .await;
}

async fn click_when_usable(b: &Browser, button: &str) {
    b.until(
        &format!("an enabled {button} for Desk"),
        "const row = [...document.querySelectorAll('.device')].find(d => \
           d.querySelector('.device-name')?.textContent === 'Desk'); \
         const btn = row?.querySelector(arguments[0]); \
         if (btn && !btn.disabled) { btn.click(); return true; } return false",
        json!([format!(".{button}")]),
    )
    .await;
}

/// The mean colour of a 40×40 patch at each quadrant's centre of the page's current video frame,
/// and the frame's size; null before the first frame.
const FRAME_COLOURS: &str = "
    const v = document.querySelector('#remote-video');
    if (!v || v.videoWidth === 0) return null;
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    const quadrants = [];
    for (let i = 0; i < 4; i++) {
      const cx = Math.round(c.width * (i % 2 ? 0.75 : 0.25)), cy = Math.round(c.height * (i < 2 ? 0.25 : 0.75));
      const d = g.getImageData(cx - 20, cy - 20, 40, 40).data;
      const sum = [0, 0, 0];
      for (let p = 0; p < d.length; p += 4) { sum[0] += d[p]; sum[1] += d[p + 1]; sum[2] += d[p + 2]; }
      quadrants.push(sum.map((s) => Math.round(s / 1600)));
    }
    return { width: c.width, height: c.height, quadrants };";

/// Waits until the page's video shows `colours` (0xRRGGBB per quadrant) at `size`. Within a
/// tolerance: H.264 is lossy, and the stream does not say which YUV matrix it was made with, so
/// Chromium's conversion back to RGB differs from the agent's by up to ~20 per channel (red
/// 220 shows as 235); the four colours are still ≥150 apart in some channel.
async fn wait_picture(b: &Browser, size: (u64, u64), colours: [u32; 4]) {
    let started = Instant::now();
    loop {
        let frame = b.js(FRAME_COLOURS, json!([])).await;
        let seen = frame_matches(&frame, size, colours);
        if seen.is_ok() {
            return;
        }
        assert!(
            started.elapsed() < PAGE_PATIENCE,
            "the page's video never showed {colours:x?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn frame_matches(frame: &Value, size: (u64, u64), colours: [u32; 4]) -> Result<(), String> {
    let got = (frame["width"].as_u64(), frame["height"].as_u64());
    if got != (Some(size.0), Some(size.1)) {
        return Err(format!("frame {frame}"));
    }
    for (i, colour) in colours.into_iter().enumerate() {
        let want = [colour >> 16, (colour >> 8) & 0xff, colour & 0xff];
        for c in 0..3 {
            let v = frame["quadrants"][i][c].as_u64().unwrap_or(999);
            if v.abs_diff(u64::from(want[c])) > 32 {
                return Err(format!(
                    "quadrant {i}: {} vs {want:?}",
                    frame["quadrants"][i]
                ));
            }
        }
    }
    Ok(())
}

/// Where the fractions `fx`, `fy` of the picture are, in CSS pixels from the video element's top
/// left: the picture keeps its aspect ratio inside the element, with bars where the shapes differ.
async fn picture_point(b: &Browser, fx: f64, fy: f64) -> (f64, f64) {
    let p = b
        .js(
            "const v = document.querySelector('#remote-video'); const r = v.getBoundingClientRect(); \
             const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight); \
             const w = v.videoWidth * s, h = v.videoHeight * s; \
             return [(r.width - w) / 2 + arguments[0] * w, (r.height - h) / 2 + arguments[1] * h, r.width, r.height, w, h]",
            json!([fx, fy]),
        )
        .await;
    (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())
}

fn near(got: (i16, i16), want: (i16, i16)) -> bool {
    (got.0 - want.0).abs() <= 2 && (got.1 - want.1).abs() <= 2
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_views_and_controls_a_desk_and_a_view_only_session_sends_nothing() {
    let b = Browser::start().await;
    let target = Display::start();
    let recorder = Recorder::start(&target);
    let (desk, _) = page_and_serving_desk(&b, &target, &recorder, Some("view_and_control")).await;

    // Control: the desk's screen in the page, as the desk shows it.
    start_session(&b, "control-button").await;
    let id = desk.expect("controlled")["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    desk.expect("streaming");
    wait_picture(&b, (1280, 720), FIRST).await;
    b.wait_text("Controlling “Desk”").await;
    b.until(
        "the link's figures",
        "return /ms · .*1280×720/.test(document.querySelector('#remote-figures')?.textContent ?? '')",
        json!([]),
    )
    .await;
    b.screenshots("remote-control").await;

    // A click at a quarter across and half down the picture (the window is wider than 16:9
    // after the bar: the picture has bars above and below) lands there on the desk.
    let (x, y) = picture_point(&b, 0.25, 0.5).await;
    b.click_at("#remote-video", x, y).await;
    let click = recorder.wait_event(
        "a left click",
        |e| matches!(e, Event::ButtonPress(p) if p.detail == 1),
    );
    let Event::ButtonPress(click) = click else {
        unreachable!()
    };
    assert!(
        near((click.root_x, click.root_y), (320, 360)),
        "clicked at {:?}",
        (click.root_x, click.root_y)
    );

    // Keys as the page's keyboard makes them: Shift+A, then b (Shift let go), then "!".
    let key_press = |want: u8| {
        let e = recorder.wait_event(
            &format!("key {}", want as char),
            |e| matches!(e, Event::KeyPress(k) if recorder.keysym(k.detail) == u32::from(want)),
        );
        let Event::KeyPress(k) = e else {
            unreachable!()
        };
        k.state
    };
    b.press_keys(&["\u{E008}", "a"]).await;
    assert!(
        key_press(b'a').contains(KeyButMask::SHIFT),
        "Shift+A is a capital"
    );
    b.press_keys(&["b"]).await;
    assert!(
        !key_press(b'b').contains(KeyButMask::SHIFT),
        "Shift was let go with the A"
    );
    b.press_keys(&["!"]).await;
    assert!(
        key_press(b'1').contains(KeyButMask::SHIFT),
        "\"!\" is Shift+1 on the desk's keyboard"
    );
    // Shift let go before the letter, as people do: nothing stays held on the desk.
    b.key_steps(&[
        (true, "\u{E008}"),
        (true, "c"),
        (false, "\u{E008}"),
        (false, "c"),
    ])
    .await;
    assert!(key_press(b'c').contains(KeyButMask::SHIFT));
    b.press_keys(&["d"]).await;
    assert!(
        !key_press(b'd').contains(KeyButMask::SHIFT),
        "Shift was let go"
    );
    // Characters of another layout than the desk's (US): the desk gives each a key of its own.
    let mut borrowed = Vec::new();
    for (typed, keysym) in [("é", 0xe9), ("€", 0x0100_20ac), ("ß", 0xdf)] {
        b.press_keys(&[typed]).await;
        let e = recorder.wait_event(
            &format!("the key typing {typed}"),
            |e| matches!(e, Event::KeyPress(k) if recorder.keysym_now(k.detail) == keysym),
        );
        let Event::KeyPress(k) = e else {
            unreachable!()
        };
        borrowed.push(k.detail);
    }
    // A key still held when the session ends.
    b.key_steps(&[(true, "x")]).await;
    key_press(b'x');
    assert!(
        desk.drain(Duration::from_millis(300))
            .iter()
            .filter(|l| l["remote"] == "input")
            .all(|l| l["via"] == "webrtc"),
        "input went peer to peer"
    );

    // The video is live: a repainted screen reaches the page.
    recorder.paint(SECOND);
    wait_picture(&b, (1280, 720), SECOND).await;

    // Ending from the page stops capture on the desk, and the page says so.
    b.click("#remote-end").await;
    let stopped = desk.expect("stream_stopped");
    assert_eq!(stopped["session_id"], id.as_str());
    assert_eq!(desk.expect("ended")["reason"], "requester_ended");
    b.wait_text("You ended the session.").await;
    // The desk is as it was: no key held, the borrowed keys given back to its keyboard map.
    assert!(
        recorder.keys_down().is_empty(),
        "held on the desk: {:?}",
        recorder.keys_down()
    );
    for code in borrowed {
        assert_eq!(recorder.keysym_now(code), 0, "key {code} given back");
    }
    b.key_steps(&[(false, "x")]).await;
    b.click("#remote-close").await;

    // View only: the picture, and nothing of the page's pointer or keys reaches the desk.
    start_session(&b, "view-button").await;
    desk.expect("streaming");
    wait_picture(&b, (1280, 720), SECOND).await;
    b.wait_text("View only").await;
    let pointer = recorder.pointer();
    let (x, y) = picture_point(&b, 0.75, 0.75).await;
    b.click_at("#remote-video", x, y).await;
    b.press_keys(&["x"]).await;
    let lines = desk.drain(Duration::from_millis(1500));
    assert!(
        lines
            .iter()
            .all(|l| l["remote"] != "input" && l["remote"] != "input_dropped"),
        "a view-only page sent input: {lines:?}"
    );
    assert_eq!(recorder.pointer(), pointer, "the desk's pointer stayed");
    b.screenshots("remote-view").await;
    b.click("#remote-end").await;
    desk.expect("stream_stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_is_told_no_then_shows_a_1080p_desk_and_says_when_the_desk_ends_it_or_time_does() {
    let b = Browser::start().await;
    let target = Display::start_sized(1920, 1080);
    let recorder = Recorder::start(&target);
    b.watch_peers().await;
    let (desk, email) = page_and_serving_desk(&b, &target, &recorder, None).await;
    b.until(
        "View and Control for Desk",
        "return [...document.querySelectorAll('.device .view-button')].some((v) => !v.disabled)",
        json!([]),
    )
    .await;
    b.screenshots("remote-devices").await;

    // Nobody at the desk to let the page in: it says no, and the page says so.
    click_when_usable(&b, "view-button").await;
    b.wait_text("The other device's owner said no.").await;
    desk.expect("denied");
    b.screenshots("remote-denied").await;
    b.click("#remote-close").await;

    // Let in without asking: the picture at 1920×1080.
    desk.run(&["remote", "allow", "Web Viewer", "--mode", "view_only"]);
    start_session(&b, "view-button").await;
    let id = desk.expect("controlled")["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_picture(&b, (1920, 1080), FIRST).await;
    // The desk answered in Constrained Baseline, packetization mode 1, with the parameters the
    // page offered it in (its offer lists plain Baseline first). The stream's own level, in its
    // SPS, covers 1080p: the page shows the picture above.
    let answer = b
        .js(
            "return window.udcPeers.at(-1).remoteDescription.sdp",
            json!([]),
        )
        .await;
    assert!(
        answer
            .as_str()
            .unwrap()
            .contains("packetization-mode=1;profile-level-id=42e01f"),
        "the desk's answer: {answer}"
    );

    // The page asks for a keyframe (an RTCP PLI from Chromium itself): the page's statistics
    // say it sent one, the desk says it sent a keyframe because it was asked, and the page
    // decoded a keyframe after. How soon the desk answered is in its line (`after_ms`), for the
    // benchmark's figures, not asserted.
    desk.drain(Duration::from_millis(500));
    let before = b.video_received().await;
    b.ask_keyframe().await;
    let sent = desk.expect("keyframe");
    assert_eq!(sent["requested"], true);
    eprintln!(
        "the desk answered the page's PLI after {} ms",
        sent["after_ms"]
    );
    let started = Instant::now();
    loop {
        let now = b.video_received().await;
        assert!(now["error"].is_null(), "the page's keyframe request: {now}");
        let more = |what: &str| now[what].as_u64() > before[what].as_u64();
        if more("plis") && more("keyframes") {
            break;
        }
        assert!(
            started.elapsed() < PAGE_PATIENCE,
            "no keyframe more in the page: {before} then {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The desk's owner ends it there: the page says who ended it, in words.
    desk.run(&["remote", "end", &id]);
    b.wait_text("The other device ended the session.").await;
    b.until(
        "the session over",
        "return document.querySelector('#remote')?.dataset.phase === 'ended'",
        json!([]),
    )
    .await;
    b.screenshots("remote-ended").await;
    b.click("#remote-close").await;

    // A session past its time (an hour, the page's ask) ends on both sides, and the page says
    // why: the host's clock is moved on for one read, which ends it.
    start_session(&b, "view-button").await;
    let id = desk.expect("controlled")["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    desk.expect("streaming");
    let ended = session_ahead(&email, &id, Duration::from_secs(3601)).await;
    assert_eq!(
        (&ended["state"], &ended["end_reason"]),
        (&json!("ended"), &json!("max_duration"))
    );
    b.wait_text("The session reached its time limit.").await;
    assert_eq!(desk.expect("stream_stopped")["session_id"], id.as_str());
}

/// A desk with two screens side by side: the page lists them in the session's bar and shows the
/// first (none is marked primary) until the person picks another, or all of them as one
/// picture — in a view-only session too, where a choice of screen is not input. Then the desk
/// is lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_picks_which_screen_of_a_desk_it_shows() {
    let [top_left, top_right, bottom_left, bottom_right] = FIRST;
    let b = Browser::start().await;
    let target = Display::start_sized(2560, 720);
    target.set_monitors(&[("left", 0, 0, 1280, 720), ("right", 1280, 0, 1280, 720)]);
    let recorder = Recorder::start(&target);
    let (desk, _) = page_and_serving_desk(&b, &target, &recorder, Some("view_only")).await;
    start_session(&b, "view-button").await;
    wait_picture(
        &b,
        (1280, 720),
        [top_left, top_left, bottom_left, bottom_left],
    )
    .await;
    let options = b
        .until(
            "the screens in the bar",
            "const s = document.querySelector('#remote-screen'); \
             return s && [...s.options].map(o => o.value + '=' + o.textContent).join(' | ')",
            json!([]),
        )
        .await;
    assert_eq!(
        options,
        "left=left (1280×720) | right=right (1280×720) | all=All screens"
    );
    let pick = |screen: &'static str| {
        b.js(
            "const s = document.querySelector('#remote-screen'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change', { bubbles: true }))",
            json!([screen]),
        )
    };
    pick("right").await;
    wait_picture(
        &b,
        (1280, 720),
        [top_right, top_right, bottom_right, bottom_right],
    )
    .await;
    assert_eq!(desk.expect("screen_chosen")["screen"], "right");
    b.screenshots("remote-screens").await;
    pick("all").await;
    wait_picture(&b, (2560, 720), FIRST).await;
    assert_eq!(
        b.js(
            "return document.querySelector('#remote-screen').value",
            json!([])
        )
        .await,
        "all"
    );

    // The desk goes away mid-session, as in a crash: the page hears nothing more from it and
    // says the link was lost (5 s after its connection stops answering), or — when that took
    // longer, as on a machine this test shares with many others — the host noticed the missed
    // heartbeats first (15 s) and the page says the host's words. Either way the person is
    // told, and the page stops waiting.
    let mut desk = desk;
    desk.kill();
    let told = b
        .until(
            "that the other device is gone",
            "const t = document.body.innerText; \
             return ['The connection to the other device was lost.', \
                     'The session ended: one side stopped answering.'].find(w => t.includes(w))",
            json!([]),
        )
        .await;
    assert!(told.is_string(), "{told}");
    b.screenshots("remote-lost").await;
}
