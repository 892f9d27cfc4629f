//! A real browser for the web app's tests: Debian's Chromium, headless, driven over WebDriver
//! (`chromedriver`, the matching version) with plain HTTP calls. Each `Browser` has its own
//! profile (its own IndexedDB, so its own udc device) and download directory; both go away
//! when it is dropped, and so does the browser.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// How long a page may take to show what a test waits for (Argon2id in wasm included).
pub const PAGE_PATIENCE: Duration = Duration::from_secs(30);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    driver: Child,
    session: String,
    base: String,
    pub downloads: PathBuf,
    profile: PathBuf,
    /// Where the pages are opened: the host under test.
    origin: String,
}

/// Installed by `watch_peers` before the page runs: each of the page's peer connections is kept
/// in `window.udcPeers`; `window.udcKeyframes.ask()` has the last one's video receiver ask its
/// sender for a keyframe the way Chromium does when its picture breaks (`sendKeyFrameRequest`
/// of an encoded transform: an RTCP PLI). The transform, in a worker, passes frames on as they
/// are; it is put in on the first request, so nothing measured before passes through it. A failed
/// request is kept in `window.udcKeyframes.error`.
const WATCH_PEERS: &str = "
    const src = `let transformer = null, waiting = 0;
      const ask = () => transformer.sendKeyFrameRequest().catch((e) => postMessage(String(e)));
      onrtctransform = (e) => {
        transformer = e.transformer;
        transformer.readable.pipeTo(transformer.writable);
        for (; waiting > 0; waiting--) ask();
      };
      onmessage = () => { if (transformer) ask(); else waiting++; };`;
    const worker = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
    window.udcKeyframes = {
      worker,
      error: null,
      ask() {
        const video = window.udcPeers.at(-1).getReceivers().find((r) => r.track.kind === 'video');
        if (!video.transform) video.transform = new RTCRtpScriptTransform(worker, {});
        worker.postMessage('pli');
      },
    };
    worker.onerror = (e) => { window.udcKeyframes.error = e.message || 'the worker failed'; };
    worker.onmessage = (m) => { window.udcKeyframes.error = m.data; };
    window.udcPeers = [];
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.udcPeers.push(this);
      }
    };";

/// The last peer connection's video receiver: keyframes decoded, PLIs sent, and a failed
/// keyframe request.
const VIDEO_RECEIVED: &str = "
    const done = arguments[arguments.length - 1];
    window.udcPeers.at(-1).getStats().then((stats) => {
      const rtp = [...stats.values()].find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
      done({ keyframes: rtp?.keyFramesDecoded ?? 0, plis: rtp?.pliCount ?? 0,
             error: window.udcKeyframes.error });
    });";

impl Browser {
    pub async fn start() -> Browser {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt install chromium-driver; scripts/setup.sh does)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < PAGE_PATIENCE,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let profile = std::env::temp_dir().join(format!("udc-chromium-{id}"));
        let downloads = std::env::temp_dir().join(format!("udc-downloads-{id}"));
        std::fs::create_dir_all(&downloads).unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--hide-scrollbars", "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        let browser = Browser {
            http,
            driver,
            session,
            base,
            downloads,
            profile,
            origin: crate::base_url(),
        };
        // Every browser is its own client address (test mode), as the API tests are: sign-up
        // and sign-in limits count per address.
        browser.cdp("Network.enable", json!({})).await;
        browser
            .cdp(
                "Network.setExtraHTTPHeaders",
                json!({ "headers": { crate::IP_HEADER: crate::unique_ip() } }),
            )
            .await;
        // Downloads in headless Chromium go where the test looks.
        browser
            .cdp(
                "Browser.setDownloadBehavior",
                json!({ "behavior": "allow", "downloadPath": browser.downloads.display().to_string() }),
            )
            .await;
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = resp["value"]["error"].as_str() {
            panic!(
                "WebDriver {path}: {err}: {}",
                resp["value"]["message"].as_str().unwrap_or("")
            );
        }
        resp["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// This browser's profile directory (its processes name it on their command line).
    pub fn profile(&self) -> &Path {
        &self.profile
    }

    /// A DevTools protocol command (chromedriver passes it on).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
    }

