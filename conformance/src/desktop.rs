//! Desktop helpers for the tests and benchmarks that run agents on real X servers: Xvfb
//! displays, copy and paste through `xclip`, and `udc-agent clipboard` on a display.
// Two system calls the standard library lacks (a signal other than KILL, poll on a socket).
#![allow(unsafe_code)]

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
    /// The Xvfb this test started; none for a display it was given (`Display::given`).
    server: Option<Child>,
}

impl Display {
    pub fn start() -> Display {
        Display::start_sized(1280, 720)
    }

    /// A display of `width` x `height` pixels, 24-bit.
    pub fn start_sized(width: u32, height: u32) -> Display {
        for _ in 0..50 {
            let number = 100 + (uuid::Uuid::new_v4().as_u128() % 800) as u32;
            if Display::socket(number).exists() {
                continue;
            }
            return Display {
                number,
                server: Some(Display::launch(number, width, height)),
            };
        }
        panic!("no free display number");
    }

    fn socket(number: u32) -> PathBuf {
        PathBuf::from(format!("/tmp/.X11-unix/X{number}"))
    }

    /// Xvfb on display `number`, once it takes connections.
    fn launch(number: u32, width: u32, height: u32) -> Child {
        // -noreset: the server must not reset when its last client leaves (FACTS.md).
        let mut server = Command::new("Xvfb")
            .args([
                &format!(":{number}"),
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
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
            if Display::socket(number).exists() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.kill();
        let _ = server.wait();
        panic!("Xvfb :{number} did not start");
    }

    /// Splits the screen into RandR monitors, each (name, x, y, width, height), as a desk with
    /// several screens shows them to its programs. (Xvfb has one output: RandR 1.5 monitors are
    /// how it shows more, and what the agent reads on any X server.)
    pub fn set_monitors(&self, monitors: &[(&str, i16, i16, u16, u16)]) {
        use x11rb::connection::Connection;
        use x11rb::protocol::randr::{ConnectionExt as _, MonitorInfo};
        use x11rb::protocol::xproto::ConnectionExt as _;
        let (conn, screen) = x11rb::connect(Some(&self.name())).unwrap();
        let root = conn.setup().roots[screen].root;
        for &(name, x, y, width, height) in monitors {
            let name = conn
                .intern_atom(false, name.as_bytes())
                .unwrap()
                .reply()
                .unwrap()
                .atom;
            let monitor = MonitorInfo {
                name,
                primary: false,
                automatic: false,
                x,
                y,
                width,
                height,
                width_in_millimeters: u32::from(width) / 4,
                height_in_millimeters: u32::from(height) / 4,
                outputs: Vec::new(),
            };
            conn.randr_set_monitor(root, monitor)
                .unwrap()
                .check()
                .unwrap();
        }
    }

    /// Stops this display's X server and starts another in its place at `width` x `height`:
    /// for a moment the screen is out of reach, then it is back at another size.
    pub fn restart_sized(&mut self, width: u32, height: u32) {
        self.stop();
        self.server = Some(Display::launch(self.number, width, height));
    }

    fn stop(&mut self) {
        let Some(server) = &mut self.server else {
            return;
        };
        // SIGTERM, so Xvfb removes its socket and lock file.
        // SAFETY: kill takes no memory; the pid is our own child's, not yet waited for.
        unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
        let _ = server.wait();
        self.server = None;
    }

    /// The display `DISPLAY` names (`:N`), which whoever started the tests owns.
    pub fn given() -> Display {
        let name = std::env::var("DISPLAY").expect("DISPLAY names the display to use");
        let number = name
            .strip_prefix(':')
            .and_then(|n| n.split('.').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DISPLAY {name:?} is not a local display (:N)"));
        Display {
            number,
            server: None,
        }
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

    /// What pasting `target` gives now; None when nothing offers it, or when whoever owns the
    /// clipboard does not answer within 5 s (xclip would wait for ever).
    pub fn paste(&self, target: &str) -> Option<Vec<u8>> {
        let out = Command::new("timeout")
            .args([
                "5",
                "xclip",
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

impl Display {
    /// Saves the whole screen as PNG at `path` (what a person at this display sees).
    pub fn screenshot(&self, path: &std::path::Path) {
        let frame = udc_agent::screen::X11Capture::open(Some(&self.name()))
            .and_then(|mut c| c.capture())
            .unwrap();
        let rgba: Vec<u8> = frame
            .bgrx
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0], 255])
            .collect();
        let png = udc_agent::clipboard::png_encode(frame.width, frame.height, &rgba).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Copies a screenshot to the run's screenshots (`$UDC_RUN_DIR/screenshots/NAME.png`), for a
    /// person to look at.
    pub fn keep_screenshot(&self, shot: &std::path::Path, name: &str) {
        let dir = std::env::var_os("UDC_SCREENSHOT_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("UDC_RUN_DIR").map(|d| PathBuf::from(d).join("screenshots"))
            })
            .unwrap_or_else(|| std::env::temp_dir().join("screenshots"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(shot, dir.join(format!("{name}.png"))).unwrap();
    }

    /// Asks every top-level window to close, as a window manager does when a person clicks its
    /// close button (`WM_DELETE_WINDOW`).
    pub fn close_windows(&self) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt as _, EventMask};
        use x11rb::wrapper::ConnectionExt as _;
        let (conn, screen) = x11rb::connect(Some(&self.name())).unwrap();
        let root = conn.setup().roots[screen].root;
        let atom = |name: &str| {
            conn.intern_atom(false, name.as_bytes())
                .unwrap()
                .reply()
                .unwrap()
                .atom
        };
        let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
        for window in conn.query_tree(root).unwrap().reply().unwrap().children {
            let event = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
            conn.send_event(false, window, EventMask::NO_EVENT, event)
                .unwrap();
        }
        conn.flush().unwrap();
        conn.sync().unwrap();
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A device signed in with `udc-agent` (its own config directory), optionally running a daemon
/// (`clipboard`, `remote serve`) on a display; the daemon's JSON lines arrive on `lines`.
pub struct DisplayAgent {
    pub config: PathBuf,
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: Option<mpsc::Receiver<Value>>,
    /// The key the daemon's lines say what happened under (`clipboard`, `remote`).
    kind: &'static str,
    /// The line `start` waited for.
    pub first: Value,
    /// Set in the daemon's environment (`with_env`).
    env: Vec<(&'static str, String)>,
    /// The Windows agent under Wine (`cli_agent`), on the display Wine was set up with.
    windows: bool,
}

impl DisplayAgent {
    pub fn login(account: &Account, name: &str) -> DisplayAgent {
        DisplayAgent::login_as(&account.email, name)
    }

    /// A device not signed in yet (its own config directory).
    #[allow(clippy::new_without_default)] // each call makes a new directory: not a default value
    pub fn new() -> DisplayAgent {
        let config = std::env::temp_dir().join(format!("udc-x-{}", uuid::Uuid::new_v4().simple()));
        DisplayAgent {
            config,
            child: None,
            stdin: None,
            lines: None,
            kind: "",
            first: Value::Null,
            env: Vec::new(),
            windows: false,
        }
    }

    /// The Windows agent signed in to `account` as `name`, under Wine.
    pub fn login_windows(account: &Account, name: &str) -> DisplayAgent {
        let mut agent = DisplayAgent::new();
        agent.windows = true;
        agent.signed_in(&account.email, name, PASSWORD)
    }

    /// `udc-agent --server <UDC_BASE_URL> --json`, its settings in `config`.
    fn command(&self) -> Command {
        if self.windows {
            crate::cli_agent::wine_command(&self.config)
        } else {
            agent_command(&self.config)
        }
    }

    /// Signs in to the account of `email` (the tests' password) as a device named `name`.
    pub fn login_as(email: &str, name: &str) -> DisplayAgent {
        DisplayAgent::login_with(email, name, PASSWORD)
    }

    /// `login_as` with another password.
    pub fn login_with(email: &str, name: &str, password: &str) -> DisplayAgent {
        DisplayAgent::new().signed_in(email, name, password)
    }

    fn signed_in(self, email: &str, name: &str, password: &str) -> DisplayAgent {
        let mut login = self
            .command()
            .args([
                "login",
                "--email",
                email,
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
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        assert!(login.wait().unwrap().success(), "login {name}");
        self
    }

    /// The account key its session keeps (base64; the session file's `enc_key`).
    pub fn account_key(&self) -> String {
        let session: Value = serde_json::from_str(
            &std::fs::read_to_string(self.config.join("session.json")).unwrap(),
        )
        .unwrap();
        session["enc_key"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts its session was ended by the server (a command fails with `session_revoked`).
    pub fn assert_signed_out(&self) {
        let out = self.command().args(["devices"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("session_revoked"),
            "{err}"
        );
    }

    /// `udc-agent --json ARGS` once; its JSON answer.
    pub fn run(&self, args: &[&str]) -> Value {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "udc-agent {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The daemons started from now on get `key=value` in their environment.
    pub fn with_env(mut self, key: &'static str, value: &str) -> DisplayAgent {
        self.env.push((key, value.to_owned()));
        self
    }

    /// Starts `udc-agent ARGS` on `display` and waits for its `ready` line.
    pub fn spawn(self, display: &Display, args: &[&str], kind: &'static str) -> DisplayAgent {
        self.start(display, args, kind, "ready")
    }

    /// Starts `udc-agent ARGS` on `display` with a pipe to its standard input, and waits for
    /// its `first` line.
    pub fn start(
        self,
        display: &Display,
        args: &[&str],
        kind: &'static str,
        first: &str,
    ) -> DisplayAgent {
        self.launch(Some(display), args, kind, first)
    }

    /// `start` for a command that needs no display of the test's own (`login
    /// --approve-with-device`; the Windows agent, on the display Wine was set up with).
    pub fn start_without_display(
        self,
        args: &[&str],
        kind: &'static str,
        first: &str,
    ) -> DisplayAgent {
        self.launch(None, args, kind, first)
    }

    fn launch(
        mut self,
        display: Option<&Display>,
        args: &[&str],
        kind: &'static str,
        first: &str,
    ) -> DisplayAgent {
        let mut command = self.command();
        if let Some(display) = display {
            command.env("DISPLAY", display.name());
        }
        command.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = stdout_lines(&mut child, |l| serde_json::from_str::<Value>(&l).ok());
        self.stdin = child.stdin.take();
        self.child = Some(child);
        self.lines = Some(lines);
        self.kind = kind;
        self.first = self.expect(first);
        self
    }

    /// One line on the daemon's standard input.
    pub fn send(&mut self, line: &Value) {
        let stdin = self.stdin.as_mut().expect("a running daemon");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the daemon's standard input and waits for it to exit; whether it succeeded.
    pub fn finish(&mut self) -> bool {
        self.stdin = None;
        let child = self.child.as_mut().expect("a running daemon");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(started.elapsed() < PATIENCE, "udc-agent did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the daemon as a crash or a power cut would (its device stays signed in).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn lines(&self) -> &mpsc::Receiver<Value> {
        self.lines.as_ref().expect("a running daemon")
    }

    pub fn expect(&self, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            let v = self
                .lines()
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what:?} line"));
            if v[self.kind] == what {
                return v;
            }
        }
    }

    /// The lines for each of `whats`, in whatever order they come (others are skipped).
    pub fn expect_all(&self, whats: &[&str]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; whats.len()];
        let started = Instant::now();
        while found.iter().any(Option::is_none) {
            let left = PATIENCE.saturating_sub(started.elapsed());
            let v = self
                .lines()
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {:?} lines", whats));
            if let Some(i) = whats.iter().position(|w| v[self.kind] == *w) {
                found[i].get_or_insert(v);
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Every line the daemon says for `how_long`.
    pub fn lines_for(&self, how_long: Duration) -> Vec<Value> {
        let until = Instant::now() + how_long;
        let mut all = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines().recv_timeout(left) {
                Ok(v) => all.push(v),
                Err(_) => break,
            }
        }
        all
    }

    /// Every line that arrives within `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Value> {
        let mut all = Vec::new();
        while let Ok(v) = self.lines().recv_timeout(quiet) {
            all.push(v);
        }
        all
    }
}

impl Drop for DisplayAgent {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

/// What `child` prints on its standard output (piped), line by line as it comes, each kept that
/// `keep` makes something of.
pub fn stdout_lines<T: Send + 'static>(
    child: &mut Child,
    keep: fn(String) -> Option<T>,
) -> mpsc::Receiver<T> {
    let (tx, lines) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().expect("a piped standard output"));
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Some(kept) = keep(line) {
                let _ = tx.send(kept);
            }
        }
    });
    lines
}

/// The log of an agent started in the background (`udc-agent run --log`, what `autostart`
/// starts), read as its owner would read it.
pub struct AgentLog(pub PathBuf);

impl AgentLog {
    /// Waits until it says `what`; all of it then.
    pub fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the log never said {what:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's process id, from the log's first line, which must be timed in UTC:
    /// `2026-12-02T01:02:03Z udc-agent 0.1.0 running (process 1234): …`.
    pub fn pid(&self) -> String {
        let text = self.wait_for("running (process ");
        let first = text.lines().next().unwrap_or_default();
        let (time, said) = first.split_once(' ').unwrap_or_default();
        assert!(
            time.len() == 20 && time.starts_with("20") && time.ends_with('Z'),
            "not timed in UTC: {first}"
        );
        assert!(said.starts_with("udc-agent "), "{first}");
        said.split("(process ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("no process id: {first}"))
            .to_owned()
    }
}

/// `udc-agent clipboard` on a display.
pub fn clipboard_agent(account: &Account, name: &str, display: &Display) -> DisplayAgent {
    DisplayAgent::login(account, name).spawn(display, &["clipboard"], "clipboard")
}

/// Watches an X display as a person would see it: where the pointer is, and the clicks and
/// key presses that reach a window covering the screen (which holds the keyboard focus).
pub struct Recorder {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    window: u32,
    size: (u16, u16),
    /// keycode -> its unshifted keysym
    keysyms: std::collections::HashMap<u8, u32>,
}

impl Recorder {
    pub fn start(display: &Display) -> Recorder {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::*;
        let (conn, screen) = x11rb::connect(Some(&display.name())).unwrap();
        let s = conn.setup().roots[screen].clone();
        let window = conn.generate_id().unwrap();
        conn.create_window(
            0,
            window,
            s.root,
            0,
            0,
            s.width_in_pixels,
            s.height_in_pixels,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new().override_redirect(1).event_mask(
                EventMask::BUTTON_PRESS
                    | EventMask::KEY_PRESS
                    | EventMask::POINTER_MOTION
                    | EventMask::STRUCTURE_NOTIFY,
            ),
        )
        .unwrap();
        conn.map_window(window).unwrap();
        conn.flush().unwrap();
        loop {
            if let x11rb::protocol::Event::MapNotify(_) = conn.wait_for_event().unwrap() {
                break;
            }
        }
        conn.set_input_focus(InputFocus::PARENT, window, x11rb::CURRENT_TIME)
            .unwrap();
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let map = conn
            .get_keyboard_mapping(min, max - min + 1)
            .unwrap()
            .reply()
            .unwrap();
        let per = usize::from(map.keysyms_per_keycode);
        let keysyms = map
            .keysyms
            .chunks(per)
            .enumerate()
            .map(|(i, syms)| (min + i as u8, syms[0]))
            .collect();
        conn.flush().unwrap();
        Recorder {
            conn,
            root: s.root,
            window,
            size: (s.width_in_pixels, s.height_in_pixels),
            keysyms,
        }
    }

    pub fn pointer(&self) -> (i16, i16) {
        use x11rb::protocol::xproto::ConnectionExt as _;
        let p = self.conn.query_pointer(self.root).unwrap().reply().unwrap();
        (p.root_x, p.root_y)
    }

    /// Waits until the pointer is at `at`.
    pub fn wait_pointer(&self, at: (i16, i16)) {
        let started = Instant::now();
        while self.pointer() != at {
            assert!(
                started.elapsed() < PATIENCE,
                "the pointer stayed at {:?}, not {at:?}",
                self.pointer()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next event that `matches` (others are skipped).
    pub fn wait_event(
        &self,
        what: &str,
        matches: impl Fn(&x11rb::protocol::Event) -> bool,
    ) -> x11rb::protocol::Event {
        use x11rb::connection::Connection;
        let started = Instant::now();
        loop {
            match self.conn.poll_for_event().unwrap() {
                Some(e) if matches(&e) => return e,
                Some(_) => {}
                None => {
                    let left = PATIENCE.saturating_sub(started.elapsed());
                    assert!(!left.is_zero(), "no {what} on the target display");
                    // Sleep on the connection itself: the benchmark times these events, so
                    // the wake-up must be the event's arrival, not a polling tick.
                    use std::os::fd::AsRawFd;
                    let mut fd = libc::pollfd {
                        fd: self.conn.stream().as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, and the count says one.
                    unsafe { libc::poll(&mut fd, 1, left.as_millis().min(100) as i32) };
                }
            }
        }
    }

    /// Paints the screen in four quadrants of `0xRRGGBB` colours (top left, top right, bottom
    /// left, bottom right): windows inside the recording one, so clicks and keys still reach it.
    pub fn paint(&self, colours: [u32; 4]) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::*;
        let (w, h) = (self.size.0 / 2, self.size.1 / 2);
        for (i, colour) in colours.into_iter().enumerate() {
            let id = self.conn.generate_id().unwrap();
            let (x, y) = ((i as i16 % 2) * w as i16, (i as i16 / 2) * h as i16);
            self.conn
                .create_window(
                    0,
                    id,
                    self.window,
                    x,
                    y,
                    w,
                    h,
                    0,
                    WindowClass::INPUT_OUTPUT,
                    0,
                    &CreateWindowAux::new().background_pixel(colour),
                )
                .unwrap();
            self.conn.map_window(id).unwrap();
        }
        // A round trip: the server has painted them when it answers.
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }

    pub fn keysym(&self, keycode: u8) -> u32 {
        self.keysyms.get(&keycode).copied().unwrap_or(0)
    }

    /// The keycodes held down on this display now.
    pub fn keys_down(&self) -> Vec<u8> {
        use x11rb::protocol::xproto::ConnectionExt as _;
        let map = self.conn.query_keymap().unwrap().reply().unwrap().keys;
        (0..=255u8)
            .filter(|k| map[usize::from(*k) / 8] & (1 << (k % 8)) != 0)
            .collect()
    }

    /// The keysym `keycode` types now (a key the controlled side mapped after this recorder
    /// started, for a character its keyboard map had no key for).
    pub fn keysym_now(&self, keycode: u8) -> u32 {
        use x11rb::protocol::xproto::ConnectionExt as _;
        self.conn
            .get_keyboard_mapping(keycode, 1)
            .unwrap()
            .reply()
            .unwrap()
            .keysyms
            .first()
            .copied()
            .unwrap_or(0)
    }
}

/// The four quadrants' colours in a snapshot, each the mean of a patch at its centre, against
/// `colours` (0xRRGGBB): H.264 is lossy, so within a tolerance.
pub fn quadrants_match(png: &std::path::Path, colours: [u32; 4]) -> Result<(), String> {
    quadrants_match_at(png, colours, (1280, 720))
}

/// `quadrants_match` for a snapshot of `size` pixels.
pub fn quadrants_match_at(
    png: &std::path::Path,
    colours: [u32; 4],
    size: (usize, usize),
) -> Result<(), String> {
    let bytes = std::fs::read(png).map_err(|e| e.to_string())?;
    let udc_agent::clipboard::Content::Image {
        width,
        height,
        rgba,
    } = udc_agent::clipboard::png_decode(&bytes).map_err(|e| e.to_string())?
    else {
        unreachable!()
    };
    if (width, height) != size {
        return Err(format!("a {width}x{height} snapshot"));
    }
    for (i, colour) in colours.into_iter().enumerate() {
        let (cx, cy) = (
            width / 4 * (1 + 2 * (i % 2)),
            height / 4 * (1 + 2 * (i / 2)),
        );
        let mut sum = [0u64; 3];
        for y in cy - 20..cy + 20 {
            for x in cx - 20..cx + 20 {
                for c in 0..3 {
                    sum[c] += u64::from(rgba[(y * width + x) * 4 + c]);
                }
            }
        }
        let want = [colour >> 16, (colour >> 8) & 0xff, colour & 0xff];
        for c in 0..3 {
            let got = sum[c] / 1600;
            if got.abs_diff(u64::from(want[c])) > 16 {
                return Err(format!(
                    "quadrant {i}: {:?} vs {want:?}",
                    sum.map(|v| v / 1600)
                ));
            }
        }
    }
    Ok(())
}
