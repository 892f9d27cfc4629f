//! The black-box conformance suite's helpers. The suite speaks only HTTP, through the agent's
//! client library, to whatever `UDC_BASE_URL` names: udc-server, `wrangler dev`, a Spin host.
//! The server must run with `UDC_TEST_MODE=1`, which lets a request move the clock
//! (`x-udc-test-clock-offset-ms`) and name its client address (`x-udc-test-client-ip`).

pub mod browser;
pub mod cli_agent;
pub mod desktop;
pub mod openapi;
pub mod own_server;
pub mod passkey;
pub mod secrets_seen;

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;
use udc_agent::client::{RawResponse, RegisteredDevice, Sent, SignedIn, TokenPair};
use udc_agent::{Client, DeviceInfo};

pub const PASSWORD: &str = "correct horse battery staple";
pub const CLOCK_HEADER: &str = "x-udc-test-clock-offset-ms";
pub const IP_HEADER: &str = "x-udc-test-client-ip";

pub fn base_url() -> String {
    std::env::var("UDC_BASE_URL").expect(
        "UDC_BASE_URL is not set: the conformance suite needs a running udc \
         (scripts/test.sh starts udc-server and wrangler dev and sets it)",
    )
}

/// A documentation-range IPv6 address no other test uses, so throttling stays per test.
pub fn unique_ip() -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    // A /64 of its own: the server counts IPv6 clients by their /64.
    format!("2001:db8:{:x}:{:x}::1", (n >> 16) as u16, n as u16)
}

/// SHA-256 of `data`, lower-case hex (what the API's `sha256` fields hold).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A port nothing listens on now (a browser's driver, a test's own server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The events named `name` in `device`'s account log (`GET /events` from the start).
pub async fn events_named(account: &Account, device: &TestDevice, name: &str) -> Vec<Value> {
    let events = account
        .raw(Method::GET, "/events", Some(device.token()), None)
        .await;
    events.body["events"]
        .as_array()
        .map(|all| all.iter().filter(|e| e["event"] == name).cloned().collect())
        .unwrap_or_default()
}

