//! The Windows agent (`udc-agent.exe`, cross-built with mingw-w64) under Wine, against the host
//! at `UDC_BASE_URL`, beside the Linux agent: signing in, its place for settings and its
//! session, files both ways (into Downloads by default), and its screen seen and driven from
//! the Linux agent, and the clipboard both ways. scripts/test.sh builds it and runs this against
//! udc-server in a Wine prefix on a display of its own (`DISPLAY`: every Wine process of the
//! stage is on it), with the test's Windows program (scripts/hosts.sh: start_wine).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::{json, Value};
use udc_agent::clipboard::{png_decode, png_encode, Content};
use udc_agent::input::to_pixel;
use udc_conformance::cli_agent::{wine, Agent};
use udc_conformance::desktop::{
    clipboard_agent, quadrants_match, stdout_lines, AgentLog, Display, DisplayAgent, PATIENCE,
};
use udc_conformance::{unique_email, Account, PASSWORD};

/// Bytes that are not all alike, so a part out of place shows.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// This user's folder (`%USERPROFILE%`) in the test's Wine prefix: Wine names the user as Unix
/// does. Its Downloads is a link to the home directory Wine was set up with (start_wine gives
/// it one of the run's own).
fn user_dir() -> PathBuf {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    PathBuf::from(std::env::var_os("WINEPREFIX").unwrap())
        .join("drive_c/users")
        .join(user)
}

/// Removes what the agent kept in the prefix's own places, however the test ends.
struct Kept(PathBuf);

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_windows_agent_signs_in_and_keeps_its_session_the_windows_way() {
    let agent = Agent::windows();
    let email = unique_email();
    let password = format!("{PASSWORD}\n");
    // As a person runs it: no config directory given, the session in the system's store.
    let own_way = || {
        let mut command = agent.command();
        command
            .env_remove("UDC_CONFIG_DIR")
            .env_remove("UDC_TOKEN_STORE");
        command
    };
    let (ok, reg, err) = agent.run_command(
        own_way(),
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Win Desk",
        ],
        &password,
    );
    assert!(ok, "register under Wine: {err}");
    assert_eq!(reg["device"]["platform"], "windows");
    let settings = Kept(user_dir().join("AppData/Local/udc"));
    assert!(
        settings.0.join("device-cookies.json").is_file(),
        "the agent keeps its settings in %LOCALAPPDATA%\\udc"
    );
    assert!(
        !settings.0.join("session.json").exists(),
        "the session is in Windows' Credential Manager, not in a file"
    );

    let (ok, listed, err) = agent.run_command(own_way(), &["devices"], "");
    assert!(
        ok,
        "devices with the session from Credential Manager: {err}"
    );
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        (
            &devices[0]["name"],
            &devices[0]["platform"],
            &devices[0]["is_current"]
        ),
        (
            &Value::from("Win Desk"),
            &Value::from("windows"),
            &Value::from(true)
        )
    );

    let (ok, _, err) = agent.run_command(own_way(), &["logout"], "");
    assert!(ok, "{err}");
}

