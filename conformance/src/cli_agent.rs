//! A `udc-agent` driven from its command line as a user would: its own config directory, JSON
//! out. The Linux build runs as itself (`UDC_AGENT_BIN`); the Windows build runs under Wine
//! (`UDC_WINDOWS_AGENT_BIN`, in the prefix `WINEPREFIX`: scripts/test.sh builds one, and
//! scripts/hosts.sh's start_wine makes the other), where
//! every path it is given is a Windows path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{agent_bin, agent_command, base_url, PASSWORD};

/// Wine's 64-bit loader, where Debian installs it.
const WINE: &str = "/usr/lib/wine/wine64";

pub struct Agent {
    /// Its settings and state (removed when it is dropped).
    pub config: PathBuf,
    windows: bool,
}

impl Agent {
    /// The Linux agent.
    pub fn new() -> Agent {
        Agent::with(false)
    }

    /// The Windows agent, under Wine.
    pub fn windows() -> Agent {
        Agent::with(true)
    }

    fn with(windows: bool) -> Agent {
        let config =
            std::env::temp_dir().join(format!("udc-cli-{}", uuid::Uuid::new_v4().simple()));
        Agent { config, windows }
    }

    /// `path` as this agent names it: a Windows agent sees the Linux file system as drive Z:.
    pub fn path(&self, path: &Path) -> String {
        if self.windows {
            windows_path(path)
        } else {
            path.display().to_string()
        }
    }

    /// `udc-agent --server <UDC_BASE_URL> --json`, its session in a file in `config`.
    pub fn command(&self) -> Command {
        if self.windows {
            wine_command(&self.config)
        } else {
            agent_command(&self.config)
        }
    }

    /// Runs it with `args` and `stdin`; returns (success, stdout JSON, stderr).
    pub fn run(&self, args: &[&str], stdin: &str) -> (bool, Value, String) {
        self.run_command(self.command(), args, stdin)
    }

    /// As `run`, from `command` (this agent's, changed).
    pub fn run_command(
        &self,
        mut command: Command,
        args: &[&str],
        stdin: &str,
    ) -> (bool, Value, String) {
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                let bin = if self.windows {
                    PathBuf::from(WINE)
                } else {
                    agent_bin()
                };
                panic!(
                    "cannot run {}: {e} (scripts/setup.sh installs Wine; cargo build -p udc-agent)",
                    bin.display()
                )
            });
        // An agent may finish without reading its input (refused before it asks for the
        // password): the pipe is closed then, and its exit status is the answer to check.
        match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            written => written.unwrap(),
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let json = if stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or(Value::String(stdout))
        };
        (
            out.status.success(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn ok(&self, args: &[&str], stdin: &str) -> Value {
        let (ok, json, err) = self.run(args, stdin);
        assert!(ok, "udc-agent {args:?} failed: {err}");
        json
    }

    /// Signs in to the account of `email` (the tests' password) as a device named `name`.
    pub fn login(&self, email: &str, name: &str) -> Value {
        self.ok(
            &[
                "login",
                "--email",
                email,
                "--password-stdin",
                "--device-name",
                name,
            ],
            &format!("{PASSWORD}\n"),
        )
    }

    /// This device, as `devices --json` lists it.
    pub fn this_device(&self) -> Value {
        this_device(&self.ok(&["devices"], ""))
    }
}

/// The device a `devices --json` list marks as the one that listed it.
pub fn this_device(list: &Value) -> Value {
    list["devices"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["is_current"] == true))
        .unwrap_or_else(|| panic!("no current device in {list}"))
        .clone()
}

impl Default for Agent {
    fn default() -> Agent {
        Agent::new()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

/// `path` as Windows programs under Wine name it: the Linux file system is drive Z:.
pub fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// Runs the Windows program `exe` under Wine, in the prefix `WINEPREFIX` (scripts/hosts.sh's
/// start_wine makes it, on a display of its own).
pub fn wine(exe: impl AsRef<std::ffi::OsStr>) -> Command {
    assert!(
        std::env::var_os("WINEPREFIX").is_some(),
        "WINEPREFIX names the Wine prefix (scripts/hosts.sh's start_wine makes it)"
    );
    let mut cmd = Command::new(WINE);
    cmd.arg(exe).env("WINEDEBUG", "-all");
    cmd
}

/// `udc-agent.exe --server <UDC_BASE_URL> --json` under Wine, its settings and session (a file)
/// in `config`.
pub fn wine_command(config: &Path) -> Command {
    let exe = std::env::var_os("UDC_WINDOWS_AGENT_BIN")
        .expect("UDC_WINDOWS_AGENT_BIN names udc-agent.exe (scripts/test.sh builds it)");
    let mut cmd = wine(exe);
    cmd.args(["--server", &base_url(), "--json"])
        .env("UDC_CONFIG_DIR", windows_path(config))
        .env("UDC_TOKEN_STORE", "file");
    cmd
}