pub fn unique_email() -> String {
    format!("t-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The `p` quantile (0..=1) of sorted samples, for the benchmarks.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How long `client` took to answer `method path`, for the benchmarks: an answer that is not a
/// success is an error.
pub async fn timed(
    client: &Client,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<std::time::Duration> {
    let start = std::time::Instant::now();
    let resp = client.raw(method, path, token, body, &[]).await?;
    let took = start.elapsed();
    anyhow::ensure!(
        resp.status.is_success(),
        "{path} answered {}: {}",
        resp.status,
        resp.body
    );
    Ok(took)
}

/// The udc-agent binary: `UDC_AGENT_BIN`, else the workspace's debug build.
pub fn agent_bin() -> std::path::PathBuf {
    std::env::var_os("UDC_AGENT_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/udc-agent")
        })
}

/// `udc-agent --server <UDC_BASE_URL> --json`, as the device whose settings live in `config`
/// (its session in a file there, not the OS keyring); add the subcommand and its arguments.
pub fn agent_command(config: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(agent_bin());
    cmd.args(["--server", &base_url(), "--json"])
        .env("UDC_CONFIG_DIR", config)
        .env("UDC_TOKEN_STORE", "file");
    cmd
}

/// A client whose every answer is checked against `schema/openapi.yaml`.
pub fn client() -> Client {
    Client::new(&base_url())
        .with_header(IP_HEADER, &unique_ip())
        .with_observer(Arc::new(|sent: &Sent, resp: &RawResponse| {
            // Not udc's answer; `Account::raw` sends such a request again.
            let mut seen = vec![&resp.body];
            seen.extend(sent.body);
            secrets_seen::record(&seen);
            if !dropped_by_dev_proxy(resp) {
                openapi::check_exchange(sent, resp.status.as_u16(), &resp.body)
            }
        }))
}

/// One account with its own client (and so its own client address).
pub struct Account {
    pub api: Client,
    pub email: String,
    pub user_id: String,
    pub signed_in: SignedIn,
    /// The account key the client made (the server keeps it only wrapped).
    pub account_key: [u8; 32],
    /// The recovery code it was made with (none for an account made before them).
    pub recovery: Option<udc_agent::recovery::RecoveryCode>,
}

pub struct TestDevice {
    pub id: String,
    pub tokens: TokenPair,
}

impl TestDevice {
    pub fn token(&self) -> &str {
        &self.tokens.access_token
    }
}

impl Account {
    /// The keys the account's devices seal files with.
    pub fn file_keys(&self) -> std::sync::Arc<udc_agent::file_seal::FileKeys> {
        std::sync::Arc::new(
            udc_agent::file_seal::FileKeys::new(&self.account_key).expect("file keys"),
        )
    }

    pub async fn create() -> Account {
        let api = client();
        let email = unique_email();
        let (signed_in, keys) = past_dev_proxy(|| api.register(&email, PASSWORD))
            .await
            .expect("register");
        Account {
            api,
            user_id: signed_in.user.id.clone(),
            email,
            signed_in,
            account_key: keys.account_key,
            recovery: keys.recovery,
        }
    }

    /// An account as clients made them before account keys: no wrapped key, so its account
    /// key is the password's `enc_key` (returned).
    pub async fn create_unwrapped() -> Account {
        let api = client();
        let email = unique_email();
        let kdf = udc_agent::kdf::KdfParams::new_random().expect("kdf");
        let keys = udc_agent::kdf::derive(PASSWORD, &kdf).expect("derive");
        let body =
            serde_json::json!({ "email": email, "kdf": kdf, "auth_key": keys.auth_key_b64() });
        let mut sent = None;
        for _ in 0..2 {
            let resp = api
                .raw(Method::POST, "/auth/register", None, Some(&body), &[])
                .await
                .expect("register");
            if !dropped_by_dev_proxy(&resp) {
                sent = Some(resp);
                break;
            }
        }
        let sent = sent.expect("register past wrangler dev's proxy");
        assert_eq!(sent.status, 201, "{}", sent.body);
        let signed_in: SignedIn = serde_json::from_value(sent.body).expect("signed in");
        Account {
            api,
            user_id: signed_in.user.id.clone(),
            email,
            signed_in,
            account_key: keys.enc_key,
            recovery: None,
        }
    }

    /// A fresh password sign-in (a session without a device).
    pub async fn login(&self) -> SignedIn {
        past_dev_proxy(|| self.api.login(&self.email, PASSWORD))
            .await
            .expect("login")
            .0
    }

    /// Signs in again and registers a device named `name`.
    pub async fn device(&self, name: &str) -> TestDevice {
        let signed = self.login().await;
        let info = device_info(name);
        let reg: RegisteredDevice =
            past_dev_proxy(|| self.api.register_device(&signed.tokens.access_token, &info))
                .await
                .expect("register device");
        TestDevice {
            id: reg.device.id,
            tokens: reg.tokens,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> RawResponse {
        let sent = self
            .api
            .raw(method.clone(), path, token, body, &[])
            .await
            .expect("request");
        if !dropped_by_dev_proxy(&sent) {
            return sent;
        }
        self.api
            .raw(method, path, token, body, &[])
            .await
            .expect("request")
    }
}

/// `call`, sent once more when wrangler dev's proxy lost it (`dropped_by_dev_proxy`: a 503 that
/// is not udc's JSON error), for the steps every test starts with.
pub async fn past_dev_proxy<T, F: std::future::Future<Output = udc_agent::client::Result<T>>>(
    call: impl Fn() -> F,
) -> udc_agent::client::Result<T> {
    match call().await {
        Err(e) if e.status() == Some(503) && e.code() == Some("unknown") => call().await,
        other => other,
    }
}

/// wrangler dev's own proxy at times loses a request on its way to the Worker and answers this
/// itself, though the Worker never restarted (workers-sdk issue 14641, open upstream). It is
/// never udc's answer (udc's errors are JSON objects): the request is sent once more.
fn dropped_by_dev_proxy(resp: &RawResponse) -> bool {
    resp.status == 503
        && resp
            .body
            .as_str()
            .is_some_and(|text| text.starts_with("Your worker restarted mid-request"))
}

pub fn device_info(name: &str) -> DeviceInfo {
    DeviceInfo {
        name: name.to_owned(),
        platform: "linux".into(),
        os_version: "Debian 12".into(),
        app_version: "0.1.0".into(),
        capabilities: vec!["clipboard".into(), "files".into()],
    }
}

/// The device's events after `after`, read from `GET /events` (every host has it).
pub async fn events(account: &Account, device: &TestDevice, after: u64) -> Vec<udc_hub::Event> {
    let resp = account
        .raw(
            Method::GET,
            &format!("/events?after={after}"),
            Some(device.token()),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    serde_json::from_value(resp.body["events"].clone()).expect("events")
}

/// The last number of the events `device` can read.
pub async fn last_seq(account: &Account, device: &TestDevice) -> u64 {
    events(account, device, 0).await.last().map_or(0, |e| e.seq)
}

/// Uploads `sent` by hand in one part as a file named `name` that declares the size and
/// SHA-256 of `declared` (the same bytes, unless a test wants a liar), and completes it.
/// Returns the file id (of the existing file when the account already had the bytes).
pub async fn upload_as(
    account: &Account,
    device: &TestDevice,
    name: &str,
    declared: &[u8],
    sent: &[u8],
    target: Option<&str>,
) -> String {
    let sha256 = sha256_hex(declared);
    let mut body = serde_json::json!({ "name": name, "size": declared.len(), "sha256": sha256, "mime": "text/plain" });
    if let Some(t) = target {
        body["target_device_id"] = serde_json::json!(t);
    }
    let post = |path: &'static str, body: Value| async move {
        account
            .raw(Method::POST, path, Some(device.token()), Some(&body))
            .await
    };
    let started = post("/files/upload/initiate", body).await;
    assert_eq!(started.status, 201, "{}", started.body);
    let file_id = started.body["file"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if started.body["status"] == "already_present" {
        return file_id;
    }
    let upload_id = started.body["upload"]["upload_id"].clone();
    let urls = account
        .raw(
            Method::POST,
            &format!("/files/{file_id}/parts"),
            Some(device.token()),
            Some(&serde_json::json!({ "part_numbers": [1] })),
        )
        .await;
    let url = urls.body["parts"][0]["url"].as_str().unwrap_or_default();
    let stored = reqwest::Client::new()
        .put(url)
        .body(sent.to_vec())
        .send()
        .await
        .expect("reach the store");
    assert!(stored.status().is_success(), "{}", stored.status());
    let etag = stored.headers()["etag"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    let recorded = post(
        "/files/upload/part",
        serde_json::json!({ "upload_id": upload_id, "part_number": 1, "etag": etag }),
    )
    .await;
    assert_eq!(recorded.status, 200, "{}", recorded.body);
    let done = post(
        "/files/upload/complete",
        serde_json::json!({ "upload_id": upload_id }),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    file_id
}

/// Files under the host's state directory (`UDC_TEST_STATE_DIR`, set by scripts/hosts.sh)
/// that contain `needle`: what the server stored, read from disk.
pub fn stored_files_containing(needle: &[u8]) -> Option<Vec<std::path::PathBuf>> {
    let root = std::path::PathBuf::from(std::env::var_os("UDC_TEST_STATE_DIR")?);
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let big = entry.metadata().map(|m| m.len() > 32 << 20).unwrap_or(true);
            if path.is_dir() {
                dirs.push(path);
            } else if big {
                // Object-store parts of the files tests: not where inline items live.
                continue;
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    Some(found)
}

/// The error code of an answer (panics if it has none).
pub fn code(resp: &RawResponse) -> &str {
    resp.body["error"]["code"].as_str().expect("an error body")
}

/// Hub helpers: sockets, and waiting for the frame a test expects.
pub mod hub {
    use std::time::Duration;

    use udc_agent::realtime::{Incoming, Socket};
    use udc_hub::{Event, HubFrame};

    use super::{base_url, TestDevice};

    /// Guards against a hang; never a measure of speed.
    pub const PATIENCE: Duration = Duration::from_secs(15);

    pub async fn connect(device: &TestDevice, resume_after: Option<u64>) -> Socket {
        Socket::connect(&base_url(), device.token(), resume_after)
            .await
            .expect("open the realtime socket")
    }

    pub async fn next(socket: &mut Socket) -> Incoming {
        tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the hub sent nothing in time")
    }

    /// Skips frames until one matches; panics on close or timeout.
    pub async fn wait_for(
        socket: &mut Socket,
        what: &str,
        matches: impl Fn(&HubFrame) -> bool,
    ) -> HubFrame {
        loop {
            match next(socket).await {
                Incoming::Frame(f) if matches(&f) => return f,
                Incoming::Frame(_) => continue,
                other => panic!("waiting for {what}, got {other:?}"),
            }
        }
    }

    pub async fn wait_event(socket: &mut Socket, name: &str, about: &str) -> Event {
        let f = wait_for(socket, name, |f| {
            matches!(f, HubFrame::Event(e) if e.event == name && e.data.to_string().contains(about))
        })
        .await;
        match f {
            HubFrame::Event(e) => e,
            _ => unreachable!(),
        }
    }

    /// Skips frames until the hub closes the socket; the close code.
    pub async fn wait_closed(socket: &mut Socket) -> Option<u16> {
        loop {
            match next(socket).await {
                Incoming::Frame(_) => continue,
                Incoming::Closed { code, .. } => return code,
                other => panic!("waiting for the socket to close, got {other:?}"),
            }
        }
    }

    /// Frames up to and including `ready`; the events among them are the replay.
    pub async fn replay(socket: &mut Socket) -> (Vec<Event>, HubFrame) {
        let mut events = Vec::new();
        loop {
            match next(socket).await {
                Incoming::Frame(HubFrame::Event(e)) => events.push(e),
                Incoming::Frame(f @ (HubFrame::Ready { .. } | HubFrame::ResyncRequired { .. })) => {
                    return (events, f)
                }
                other => panic!("during replay: {other:?}"),
            }
        }
    }
}

/// Runs its closure when dropped, however the test ends (a failed assertion too): what a test
/// starts outside the suite's own types — an agent started as a desktop would, a registry
/// value — is stopped or removed there.
pub struct Finally<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