    /// Watches the peer connections of pages opened from now on (`WATCH_PEERS`), so that a test
    /// can read what the page's video received and ask for a keyframe as Chromium would. The
    /// worker that asks is a blob, which the page's CSP refuses (only its own workers): this
    /// browser bypasses the CSP.
    pub async fn watch_peers(&self) {
        self.cdp("Page.setBypassCSP", json!({ "enabled": true }))
            .await;
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": WATCH_PEERS }),
        )
        .await;
    }

    /// Has the page's last peer connection ask its sender for a keyframe (an RTCP PLI); panics
    /// on an earlier request that failed.
    pub async fn ask_keyframe(&self) {
        let error = self.js("return window.udcKeyframes.error", json!([])).await;
        assert!(error.is_null(), "the page's keyframe request: {error}");
        self.js("window.udcKeyframes.ask()", json!([])).await;
    }

    /// What the page's last peer connection's video received: `{keyframes, plis, error}`
    /// (keyframes decoded, keyframe requests sent, and why the last `ask_keyframe` failed).
    pub async fn video_received(&self) -> Value {
        self.js_async(VIDEO_RECEIVED, json!([])).await
    }

    /// Pages opened from now on are at `http://localhost:PORT` rather than an IP address:
    /// passkeys belong to a site named by a host name (and http is allowed for localhost only).
    pub fn on_localhost(mut self) -> Browser {
        self.origin = self.origin.replacen("://127.0.0.1:", "://localhost:", 1);
        self
    }

    /// Opens `path` on the udc host under test.
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.origin);
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn reload(&self) {
        self.post("/refresh", json!({})).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args` and, last, the callback to call
    /// with the result) in the page; what it called back with.
    pub async fn js_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": args }))
            .await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Waits until `script` returns something truthy; that value.
    pub async fn until(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script, args.clone()).await;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            if started.elapsed() > PAGE_PATIENCE {
                let text = self.js("return document.body.innerText", json!([])).await;
                panic!("the page never showed {what}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css` and returns its WebDriver id.
    pub async fn find(&self, css: &str) -> String {
        self.until(
            css,
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        )
        .await;
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    /// Types `text` into the field `css` (after emptying it), as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/clear"), json!({})).await;
        // WebDriver's clear fires no `input` event: a page that re-renders before the first key
        // (a poll's refresh) would put the old value back, and the keys would add to it.
        self.js(
            "arguments[0].dispatchEvent(new Event('input', { bubbles: true }))",
            json!([{ ELEMENT: el }]),
        )
        .await;
        self.post(&format!("/element/{el}/value"), json!({ "text": text }))
            .await;
    }

    /// A person's click (WebDriver actions: real pointer events) at `x`, `y` CSS pixels from the
    /// top left corner of the element `css`.
    pub async fn click_at(&self, css: &str, x: f64, y: f64) {
        let el = self.find(css).await;
        let rect = self
            .js(
                "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]",
                json!([{ ELEMENT: el }]),
            )
            .await;
        let (w, h) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        // Actions place the pointer relative to the element's centre, in whole pixels.
        let (dx, dy) = ((x - w / 2.0).round(), (y - h / 2.0).round());
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": [
                    { "type": "pointerMove", "origin": { ELEMENT: el }, "x": dx as i64, "y": dy as i64 },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pointerUp", "button": 0 },
                ] }] }),
        )
        .await;
        self.call(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// A person's key presses into whatever has the focus: each of `keys` is a WebDriver key
    /// action (`"a"`, `"\u{E008}"` is Shift) pressed down, and all let go in reverse order
    /// after the last, so `["\u{E008}", "a"]` is Shift+A.
    pub async fn press_keys(&self, keys: &[&str]) {
        let mut actions: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "type": "keyDown", "value": k }))
            .collect();
        actions.extend(
            keys.iter()
                .rev()
                .map(|k| json!({ "type": "keyUp", "value": k })),
        );
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
        self.call(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// Key actions as given: each `(true, key)` presses `key`, `(false, key)` lets it go, in
    /// this order (a person letting go of Shift before the letter, or holding a key on).
    pub async fn key_steps(&self, steps: &[(bool, &str)]) {
        let actions: Vec<Value> = steps
            .iter()
            .map(|(down, k)| json!({ "type": if *down { "keyDown" } else { "keyUp" }, "value": k }))
            .collect();
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
    }

    /// Chooses `path` in the file input `css`.
    pub async fn choose_file(&self, css: &str, path: &Path) {
        let el = self.find(css).await;
        self.post(
            &format!("/element/{el}/value"),
            json!({ "text": path.display().to_string() }),
        )
        .await;
    }

    /// Waits until the page's text contains `text`.
    pub async fn wait_text(&self, text: &str) {
        self.until(
            &format!("the text {text:?}"),
            "return document.body.innerText.includes(arguments[0])",
            json!([text]),
        )
        .await;
    }

    /// Creates an account in the page (the tests' password), naming this browser `device`;
    /// the recovery code's words the page showed before it opened the account.
    pub async fn sign_up(&self, email: &str, device: &str) -> String {
        let words = self.sign_up_to_code(email, device).await;
        self.click("#recovery-done").await;
        self.signed_in().await;
        words
    }

    /// `sign_up` up to the page that shows the recovery code (its words).
    pub async fn sign_up_to_code(&self, email: &str, device: &str) -> String {
        self.open("/").await;
        self.click("#tab-signup").await;
        self.fill("#email", email).await;
        self.fill("#password", crate::PASSWORD).await;
        self.fill("#confirm", crate::PASSWORD).await;
        self.fill("#device-name", device).await;
        self.click("#submit").await;
        self.recovery_words().await
    }

    /// The recovery code's words, once the page shows them.
    pub async fn recovery_words(&self) -> String {
        let words = self
            .until(
                "the recovery code's words",
                "return document.querySelector('#recovery-words')?.dataset.words",
                json!([]),
            )
            .await;
        words.as_str().unwrap_or_default().to_owned()
    }

    /// Waits for the signed-in page with its device list and a live (or polling) connection.
    pub async fn signed_in(&self) {
        self.until(
            "the signed-in page, live",
            "const s = document.querySelector('#link-state'); return s && /Live|Polling/.test(s.textContent)",
            json!([]),
        )
        .await;
    }

    /// Saves the whole page as a person sees it on a phone (390×844) and on a desktop (1280×800),
    /// in `$UDC_SCREENSHOT_DIR` (test.sh: one per host under the run directory), else
    /// `$UDC_RUN_DIR/screenshots`, else the temp directory's; returns the paths.
    pub async fn screenshots(&self, name: &str) -> Vec<PathBuf> {
        let dir = std::env::var_os("UDC_SCREENSHOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("UDC_RUN_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir)
                    .join("screenshots")
            });
        std::fs::create_dir_all(&dir).unwrap();
        let mut saved = Vec::new();
        for (w, h) in [(390, 844), (1280, 800)] {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 500 }),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            // The whole page, not only what fits the window: what a person scrolls to is seen.
            let png = self
                .cdp(
                    "Page.captureScreenshot",
                    json!({ "format": "png", "captureBeyondViewport": true }),
                )
                .await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png["data"].as_str().unwrap())
                .unwrap();
            let path = dir.join(format!("{name}-{w}x{h}.png"));
            std::fs::write(&path, bytes).unwrap();
            saved.push(path);
        }
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
            .await;
        saved
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session quits Chromium; a plain blocking request, as Drop cannot await.
        let host = self.base.trim_start_matches("http://");
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
        let _ = std::fs::remove_dir_all(&self.downloads);
    }
}

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !path.is_empty() {
                return path;
            }
        }
    }
    panic!("no Chromium (apt install chromium; scripts/setup.sh does)")
}
