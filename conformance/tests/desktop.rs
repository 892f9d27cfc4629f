//! The agent on real X servers: two Xvfb displays, one `udc-agent clipboard` on each, the
//! clipboard set and read with `xclip` as a user's applications would.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use udc_agent::clipboard::{png_decode, png_encode, Content};
use udc_conformance::{agent_command, Account, PASSWORD};

const PATIENCE: Duration = Duration::from_secs(15);

/// An Xvfb display, gone when dropped.
struct Display {
    number: u32,
    server: Child,
}

impl Display {
    fn start() -> Display {
        for _ in 0..50 {
            let number = 100 + (uuid::Uuid::new_v4().as_u128() % 800) as u32;
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
            if socket.exists() {
                continue;
            }
            // -noreset: the server must not reset when its last client leaves (FACTS.md).
            let server = Command::new("Xvfb")
                .args([&format!(":{number}"), "-screen", "0", "1280x720x24", "-noreset", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb (apt install xvfb; scripts/setup.sh does)");
            let started = Instant::now();
            while started.elapsed() < PATIENCE {
                if socket.exists() {
                    return Display { number, server };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("Xvfb :{number} did not start");
        }
        panic!("no free display number");
    }

    fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// Puts `bytes` on the CLIPBOARD as `target`, as an application copying would (xclip stays
    /// behind to serve it, like the application that copied).
    fn copy(&self, target: &str, bytes: &[u8]) {
        let mut child = Command::new("xclip")
            .args(["-selection", "clipboard", "-t", target, "-i", "-display", &self.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xclip (apt install xclip)");
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        assert!(child.wait().unwrap().success());
    }

    fn paste(&self, target: &str) -> Option<Vec<u8>> {
        let out = Command::new("xclip")
            .args(["-selection", "clipboard", "-t", target, "-o", "-display", &self.name()])
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// Waits until pasting `target` gives what `ok` accepts.
    fn wait_paste(&self, target: &str, ok: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let started = Instant::now();
        loop {
            if let Some(b) = self.paste(target).filter(|b| ok(b)) {
                return b;
            }
            assert!(started.elapsed() < PATIENCE, "{target} never arrived on {}", self.name());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        // SIGTERM, so Xvfb removes its socket and lock file.
        unsafe { libc::kill(self.server.id() as i32, libc::SIGTERM) };
        let _ = self.server.wait();
    }
}

/// A signed-in agent running `clipboard` on a display; its JSON lines arrive on `lines`.
struct ClipboardAgent {
    config: PathBuf,
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl ClipboardAgent {
    fn start(account: &Account, name: &str, display: &Display) -> ClipboardAgent {
        let config = std::env::temp_dir().join(format!("udc-x-{}", uuid::Uuid::new_v4().simple()));
        let mut login = agent_command(&config)
            .args(["login", "--email", &account.email, "--password-stdin", "--device-name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        login.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        assert!(login.wait().unwrap().success(), "login {name}");
        let mut child = agent_command(&config)
            .arg("clipboard")
            .env("DISPLAY", display.name())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let agent = ClipboardAgent { config, child, lines };
        agent.expect("ready");
        agent
    }

    fn expect(&self, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            let v = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no {what:?} line"));
            if v["clipboard"] == what {
                return v;
            }
        }
    }

    /// Every line that arrives within `quiet`.
    fn drain(&self, quiet: Duration) -> Vec<Value> {
        let mut all = Vec::new();
        while let Ok(v) = self.lines.recv_timeout(quiet) {
            all.push(v);
        }
        all
    }
}

impl Drop for ClipboardAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_and_images_copied_on_one_display_paste_on_the_other_without_echo() {
    let account = Account::create().await;
    let (da, db) = (Display::start(), Display::start());
    let a = ClipboardAgent::start(&account, "Desk A", &da);
    let b = ClipboardAgent::start(&account, "Desk B", &db);

    let text = format!("copied on A {}", uuid::Uuid::new_v4());
    da.copy("UTF8_STRING", text.as_bytes());
    let sent = a.expect("sent");
    assert_eq!(sent["content_type"], "text/plain");
    let applied = b.expect("applied");
    assert_eq!(applied["id"], sent["id"]);
    assert_eq!(db.wait_paste("UTF8_STRING", |p| p == text.as_bytes()), text.as_bytes());

    // An image: a gradient with transparency, compared pixel by pixel after the trip.
    let (w, h) = (64usize, 48usize);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % w * 4) as u8, (i / w * 5) as u8, 200, if i % 7 == 0 { 128 } else { 255 }])
        .collect();
    da.copy("image/png", &png_encode(w, h, &rgba).unwrap());
    let sent = a.expect("sent");
    assert_eq!(sent["content_type"], "image/png");
    assert_eq!(b.expect("applied")["id"], sent["id"]);
    let pasted = db.wait_paste("image/png", |p| p.starts_with(b"\x89PNG"));
    assert_eq!(png_decode(&pasted).unwrap(), Content::Image { width: w, height: h, rgba });

    // And back: copied on B, pasted on A.
    let back = format!("copied on B {}", uuid::Uuid::new_v4());
    db.copy("UTF8_STRING", back.as_bytes());
    b.expect("sent");
    a.expect("applied");
    da.wait_paste("UTF8_STRING", |p| p == back.as_bytes());

    // No echo: each copy was sent once, by the device it was made on, and applied once.
    let quiet = Duration::from_millis(1500);
    let (rest_a, rest_b) = (a.drain(quiet), b.drain(Duration::from_millis(10)));
    assert!(rest_a.is_empty() && rest_b.is_empty(), "echo: {rest_a:?} {rest_b:?}");
    let login = account.login().await;
    let history = udc_agent::Client::new(&udc_conformance::base_url())
        .clipboard_history(&login.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(history.len(), 3, "three copies, three items: {history:?}");

    // What A applied outlives the application that copied it on B: A's agent serves it.
    let _ = Command::new("pkill").args(["-f", &format!("xclip .*-display {}", db.name())]).status();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(da.paste("UTF8_STRING").as_deref(), Some(back.as_bytes()), "A's agent keeps owning what it applied");
}
