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

use crate::store::{env_dir, Store};

/// A log bigger than this is renamed `agent.log.1` (the one before it dropped), at the start and
/// while the agent runs: the owner keeps the last 1-2 MiB, and a disk never fills.
const ROTATE_AT: u64 = 1 << 20;

/// The log file: beside the settings when `UDC_CONFIG_DIR` names their place, and on Windows
/// (`%LOCALAPPDATA%\udc\agent.log`); else the system's place for logs: `~/Library/Logs/udc` on
/// macOS, `$XDG_STATE_HOME/udc` (`~/.local/state/udc`) elsewhere.
pub fn path(store: &Store) -> PathBuf {
    if env_dir("UDC_CONFIG_DIR").is_some() || cfg!(windows) {
        return store.dir().join("agent.log");
    }
    let base = if cfg!(target_os = "macos") {
        env_dir("HOME").map(|h| h.join("Library/Logs"))
    } else {
        env_dir("XDG_STATE_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".local/state")))
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
            // Only then: while it is still the standard handle it must stay open.
            if closed {
                drop(self.pipe.take());
            }
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
    let mut file = open_rotated(path).with_context(|| format!("opening {}", path.display()))?;
    let mut written = file.metadata().map(|m| m.len()).unwrap_or(0);
    // A panic's message would be in the pipe when the process ends, before the thread below
    // writes it: it goes to the file at once.
    let for_panics = path.to_owned();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&for_panics) {
            let _ = writeln!(f, "{} udc-agent panicked: {info}", now_utc());
        }
        previous(info);
    }));
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
    let path = path.to_owned();
    let writer = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            // Read until every writer is gone: a reader that stopped early would make the next
            // print fail, and a failed print panics. Bytes that are not UTF-8 are shown as �.
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                let entry = format!("{} {}\n", now_utc(), text.trim_end_matches(['\r', '\n']));
                line.clear();
                if written > ROTATE_AT {
                    if let Ok(fresh) = open_rotated(&path) {
                        file = fresh;
                        written = 0;
                    }
                }
                if file.write_all(entry.as_bytes()).is_ok() {
                    written += entry.len() as u64;
                }
            }
        })
        .map_err(|e| anyhow!("the log's thread: {e}"))?;
    Ok(Logging {
        writer: Some(writer),
        #[cfg(windows)]
        pipe: Some(pipe),
    })
}

/// The log for appending, the one there renamed `agent.log.1` first if it is past `ROTATE_AT`.
fn open_rotated(path: &Path) -> std::io::Result<fs::File> {
    if fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = fs::rename(path, path.with_extension("log.1"));
    }
    OpenOptions::new().create(true).append(true).open(path)
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
