//! The agent on real X servers: two Xvfb displays, one `udc-agent clipboard` on each, the
//! clipboard set and read with `xclip` as a user's applications would.

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use x11rb::protocol::xproto::KeyButMask;
use x11rb::protocol::Event;

use udc_agent::clipboard::{png_decode, png_encode, Content};
use udc_conformance::cli_agent::this_device;
use udc_conformance::desktop::{
    clipboard_agent, quadrants_match, quadrants_match_at, AgentLog, Display, DisplayAgent,
    Recorder, PATIENCE,
};
use udc_conformance::{Account, TestDevice};

#[tokio::test(flavor = "multi_thread")]
async fn text_and_images_copied_on_one_display_paste_on_the_other_without_echo() {
    let account = Account::create().await;
    let (da, db) = (Display::start(), Display::start());
    let a = clipboard_agent(&account, "Desk A", &da);
    let b = clipboard_agent(&account, "Desk B", &db);

    let text = format!("copied on A {}", uuid::Uuid::new_v4());
    da.copy("UTF8_STRING", text.as_bytes());
    let sent = a.expect("sent");
    assert_eq!(sent["content_type"], "text/plain");
    let applied = b.expect("applied");
    assert_eq!(applied["id"], sent["id"]);
    assert_eq!(
        db.wait_paste("UTF8_STRING", |p| p == text.as_bytes()),
        text.as_bytes()
    );

    // An image: a gradient with transparency, compared pixel by pixel after the trip.
    let (w, h) = (64usize, 48usize);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            [
                (i % w * 4) as u8,
                (i / w * 5) as u8,
                200,
                if i % 7 == 0 { 128 } else { 255 },
            ]
        })
        .collect();
    da.copy("image/png", &png_encode(w, h, &rgba).unwrap());
    let sent = a.expect("sent");
    assert_eq!(sent["content_type"], "image/png");
    assert_eq!(b.expect("applied")["id"], sent["id"]);
    let pasted = db.wait_paste("image/png", |p| p.starts_with(b"\x89PNG"));
    assert_eq!(
        png_decode(&pasted).unwrap(),
        Content::Image {
            width: w,
            height: h,
            rgba
        }
    );

    // And back: copied on B, pasted on A.
    let back = format!("copied on B {}", uuid::Uuid::new_v4());
    db.copy("UTF8_STRING", back.as_bytes());
    b.expect("sent");
    a.expect("applied");
    da.wait_paste("UTF8_STRING", |p| p == back.as_bytes());

    // A screenshot-sized image (noise does not compress: ~480 KB of PNG) is over the inline
    // limit: it travels as an encrypted file, which B may download once A trusts it.
    trusting(&account, "Desk A", &["Desk B"]).await;
    let (w, h) = (400usize, 300usize);
    let mut seed = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..w * h * 4)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    let big = png_encode(w, h, &noise).unwrap();
    assert!(big.len() > 256 * 1024, "{} bytes", big.len());
    da.copy("image/png", &big);
    let sent = a.expect("sent");
    assert_eq!(b.expect("applied")["id"], sent["id"]);
    let pasted = db.wait_paste("image/png", |p| {
        p.starts_with(b"\x89PNG") && p.len() > 256 * 1024
    });
    assert_eq!(
        png_decode(&pasted).unwrap(),
        Content::Image {
            width: w,
            height: h,
            rgba: noise
        }
    );

    // No echo: each copy was sent once, by the device it was made on, and applied once.
    let quiet = Duration::from_millis(1500);
    let (rest_a, rest_b) = (a.drain(quiet), b.drain(Duration::from_millis(10)));
    assert!(
        rest_a.is_empty() && rest_b.is_empty(),
        "echo: {rest_a:?} {rest_b:?}"
    );
    let history = udc_agent::Client::new(&udc_conformance::base_url())
        .clipboard_history(&account.login().await.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(history.len(), 4, "four copies, four items: {history:?}");
    assert!(
        history[0].file_id.is_some() && history[0].ciphertext.is_none(),
        "{:?}",
        history[0]
    );

    // What B applied outlives the application that copied it on A: B's agent serves it.
    let _ = Command::new("pkill")
        .args(["-f", &format!("xclip .*-display {}", da.name())])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    let still = db.paste("image/png").unwrap_or_default();
    assert!(
        still == pasted,
        "B's agent keeps owning what it applied ({} bytes)",
        still.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn input_from_the_controlling_device_lands_on_the_target_display() {
    let account = Account::create().await;
    let display = Display::start();
    let desk = DisplayAgent::login(&account, "Desk");
    let laptop = account.device("Laptop").await;
    let tablet = account.device("Tablet").await;
    let desk_id = trusting(&account, "Desk", &["Laptop", "Tablet"]).await;
    desk.run(&["remote", "allow", "Laptop", "--mode", "view_and_control"]);
    let desk = desk.spawn(&display, &["remote", "serve"], "remote");
    let recorder = Recorder::start(&display);

    let ask = |device: &TestDevice| {
        let body =
            json!({ "target_device_id": desk_id, "mode": "view_and_control", "max_duration": 600 });
        let token = device.token().to_owned();
        let account = &account;
        async move {
            let r = account
                .raw(
                    Method::POST,
                    "/remote/session/request",
                    Some(&token),
                    Some(&body),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            r.body["session"]["id"].as_str().unwrap().to_owned()
        }
    };
    let input = |id: &str, events: serde_json::Value| {
        let path = format!("/remote/session/{id}/input");
        let token = laptop.token().to_owned();
        let account = &account;
        async move {
            let r = account
                .raw(
                    Method::POST,
                    &path,
                    Some(&token),
                    Some(&json!({ "events": events })),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
    };

    // The laptop is allowed unattended: the desk approves at once and says it is controlled.
    let id = ask(&laptop).await;
    let controlled = desk.expect("controlled");
    assert_eq!(
        (controlled["session_id"].as_str(), controlled["by"].as_str()),
        (Some(id.as_str()), Some("Laptop"))
    );

    input_lands(&recorder, |events| input(&id, events)).await;

    // The target's owner ends it from the target.
    let ended = desk.run(&["remote", "end", &id]);
    assert_eq!(
        (ended["state"].as_str(), ended["end_reason"].as_str()),
        (Some("ended"), Some("target_ended"))
    );
    assert_eq!(desk.expect("ended")["session_id"], id.as_str());

    // The tablet is trusted but not allowed unattended, and nobody is at the desk to say yes.
    let id = ask(&tablet).await;
    assert_eq!(desk.expect("denied")["session_id"], id.as_str());
    let r = account
        .raw(
            Method::GET,
            &format!("/remote/session/{id}"),
            Some(tablet.token()),
            None,
        )
        .await;
    assert_eq!(r.body["session"]["state"], "denied");
}

/// A pointer move, a left click and shift+a, each sent with `send` (as the session API's input
/// events), land on the target display: positions are fractions of its 1280x720 screen.
async fn input_lands<F, Fut>(recorder: &Recorder, mut send: F)
where
    F: FnMut(Value) -> Fut,
    Fut: Future<Output = ()>,
{
    send(json!([{ "type": "pointer_move", "x": 0.25, "y": 0.5 }])).await;
    recorder.wait_pointer((320, 360));
    send(json!([
        { "type": "pointer_button", "button": "left", "down": true },
        { "type": "pointer_button", "button": "left", "down": false },
    ]))
    .await;
    recorder.wait_event("a left click", |e| matches!(e, Event::ButtonPress(b) if b.detail == 1 && (b.root_x, b.root_y) == (320, 360)));
    send(json!([
        { "type": "key", "key": "a", "down": true, "modifiers": ["shift"] },
        { "type": "key", "key": "a", "down": false, "modifiers": ["shift"] },
    ]))
    .await;
    let key = recorder.wait_event(
        "shift+a",
        |e| matches!(e, Event::KeyPress(k) if recorder.keysym(k.detail) == u32::from(b'a')),
    );
    let Event::KeyPress(k) = key else {
        unreachable!()
    };
    assert!(
        k.state.contains(KeyButMask::SHIFT),
        "shift was held: {:?}",
        k.state
    );
}

/// `input_lands`, sent by `viewer` (a `remote view` daemon) on its data channel.
async fn input_lands_over_webrtc(recorder: &Recorder, viewer: &mut DisplayAgent) {
    let sender = std::sync::Mutex::new(viewer);
    input_lands(recorder, |events| {
        let mut v = sender.lock().unwrap();
        v.send(&events);
        assert_eq!(v.expect("sent")["via"], "webrtc");
        async {}
    })
    .await;
}

/// `truster` (a device's name) trusts each of `trusted`; its id.
async fn trusting(account: &Account, truster: &str, trusted: &[&str]) -> String {
    let token = account.login().await.tokens.access_token;
    let devices = account.api.devices(&token).await.unwrap();
    let id = |name: &str| devices.iter().find(|d| d.name == name).unwrap().id.clone();
    for other in trusted {
        account
            .api
            .trust(&token, &id(truster), &id(other))
            .await
            .unwrap();
    }
    id(truster)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_viewer_sees_and_drives_the_target_screen_over_webrtc() {
    const FIRST: [u32; 4] = [0xdc1e1e, 0x1ec828, 0x1428d2, 0xfafafa];
    const SECOND: [u32; 4] = [0xfafafa, 0x1428d2, 0xdc1e1e, 0x1ec828];
    let account = Account::create().await;
    let (target, viewing) = (Display::start(), Display::start());
    let desk = DisplayAgent::login(&account, "Desk");
    let laptop = DisplayAgent::login(&account, "Laptop");
    let tablet = DisplayAgent::login(&account, "Tablet");
    let phone = DisplayAgent::login(&account, "Phone");
    trusting(&account, "Desk", &["Laptop", "Tablet", "Phone"]).await;
    desk.run(&["remote", "allow", "Laptop", "--mode", "view_and_control"]);
    desk.run(&["remote", "allow", "Tablet", "--mode", "view_only"]);
    let recorder = Recorder::start(&target);
    recorder.paint(FIRST);
    let desk = desk.spawn(&target, &["remote", "serve"], "remote");
    let dir = std::env::temp_dir().join(format!("udc-view-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    // Control, with the first picture saved: the screen as the target shows it.
    let first = dir.join("first.png");
    let mut viewer = controlling_desk(laptop, &viewing, &first);
    let id = desk.expect("controlled")["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    viewer.expect("approved");
    // The picture may come before the input channel opens, or after.
    viewer.expect_all(&["connected", "snapshot"]);
    let lines = desk.expect_all(&["streaming", "capturing"]);
    assert_eq!(lines[0]["session_id"], id.as_str());
    assert_eq!(lines[1]["method"], "x11-shm", "{}", lines[1]);
    quadrants_match(&first, FIRST).unwrap();

    // Input on the data channel lands on the target's display.
    input_lands_over_webrtc(&recorder, &mut viewer).await;

    // The video is live: a repainted screen reaches the viewer.
    recorder.paint(SECOND);
    shown(&mut viewer, &dir.join("later.png"), SECOND, (1280, 720));

    // A keyframe asked for (an RTCP PLI, as a viewer sends when a packet was lost) is sent at
    // once, not at the next periodic one, though the screen is still.
    viewer.send(&json!({ "keyframe": true }));
    viewer.expect("keyframe_asked");
    let keyframe = desk.expect("keyframe");
    assert_eq!(keyframe["requested"], true, "{keyframe}");

    // The target's owner ends it: capture stops, and the viewer's side closes and exits.
    let ended = desk.run(&["remote", "end", &id]);
    assert_eq!(ended["end_reason"], "target_ended");
    let stopped = desk.expect("stream_stopped");
    assert!(stopped["frames"].as_u64().unwrap() > 0 && stopped["bytes"].as_u64().unwrap() > 0);
    assert!(
        stopped["keyframe_requests"].as_u64().unwrap() >= 1,
        "{stopped}"
    );
    assert!(
        viewer.finish(),
        "the viewer exits cleanly when the target ends"
    );

    // View only: the viewer's input is dropped on the target; the viewer ends it by closing.
    let pointer = recorder.pointer();
    let mut watcher = tablet.start(
        &viewing,
        &["remote", "view", "Desk", "--no-window"],
        "remote",
        "requested",
    );
    watcher.expect("connected");
    desk.expect("streaming");
    watcher.send(&json!([{ "type": "pointer_move", "x": 0.9, "y": 0.9 }]));
    assert_eq!(desk.expect("input_dropped")["count"], 1);
    assert_eq!(recorder.pointer(), pointer, "view-only input moved nothing");
    assert!(watcher.finish());
    desk.expect("stream_stopped");
    assert_eq!(desk.expect("ended")["reason"], "requester_ended");

    // Nobody at the desk answers the phone: denied, and nothing is captured.
    let mut refused = phone.start(
        &viewing,
        &["remote", "view", "Desk", "--no-window"],
        "remote",
        "requested",
    );
    refused.expect("denied");
    assert!(!refused.finish(), "a denied viewer fails");
    let after: Vec<Value> = desk.drain(Duration::from_millis(500));
    assert!(
        after.iter().all(|l| l["remote"] != "streaming"),
        "no capture for a denied request: {after:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_screen_is_captured_alike_through_shared_memory_and_plain_requests() {
    use udc_agent::screen::X11Capture;
    let display = Display::start();
    let recorder = Recorder::start(&display);
    recorder.paint([0xff0000, 0x00ff00, 0x0000ff, 0xffffff]);
    let mut cap = X11Capture::open(Some(&display.name())).unwrap();
    assert!(cap.uses_shm(), "a local X server offers MIT-SHM");
    let shared = cap.capture().unwrap();
    let mut cap = cap.without_shm();
    assert!(!cap.uses_shm());
    let plain = cap.capture().unwrap();
    assert_eq!((shared.width, shared.height), (1280, 720));
    assert!(shared.bgrx == plain.bgrx, "the two captures differ");
    // BGRX: the top-left quadrant is red, the bottom-right white.
    assert_eq!(&shared.bgrx[..3], &[0, 0, 255]);
    assert_eq!(
        &shared.bgrx[(719 * 1280 + 1279) * 4..][..3],
        &[255, 255, 255]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_sent_from_the_viewer_type_into_an_xterm_on_the_target() {
    let account = Account::create().await;
    let (target, viewing) = (Display::start(), Display::start());
    let desk = DisplayAgent::login(&account, "Desk");
    let laptop = DisplayAgent::login(&account, "Laptop");
    trusting(&account, "Desk", &["Laptop"]).await;
    desk.run(&["remote", "allow", "Laptop", "--mode", "view_and_control"]);
    // An xterm at the top left whose shell copies what is typed into a file, line by line.
    let typed = std::env::temp_dir().join(format!("udc-typed-{}", uuid::Uuid::new_v4().simple()));
    let mut xterm = Command::new("xterm")
        .args(["-u8", "-geometry", "80x24+0+0", "-e", "sh", "-c"])
        .env("LC_ALL", "C.UTF-8")
        .arg(format!("cat > {}", typed.display()))
        .env("DISPLAY", target.name())
        .spawn()
        .expect("xterm (apt install xterm; scripts/setup.sh does)");
    let started = Instant::now();
    while !typed.exists() {
        assert!(started.elapsed() < PATIENCE, "the xterm did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let desk = desk.spawn(&target, &["remote", "serve"], "remote");
    let mut viewer = laptop.start(
        &viewing,
        &["remote", "view", "Desk", "--control", "--no-window"],
        "remote",
        "requested",
    );
    viewer.expect("connected");
    // No window manager: the keyboard follows the pointer, so point at the xterm first.
    let mut send = |events: Value| {
        viewer.send(&events);
        assert_eq!(viewer.expect("sent")["via"], "webrtc");
    };
    send(json!([{ "type": "pointer_move", "x": 0.1, "y": 0.1 }]));
    let key = |k: &str, modifiers: &[&str]| {
        json!([
            { "type": "key", "key": k, "down": true, "modifiers": modifiers },
            { "type": "key", "key": k, "down": false, "modifiers": modifiers },
        ])
    };
    for k in ["u", "d", "c"] {
        send(key(k, &[]));
    }
    send(key("1", &["shift"]));
    // Characters the target's (US) keyboard map has no key for: typed all the same.
    for k in ["é", "€"] {
        send(key(k, &[]));
    }
    send(key("Enter", &[]));
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&typed).unwrap_or_default();
        if text == "udc!é€\n" {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the xterm got {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(viewer.finish());
    desk.expect("stream_stopped");
    let _ = xterm.kill();
    let _ = xterm.wait();
    let _ = std::fs::remove_file(&typed);
}

/// A new account's "Desk" serving remote sessions on `target` (painted in `colours`), letting
/// its "Laptop" control it without asking; both relay-only with `relay_only`. The desk's daemon,
/// the laptop (not started), and the target's recorder.
/// Waits until `viewer`'s picture, saved to `png`, shows `colours` at `size`: the target's
/// screen changed (repainted, another screen chosen, back after a while out of reach).
fn shown(
    viewer: &mut DisplayAgent,
    png: &std::path::Path,
    colours: [u32; 4],
    size: (usize, usize),
) {
    let started = Instant::now();
    loop {
        viewer.send(&json!({ "snapshot": png }));
        viewer.expect("snapshot");
        match quadrants_match_at(png, colours, size) {
            Ok(()) => return,
            Err(e) => assert!(
                started.elapsed() < PATIENCE,
                "the viewer never showed {colours:x?} at {size:?}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `viewer` asks to control "Desk" from `display`, saving the first picture it shows to
/// `snapshot`; started once the request is made.
fn controlling_desk(
    viewer: DisplayAgent,
    display: &Display,
    snapshot: &std::path::Path,
) -> DisplayAgent {
    let args = ["remote", "view", "Desk", "--control", "--snapshot"];
    let snapshot = snapshot.to_str().unwrap();
    viewer.start(
        display,
        &[&args[..], &[snapshot]].concat(),
        "remote",
        "requested",
    )
}

async fn desk_serving_laptop(
    target: &Display,
    colours: [u32; 4],
    relay_only: bool,
) -> (DisplayAgent, DisplayAgent, Recorder) {
    let account = Account::create().await;
    let mut desk = DisplayAgent::login(&account, "Desk");
    let mut laptop = DisplayAgent::login(&account, "Laptop");
    if relay_only {
        desk = desk.with_env("UDC_RTC_RELAY_ONLY", "1");
        laptop = laptop.with_env("UDC_RTC_RELAY_ONLY", "1");
    }
    trusting(&account, "Desk", &["Laptop"]).await;
    desk.run(&["remote", "allow", "Laptop", "--mode", "view_and_control"]);
    let recorder = Recorder::start(target);
    recorder.paint(colours);
    let desk = desk.spawn(target, &["remote", "serve"], "remote");
    (desk, laptop, recorder)
}

/// The relay path alone: both devices offer only candidates on the TURN relay (coturn on
/// loopback, started with the host by scripts/hosts.sh, with credentials from the host's shared
/// secret), so the picture and the input can only have gone through it.
#[tokio::test(flavor = "multi_thread")]
async fn the_viewer_reaches_the_target_through_a_turn_relay_alone() {
    const COLOURS: [u32; 4] = [0x1428d2, 0xdc1e1e, 0xfafafa, 0x1ec828];
    let (target, viewing) = (Display::start(), Display::start());
    let (desk, laptop, recorder) = desk_serving_laptop(&target, COLOURS, true).await;
    let dir = std::env::temp_dir().join(format!("udc-relay-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("relayed.png");
    let mut viewer = controlling_desk(laptop, &viewing, &shot);
    let lines = viewer.expect_all(&["connected", "snapshot"]);
    let connected = lines.iter().find(|l| l["remote"] == "connected").unwrap();
    let kinds = connected["candidates"].as_array().unwrap();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| k == "relay"),
        "only relay candidates were offered: {connected}"
    );
    quadrants_match(&shot, COLOURS).unwrap();
    input_lands_over_webrtc(&recorder, &mut viewer).await;
    assert!(viewer.finish());
    desk.expect("stream_stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A desk with two screens side by side: the viewer is told of both, sees the primary one (the
/// first here: none is marked) until it chooses another, then all of them as one picture; the
/// pointer lands on the screen shown. A screen the desk does not have changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_viewer_chooses_which_screen_of_the_target_it_sees_and_drives() {
    const COLOURS: [u32; 4] = [0xdc1e1e, 0x1ec828, 0x1428d2, 0xfafafa];
    let [top_left, top_right, bottom_left, bottom_right] = COLOURS;
    let target = Display::start_sized(2560, 720);
    target.set_monitors(&[("left", 0, 0, 1280, 720), ("right", 1280, 0, 1280, 720)]);
    let viewing = Display::start();
    let (desk, laptop, recorder) = desk_serving_laptop(&target, COLOURS, false).await;
    let dir = std::env::temp_dir().join(format!("udc-screens-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("first.png");
    let mut viewer = controlling_desk(laptop, &viewing, &first);
    let lines = viewer.expect_all(&["connected", "snapshot", "screens"]);
    let screens = &lines[2];
    let ids: Vec<&str> = screens["screens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["left", "right"], "{screens}");
    assert_eq!(screens["screen"], "primary");
    quadrants_match_at(
        &first,
        [top_left, top_left, bottom_left, bottom_left],
        (1280, 720),
    )
    .unwrap();

    let later = dir.join("later.png");
    viewer.send(&json!({ "screen": "right" }));
    assert_eq!(viewer.expect("screen")["screen"], "right");
    assert_eq!(desk.expect("screen_chosen")["screen"], "right");
    shown(
        &mut viewer,
        &later,
        [top_right, top_right, bottom_right, bottom_right],
        (1280, 720),
    );
    // The middle of the picture is the middle of the right screen.
    viewer.send(&json!([{ "type": "pointer_move", "x": 0.5, "y": 0.5 }]));
    recorder.wait_pointer((1920, 360));

    viewer.send(&json!({ "screen": "nowhere" }));
    viewer.send(&json!({ "screen": "all" }));
    // The first answer the desk gives is to "all": "nowhere" was refused.
    assert_eq!(desk.expect("screen_chosen")["screen"], "all");
    shown(&mut viewer, &later, COLOURS, (2560, 720));
    viewer.send(&json!([{ "type": "pointer_move", "x": 0.25, "y": 0.25 }]));
    recorder.wait_pointer((640, 180));
    assert!(viewer.finish());
    desk.expect("stream_stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The target's screen out of reach for a moment — here its X server goes away and comes back
/// at another size, as a screen does when it is locked or its resolution changes — and the
/// session waits for it and goes on at the new size, instead of ending.
#[tokio::test(flavor = "multi_thread")]
async fn the_session_waits_for_a_screen_out_of_reach_and_goes_on_at_its_new_size() {
    const FIRST: [u32; 4] = [0xdc1e1e, 0x1ec828, 0x1428d2, 0xfafafa];
    const AFTER: [u32; 4] = [0x1ec828, 0xfafafa, 0xdc1e1e, 0x1428d2];
    let (mut target, viewing) = (Display::start(), Display::start());
    let (desk, laptop, recorder) = desk_serving_laptop(&target, FIRST, false).await;
    let dir = std::env::temp_dir().join(format!("udc-resized-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("first.png");
    let mut viewer = controlling_desk(laptop, &viewing, &first);
    viewer.expect_all(&["connected", "snapshot"]);
    quadrants_match(&first, FIRST).unwrap();

    drop(recorder);
    target.restart_sized(1024, 768);
    let recorder = Recorder::start(&target);
    recorder.paint(AFTER);
    shown(&mut viewer, &dir.join("later.png"), AFTER, (1024, 768));
    // The target says so: captured again, at the new size.
    while desk.expect("capturing")["width"] != 1024 {}
    assert!(viewer.finish());
    desk.expect("stream_stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `remote view` on a desktop: a window shows the target's screen, a click and keys in it reach
/// the target, and closing it ends the session.
#[tokio::test(flavor = "multi_thread")]
async fn the_viewers_window_shows_the_target_and_drives_it_until_closed() {
    use udc_agent::input::X11Injector;
    const COLOURS: [u32; 4] = [0x1ec828, 0xfafafa, 0xdc1e1e, 0x1428d2];
    let (target, viewing) = (Display::start(), Display::start());
    let (desk, laptop, recorder) = desk_serving_laptop(&target, COLOURS, false).await;
    let mut viewer = laptop.start(
        &viewing,
        &["remote", "view", "Desk", "--control"],
        "remote",
        "requested",
    );
    viewer.expect("window");
    // The window (no window manager: at the top left, the picture's size) shows the screen.
    let shot =
        std::env::temp_dir().join(format!("udc-window-{}.png", uuid::Uuid::new_v4().simple()));
    let started = Instant::now();
    loop {
        viewing.screenshot(&shot);
        match quadrants_match(&shot, COLOURS) {
            Ok(()) => break,
            Err(e) => assert!(
                started.elapsed() < PATIENCE,
                "the window never showed the screen: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    viewing.keep_screenshot(&shot, "agent-window");

    // A person's click and keys on the viewing display, in the window.
    let person = X11Injector::open(Some(&viewing.name())).unwrap();
    let act = |e: Value| person.inject(&serde_json::from_value(e).unwrap()).unwrap();
    act(json!({ "type": "pointer_move", "x": 0.25, "y": 0.5 }));
    recorder.wait_pointer((320, 360));
    // Held as long as a person holds a click: the window reads its buttons once a frame.
    act(json!({ "type": "pointer_button", "button": "left", "down": true }));
    std::thread::sleep(Duration::from_millis(100));
    act(json!({ "type": "pointer_button", "button": "left", "down": false }));
    recorder.wait_event("a left click", |e| matches!(e, Event::ButtonPress(b) if b.detail == 1 && (b.root_x, b.root_y) == (320, 360)));
    for k in ["A", "b"] {
        act(json!({ "type": "key", "key": k, "down": true }));
        act(json!({ "type": "key", "key": k, "down": false }));
    }
    let a = recorder.wait_event(
        "A",
        |e| matches!(e, Event::KeyPress(k) if recorder.keysym(k.detail) == u32::from(b'a')),
    );
    let b = recorder.wait_event(
        "b",
        |e| matches!(e, Event::KeyPress(k) if recorder.keysym(k.detail) == u32::from(b'b')),
    );
    let (Event::KeyPress(a), Event::KeyPress(b)) = (a, b) else {
        unreachable!()
    };
    assert!(a.state.contains(KeyButMask::SHIFT) && !b.state.contains(KeyButMask::SHIFT));

    // Shift held over a letter and then a click (to extend a selection, say): held on the
    // target too, still after the capital it typed, and let go after the click.
    let step = |e: Value| {
        act(e);
        std::thread::sleep(Duration::from_millis(100));
    };
    step(json!({ "type": "key", "key": "Shift", "down": true }));
    step(json!({ "type": "key", "key": "C", "down": true }));
    step(json!({ "type": "key", "key": "C", "down": false }));
    let c = recorder.wait_event(
        "C",
        |e| matches!(e, Event::KeyPress(k) if recorder.keysym(k.detail) == u32::from(b'c')),
    );
    let Event::KeyPress(c) = c else {
        unreachable!()
    };
    assert!(c.state.contains(KeyButMask::SHIFT));
    step(json!({ "type": "pointer_button", "button": "left", "down": true }));
    step(json!({ "type": "pointer_button", "button": "left", "down": false }));
    step(json!({ "type": "key", "key": "Shift", "down": false }));
    recorder.wait_event("a Shift+click", |e| {
        matches!(e, Event::ButtonPress(b) if b.detail == 1 && b.state.contains(KeyButMask::SHIFT))
    });
    let started = Instant::now();
    while !recorder.keys_down().is_empty() {
        assert!(
            started.elapsed() < PATIENCE,
            "Shift still held on the target"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Closing the window (as a window manager asks a window to close) ends the session.
    viewing.close_windows();
    assert!(
        viewer.finish(),
        "the viewer exits when its window is closed"
    );
    assert_eq!(desk.expect("ended")["reason"], "requester_ended");
    let _ = std::fs::remove_file(&shot);
}

/// `autostart on` leaves the entry a Linux desktop starts at sign-in (XDG autostart). What it
/// starts, started as the desktop would (no terminal, the session's display), shares the
/// clipboard and serves remote control, and writes each line, timed, to the log `autostart`
/// names. `autostart off` removes the entry.
#[tokio::test(flavor = "multi_thread")]
async fn autostart_starts_the_agent_at_sign_in_and_it_logs_where_it_says() {
    let account = Account::create().await;
    let (da, db) = (Display::start(), Display::start());
    let desk = DisplayAgent::login(&account, "Autostarted desk");
    let b = clipboard_agent(&account, "Desk B", &db);
    let xdg = desk.config.join("xdg-config");
    let autostart = |args: &[&str]| -> Value {
        let out = udc_conformance::agent_command(&desk.config)
            .env("XDG_CONFIG_HOME", &xdg)
            .arg("autostart")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let off = autostart(&[]);
    assert_eq!(off["autostart"], false, "{off}");
    let log = std::path::PathBuf::from(off["log"].as_str().unwrap());
    assert_eq!(log, desk.config.join("agent.log"));

    let on = autostart(&["on"]);
    assert_eq!(on["autostart"], true, "{on}");
    let entry = xdg.join("autostart/udc-agent.desktop");
    let text = std::fs::read_to_string(&entry).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .unwrap_or_else(|| panic!("no Exec line: {text}"));
    assert!(exec.ends_with(r#""run" "--log""#), "{exec}");
    assert!(
        exec.contains(&format!("UDC_CONFIG_DIR={}", desk.config.display())),
        "{exec}"
    );

    // As the desktop starts it: the entry's command (its string escapes undone) with no
    // terminal, on the session's display.
    let mut started = Command::new("sh")
        .args(["-c", &exec.replace(r"\\", r"\")])
        .env("DISPLAY", da.name())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // However the test ends, nothing it started goes on serving and sharing this desk.
    let pid = std::cell::RefCell::new(started.id().to_string());
    let _stopped = udc_conformance::Finally(|| {
        let _ = Command::new("kill").arg(pid.borrow().as_str()).status();
        let _ = udc_conformance::agent_command(&desk.config)
            .env("XDG_CONFIG_HOME", &xdg)
            .args(["autostart", "off"])
            .output();
    });
    let log = AgentLog(log);
    log.wait_for("Sharing the clipboard");
    log.wait_for("Waiting for remote control requests");
    let agent_pid = log.pid();
    *pid.borrow_mut() = agent_pid.clone();

    let me = this_device(&desk.run(&["devices"]));
    assert!(
        me["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("remote_control")),
        "{me}"
    );
    let copied = format!("copied on the autostarted desk {}", uuid::Uuid::new_v4());
    da.copy("UTF8_STRING", copied.as_bytes());
    b.expect("applied");
    db.wait_paste("UTF8_STRING", |p| p == copied.as_bytes());
    log.wait_for("sent text/plain");

    // Stopped as the desktop stops it at sign-out.
    assert!(Command::new("kill")
        .arg(&agent_pid)
        .status()
        .unwrap()
        .success());
    let _ = started.wait();
    let off = autostart(&["off"]);
    assert_eq!(off["autostart"], false, "{off}");
    assert!(!entry.exists());
}
