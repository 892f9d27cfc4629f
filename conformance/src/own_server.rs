//! Tests that run their own udc-server (`UDC_SERVER_BIN`): killed, restarted, backed up.
//! Each test process talks to its own server only (nextest runs each test in a process).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

/// The S3 credentials a test's own store (SeaweedFS) and server share.
pub const ACCESS_KEY: &str = "udc-faults";
pub const SECRET_KEY: &str = "faults-secret-0123456789abcdef";

/// A child process killed (with its process group) when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_until(what: &str, url: &str, ok: impl Fn(StatusCode) -> bool) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await {
            if ok(r.status()) {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// udc-server in test mode on `data` (its log beside it, `data.log`), with the S3 store on
/// `store_port` as its object store, or (None) its embedded one.
pub async fn start_server(data: &Path, port: u16, store_port: Option<u16>) -> Proc {
    start_server_with(data, port, store_port, &[]).await
}

/// `start_server` with settings of its own (`UDC_*` variables).
pub async fn start_server_with(
    data: &Path,
    port: u16,
    store_port: Option<u16>,
    settings: &[(&str, &str)],
) -> Proc {
    let bin = std::env::var("UDC_SERVER_BIN").expect("UDC_SERVER_BIN names the udc-server binary");
    let mut command = Command::new(bin);
    command.envs(settings.iter().copied());
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .env("UDC_TEST_MODE", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.with_extension("log")).unwrap());
    if let Some(store_port) = store_port {
        command
            .env("UDC_S3_ENDPOINT", format!("http://127.0.0.1:{store_port}"))
            .env("UDC_S3_BUCKET", "udc-files")
            .env("UDC_S3_ACCESS_KEY_ID", ACCESS_KEY)
            .env("UDC_S3_SECRET_ACCESS_KEY", SECRET_KEY);
    }
    let proc = Proc(command.spawn().unwrap());
    wait_until(
        "udc-server",
        &format!("http://127.0.0.1:{port}/health"),
        |s| s.is_success(),
    )
    .await;
    proc
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udc-own-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first line of the server's log (`data.log`) that holds `needle`, waited for: the server
/// writes its log on a thread of its own, a moment after it answered.
pub async fn log_line_with(data: &Path, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no line of the log holds {needle}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