#[test]
fn files_travel_both_ways_between_a_windows_and_a_linux_agent() {
    let email = unique_email();
    let password = format!("{PASSWORD}\n");
    let linux = Agent::new();
    let windows = Agent::windows();
    let sign_in = |agent: &Agent, verb: &str, name: &str| {
        agent.ok(
            &[
                verb,
                "--email",
                &email,
                "--password-stdin",
                "--device-name",
                name,
            ],
            &password,
        );
    };
    sign_in(&linux, "register", "Linux Desk");
    sign_in(&windows, "login", "Windows Laptop");
    linux.ok(&["devices", "trust", "Windows Laptop"], "");
    windows.ok(&["devices", "trust", "Linux Desk"], "");

    // Windows to Linux: a name Windows spells in UTF-16, in two parts.
    let outbox = windows.config.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let report = bytes(9 * 1024 * 1024 + 17, 1);
    std::fs::write(outbox.join("Résumé 2026.pdf"), &report).unwrap();
    let sent = windows.ok(
        &[
            "send",
            &windows.path(&outbox.join("Résumé 2026.pdf")),
            "--to",
            "Linux Desk",
        ],
        "",
    );
    assert_eq!(sent["parts_sent"], 2, "{sent}");
    let inbox = linux.config.join("inbox");
    let got = linux.ok(&["receive", "--dir", inbox.to_str().unwrap()], "");
    assert_eq!(got["received"].as_array().map(Vec::len), Some(1), "{got}");
    assert!(
        std::fs::read(inbox.join("Résumé 2026.pdf")).unwrap() == report,
        "the bytes the Windows agent sent differ"
    );

    // Linux to Windows, into the user's Downloads folder (no folder given).
    let photo = bytes(300 * 1024, 2);
    std::fs::write(linux.config.join("photo.jpg"), &photo).unwrap();
    linux.ok(
        &[
            "send",
            linux.config.join("photo.jpg").to_str().unwrap(),
            "--to",
            "Windows Laptop",
        ],
        "",
    );
    let got = windows.ok(&["receive"], "");
    assert_eq!(got["received"].as_array().map(Vec::len), Some(1), "{got}");
    let landed = Kept(user_dir().join("Downloads/photo.jpg"));
    assert!(
        std::fs::read(&landed.0).ok() == Some(photo),
        "the Windows agent did not save the photo, as sent, in {}",
        landed.0.display()
    );
}

/// scripts/wine/canvas.c under Wine: a window over the whole screen in four known colours that
/// prints each click and character that reaches it.
struct Canvas {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Canvas {
    /// Its colours: top left, top right, bottom left, bottom right.
    const COLOURS: [u32; 4] = [0xdc1e1e, 0x1ec828, 0x1428d2, 0xfafafa];

    fn start() -> Canvas {
        let exe = std::env::var_os("UDC_WINE_CANVAS")
            .expect("UDC_WINE_CANVAS names canvas.exe (scripts/hosts.sh's start_wine builds it)");
        let mut child = wine(exe)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = stdout_lines(&mut child, Some);
        let canvas = Canvas { child, lines };
        canvas.expect("ready 1280 720");
        canvas
    }

