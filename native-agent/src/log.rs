//! The log file a background agent (`udc-agent run --log`, what `autostart` starts) writes: where
//! it is, and everything the agent prints going there, one line each, with the time it was
//! printed. Started at sign-in there is no terminal to print to, and the owner looking for what it
//! did needs a file they can find: `udc-agent autostart` names it.
// Pointing standard output and error at the log is a system call on each system (dup2,
// SetStdHandle): each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};

use crate::store::Store;

/// A log bigger than this is renamed `agent.log.1` (the one before it dropped) when the agent
/// starts: the owner keeps the last two runs' worth, and a disk never fills.
const ROTATE_AT: u64 = 1 << 20;

/// The log file: beside the settings when `UDC_CONFIG_DIR` names their place, and on Windows
/// (`%LOCALAPPDATA%\udc\agent.log`); else the system's place for logs: `~/Library/Logs/udc` on
/// macOS, `$XDG_STATE_HOME/udc` (`~/.local/state/udc`) elsewhere.
pub fn path(store: &Store) -> PathBuf {
    let own_dir = std::env::var_os("UDC_CONFIG_DIR").is_some_and(|d| !d.is_empty());
    if own_dir || cfg!(windows) {
        return store.dir().join("agent.log");
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = if cfg!(target_os = "macos") {
        env("HOME").map(|h| PathBuf::from(h).join("Library/Logs"))
    } else {
        env("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/state")))
    };
    base.map_or_else(
        || store.dir().join("agent.log"),
        |b| b.join("udc/agent.log"),
    )
}

/// Where this process's output is going: `finish` writes what is left before it exits.
pub struct Logging {
    writer: Option<JoinHandle<()>>,
    /// The pipe's end standard output and error write to (on Unix descriptors 1 and 2 are it).
    #[cfg(windows)]
    pipe: Option<std::os::windows::io::OwnedHandle>,
}

impl Logging {
    /// Closes this process's output and waits for its last lines to reach the file.
    pub fn finish(mut self) {
        let _ = std::io::stdout().flush();
        let null = if cfg!(windows) { "NUL" } else { "/dev/null" };
        let Ok(null) = OpenOptions::new().write(true).open(null) else {
            return;
        };
        // The pipe ends when nothing writes to it any more; the writer then sees its end.
        #[cfg(unix)]
        let closed = redirect(std::os::fd::AsRawFd::as_raw_fd(&null)).is_ok();
        #[cfg(windows)]
        let closed = {
            let closed =
                redirect(std::os::windows::io::IntoRawHandle::into_raw_handle(null)).is_ok();
            drop(self.pipe.take());
            closed
        };
        if let Some(writer) = self.writer.take().filter(|_| closed) {
            let _ = writer.join();
        }
    }
}

/// From now on, everything this process prints (standard output and error) goes to `path`,
/// each line after the UTC time it was printed.
pub fn to_file(path: &Path) -> Result<Logging> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = fs::rename(path, path.with_extension("log.1"));
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let (reader, writer) = std::io::pipe().context("a pipe for the log")?;
    // Unix: descriptors 1 and 2 become copies of the pipe's end, which is then not needed.
    #[cfg(unix)]
    redirect(std::os::fd::AsRawFd::as_raw_fd(&writer)).context("sending output to the log")?;
    #[cfg(unix)]
    drop(writer);
    #[cfg(windows)]
    let pipe = {
        let pipe = std::os::windows::io::OwnedHandle::from(writer);
        redirect(std::os::windows::io::AsRawHandle::as_raw_handle(&pipe))
            .context("sending output to the log")?;
        pipe
    };
    let writer = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{} {line}", now_utc());
            }
        })
        .map_err(|e| anyhow!("the log's thread: {e}"))?;
    Ok(Logging {
        writer: Some(writer),
        #[cfg(windows)]
        pipe: Some(pipe),
    })
}

/// `2026-12-02T01:02:03Z`: sorts as text, and reads the same in every time zone.
fn now_utc() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Points standard output and error at the open descriptor `to`.
#[cfg(unix)]
fn redirect(to: std::os::fd::RawFd) -> std::io::Result<()> {
    for fd in [1, 2] {
        // SAFETY: dup2 makes descriptor 1 or 2 a copy of `to`, which the caller keeps open for
        // this call; what 1 or 2 was is closed, and std holds no other copy of it (its standard
        // output and error only ever name the numbers).
        if unsafe { libc::dup2(to, fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Points standard output and error at the open handle `to` (std asks Windows for the
/// standard handles on each write, so it follows at once).
#[cfg(windows)]
fn redirect(to: std::os::windows::io::RawHandle) -> std::io::Result<()> {
    use windows_sys::Win32::System::Console::{SetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
    for which in [STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
        // SAFETY: the caller keeps `to` open for as long as it is the standard handle (the
        // pipe's until `finish` points both elsewhere; the null device's for good).
        if unsafe { SetStdHandle(which, to) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_written_as_utc_and_sorts_as_text() {
        let t = now_utc();
        assert_eq!(t.len(), "2026-12-02T01:02:03Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.as_str() > "2026-01-01", "{t}");
    }
}
