//! Desktop helpers for the tests and benchmarks that run agents on real X servers: Xvfb
//! displays, copy and paste through `xclip`, and `udc-agent clipboard` on a display.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{agent_command, Account, PASSWORD};

pub const PATIENCE: Duration = Duration::from_secs(15);

/// An Xvfb display, gone when dropped.
pub struct Display {
    number: u32,
    server: Child,
}

impl Display {
    pub fn start() -> Display {
        for _ in 0..50 {
            let number = 100 + (uuid::Uuid::new_v4().as_u128() % 800) as u32;
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
            if socket.exists() {
                continue;
            }
            // -noreset: the server must not reset when its last client leaves (FACTS.md).
            let mut server = Command::new("Xvfb")
                .args([
                    &format!(":{number}"),
                    "-screen",
                    "0",
                    "1280x720x24",
                    "-noreset",
                    "-nolisten",
                    "tcp",
                ])
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
            let _ = server.kill();
            let _ = server.wait();
            panic!("Xvfb :{number} did not start");
        }
        panic!("no free display number");
    }

    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// Puts `bytes` on the CLIPBOARD as `target`, as an application copying would (xclip stays
    /// behind to serve it, like the application that copied).
    pub fn copy(&self, target: &str, bytes: &[u8]) {
        let mut child = Command::new("xclip")
            .args([
                "-selection",
                "clipboard",
                "-t",
                target,
                "-i",
                "-display",
                &self.name(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xclip (apt install xclip)");
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        assert!(child.wait().unwrap().success());
    }

    pub fn paste(&self, target: &str) -> Option<Vec<u8>> {
        let out = Command::new("xclip")
            .args([
                "-selection",
                "clipboard",
                "-t",
                target,
                "-o",
                "-display",
                &self.name(),
            ])
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// Waits until pasting `target` gives what `ok` accepts.
    pub fn wait_paste(&self, target: &str, ok: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let started = Instant::now();
        loop {
            if let Some(b) = self.paste(target).filter(|b| ok(b)) {
                return b;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{target} never arrived on {}",
                self.name()
            );
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
pub struct ClipboardAgent {
    config: PathBuf,
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl ClipboardAgent {
    pub fn start(account: &Account, name: &str, display: &Display) -> ClipboardAgent {
        let config = std::env::temp_dir().join(format!("udc-x-{}", uuid::Uuid::new_v4().simple()));
        let mut login = agent_command(&config)
            .args([
                "login",
                "--email",
                &account.email,
                "--password-stdin",
                "--device-name",
                name,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        login
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
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
        let agent = ClipboardAgent {
            config,
            child,
            lines,
        };
        agent.expect("ready");
        agent
    }

    pub fn expect(&self, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what:?} line"));
            if v["clipboard"] == what {
                return v;
            }
        }
    }

    /// Every line that arrives within `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Value> {
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