    fn expect(&self, line: &str) {
        let started = Instant::now();
        let mut seen = Vec::new();
        while let Some(left) = PATIENCE.checked_sub(started.elapsed()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l == line => return,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("the canvas never printed {line:?}; it printed {seen:?}");
    }
}

impl Drop for Canvas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linux_viewer_sees_and_drives_the_screen_of_a_windows_desk() {
    let account = Account::create().await;
    let desk = DisplayAgent::login_windows(&account, "Win Desk");
    let laptop = DisplayAgent::login(&account, "Laptop");
    desk.run(&["devices", "trust", "Laptop"]);
    desk.run(&["remote", "allow", "Laptop", "--mode", "view_and_control"]);
    let canvas = Canvas::start();
    let desk = desk.spawn(&Display::given(), &["remote", "serve"], "remote");
    let dir = std::env::temp_dir().join(format!("udc-wine-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("windows-desk.png");

    // The screen as Windows shows it: the canvas, captured through GDI.
    let mut viewer = laptop.start_without_display(
        &[
            "remote",
            "view",
            "Win Desk",
            "--control",
            "--snapshot",
            shot.to_str().unwrap(),
        ],
        "remote",
        "requested",
    );
    let id = desk.expect("controlled")["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    viewer.expect_all(&["connected", "snapshot"]);
    let lines = desk.expect_all(&["streaming", "capturing"]);
    // Wine has no desktop duplication: the picture came through GDI, the fallback.
    assert_eq!(
        (&lines[1]["method"], &lines[1]["width"], &lines[1]["height"]),
        (&json!("gdi"), &json!(1280), &json!(720)),
        "{}",
        lines[1]
    );
    quadrants_match(&shot, Canvas::COLOURS).unwrap();

    // A click, through SendInput, lands where the viewer pointed.
    viewer.send(&json!([
        { "type": "pointer_move", "x": 0.75, "y": 0.25 },
        { "type": "pointer_button", "button": "left", "down": true },
        { "type": "pointer_button", "button": "left", "down": false },
    ]));
    assert_eq!(viewer.expect("sent")["via"], "webrtc");
    canvas.expect(&format!(
        "click {} {}",
        to_pixel(0.75, 1280),
        to_pixel(0.25, 720)
    ));

    // Characters arrive as typed, those no US key types too ("é", "€").
    let keys: Vec<Value> = ["h", "é", "€"]
        .iter()
        .flat_map(|k| [true, false].map(|down| json!({ "type": "key", "key": k, "down": down })))
        .collect();
    viewer.send(&Value::from(keys));
    viewer.expect("sent");
    for code in ["0068", "00e9", "20ac"] {
        canvas.expect(&format!("char {code}"));
    }

    // A shortcut goes as the keys that make it on the desk's layout ("T" needs Shift), and its
    // release lets go of all it pressed though Ctrl was let go of first (the release names no
    // modifier): Enter after it comes with nothing held.
    viewer.send(&json!([
        { "type": "key", "key": "T", "down": true, "modifiers": ["Control"] },
        { "type": "key", "key": "T", "down": false },
        { "type": "key", "key": "Enter", "down": true },
        { "type": "key", "key": "Enter", "down": false },
    ]));
    viewer.expect("sent");
    for line in ["down 54 ctrl shift", "up 54", "down 0d", "up 0d"] {
        canvas.expect(line);
    }

    // The desk's owner ends it: capture stops and the viewer exits.
    let ended = desk.run(&["remote", "end", &id]);
    assert_eq!(ended["end_reason"], "target_ended");
    let stopped = desk.expect("stream_stopped");
    assert!(stopped["frames"].as_u64().unwrap() > 0, "{stopped}");
    assert!(
        viewer.finish(),
        "the viewer exits cleanly when the desk ends"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clipboard_travels_both_ways_between_a_windows_and_a_linux_desk() {
    let account = Account::create().await;
    let (wine, linux) = (Display::given(), Display::start());
    let windows_desk =
        DisplayAgent::login_windows(&account, "Win Desk").spawn(&wine, &["clipboard"], "clipboard");
    let linux_desk = clipboard_agent(&account, "Linux Desk", &linux);

    // Copied on Windows: Wine takes what is copied on its display into the Windows clipboard,
    // where the agent reads it as from any Windows program.
    let text = format!("Grüße aus Windows {}", uuid::Uuid::new_v4());
    wine.copy("UTF8_STRING", text.as_bytes());
    let sent = windows_desk.expect("sent");
    assert_eq!(sent["content_type"], "text/plain", "{sent}");
    assert_eq!(linux_desk.expect("applied")["id"], sent["id"]);
    linux.wait_paste("UTF8_STRING", |p| p == text.as_bytes());

    // Copied on Linux: the Windows agent puts it on the Windows clipboard, which Wine offers on
    // its display.
    let text = format!("from the Linux desk, 10 € {}", uuid::Uuid::new_v4());
    linux.copy("UTF8_STRING", text.as_bytes());
    let sent = linux_desk.expect("sent");
    assert_eq!(windows_desk.expect("applied")["id"], sent["id"]);
    wine.wait_paste("UTF8_STRING", |p| p == text.as_bytes());

    // Images, both ways, the same pixels after the trip through the Windows clipboard (opaque:
    // the test checks the trip, not how each system keeps transparency).
    let ways = [
        (&wine, &windows_desk, &linux, &linux_desk, 3u8),
        (&linux, &linux_desk, &wine, &windows_desk, 7),
    ];
    for (from, sender, to, receiver, seed) in ways {
        let (w, h) = (40usize, 30usize);
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                [
                    (i % w * 6) as u8,
                    (i / w * 8) as u8,
                    seed.wrapping_mul(30),
                    255,
                ]
            })
            .collect();
        from.copy("image/png", &png_encode(w, h, &rgba).unwrap());
        let sent = sender.expect("sent");
        assert_eq!(sent["content_type"], "image/png", "{sent}");
        assert_eq!(receiver.expect("applied")["id"], sent["id"]);
        let want = Content::Image {
            width: w,
            height: h,
            rgba,
        };
        to.wait_paste("image/png", |p| png_decode(p).is_ok_and(|c| c == want));
    }
}

/// `autostart on` writes the value Windows runs at sign-in (the user's Run key): the launcher
/// `udc-agentw.exe` with the agent's settings. Started as Windows would, it starts the agent
/// without a console, which serves remote control and shares the clipboard and writes its
/// timed lines to `%LOCALAPPDATA%\udc\agent.log` (here the test's config directory).
/// `autostart off` removes the value.
#[tokio::test(flavor = "multi_thread")]
async fn autostart_runs_the_agent_at_sign_in_from_the_run_key_and_it_logs() {
    const RUN: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";
    // Made through the API from an address of its own: sign-ups from one address are limited,
    // and every agent here comes from 127.0.0.1.
    let account = Account::create().await;
    let agent = Agent::windows();
    agent.login(&account.email, "Autostarted Windows");
    let off = agent.ok(&["autostart"], "");
    assert_eq!(off["autostart"], false, "{off}");
    assert_eq!(off["log"], agent.path(&agent.config.join("agent.log")));

    let on = agent.ok(&["autostart", "on"], "");
    assert_eq!(on["autostart"], true, "{on}");
    let entry = on["entry"].as_str().unwrap().to_owned();
    let query = || {
        wine("reg")
            .args(["query", RUN, "/v", "udc-agent"])
            .output()
            .unwrap()
    };
    let registered = String::from_utf8_lossy(&query().stdout).into_owned();
    assert!(registered.contains(&entry), "{registered}");
    assert!(
        entry.contains(r"\udc-agentw.exe")
            && entry.contains(" UDC_CONFIG_DIR=")
            && entry.ends_with(" run --log"),
        "{entry}"
    );

    // As Windows starts it at sign-in: the value's program with its arguments (quoted where
    // they have spaces; none has a quote inside).
    let mut words = Vec::new();
    let mut rest = entry.as_str();
    while let Some(r) = rest
        .strip_prefix(' ')
        .or(Some(rest))
        .filter(|r| !r.is_empty())
    {
        let (word, after) = match r.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap(),
            None => r.split_once(' ').unwrap_or((r, "")),
        };
        words.push(word.to_owned());
        rest = after;
    }
    // However the test ends, the agent it starts goes and the Run key is as it was.
    let started_pid = std::cell::RefCell::new(None::<String>);
    let _stopped = udc_conformance::Finally(|| {
        // Unknown when the log never said it: every agent, as the stage runs one test at a time.
        let _ = match started_pid.borrow().as_deref() {
            Some(pid) => wine("taskkill").args(["/f", "/pid", pid]).output(),
            None => wine("taskkill")
                .args(["/f", "/im", "udc-agent.exe"])
                .output(),
        };
        let _ = wine("reg")
            .args(["delete", RUN, "/v", "udc-agent", "/f"])
            .output();
    });
    assert!(
        wine(&words[0])
            .args(&words[1..])
            .status()
            .unwrap()
            .success(),
        "{words:?}"
    );
    let log = AgentLog(agent.config.join("agent.log"));
    log.wait_for("Sharing the clipboard");
    log.wait_for("Waiting for remote control requests");
    let pid = log.pid();
    *started_pid.borrow_mut() = Some(pid.clone());
    let me = agent.this_device();
    assert!(
        me["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("remote_control")),
        "{me}"
    );

    let stopped = wine("taskkill")
        .args(["/f", "/pid", &pid])
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let off = agent.ok(&["autostart", "off"], "");
    assert_eq!(off["autostart"], false, "{off}");
    assert!(!query().status.success(), "the Run key still has udc-agent");
}
