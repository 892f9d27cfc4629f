//! `udc-agent autostart on|off`: the agent starts in the background (`udc-agent run --log`)
//! when its owner signs in to this computer, the way each system expects of a program a user
//! installed for themselves, needing no administrator:
//! - Windows: a value in the user's `Run` key (`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`).
//!   Not a scheduled task: the Run key is what Task Manager's Startup page lists, so the owner
//!   sees it and can switch it off there, and it needs no Task Scheduler COM. It starts
//!   `udc-agentw.exe`, which starts the agent without a console window.
//! - Linux desktops: an XDG autostart entry (`~/.config/autostart/udc-agent.desktop`).
//! - macOS: a launch agent (`~/Library/LaunchAgents/org.udc.agent.plist`), loaded at the next
//!   sign-in.
//!
//! The settings in force when it was switched on (`UDC_CONFIG_DIR`, `UDC_TOKEN_STORE`) go with
//! it, so the agent started at sign-in is the one signed in now.

use std::path::PathBuf;

use anyhow::{anyhow, Result};

/// What the entry runs: the agent in the background, its output in the log file.
pub const ARGS: [&str; 2] = ["run", "--log"];
/// The settings that choose which agent this is, carried into the entry when set.
const CARRIED: [&str; 2] = ["UDC_CONFIG_DIR", "UDC_TOKEN_STORE"];

/// The program and arguments started at sign-in: `NAME=VALUE` pairs first (the settings in
/// force), as `env` takes them on Unix and `udc-agentw.exe` on Windows.
pub fn command() -> Result<Vec<String>> {
    let exe = std::env::current_exe().map_err(|e| anyhow!("where this agent is: {e}"))?;
    let program = launcher(exe)?;
    let mut args = vec![program.display().to_string()];
    for name in CARRIED {
        if let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) {
            let value = value.to_string_lossy();
            // One line of a desktop entry, one string of a plist: no line breaks in either.
            if value.chars().any(char::is_control) {
                return Err(anyhow!(
                    "{name} has a control character: not carried into an entry"
                ));
            }
            args.push(format!("{name}={value}"));
        }
    }
    args.extend(ARGS.map(str::to_owned));
    Ok(args)
}

/// The program the entry starts: on Windows the launcher beside the agent.
#[cfg(windows)]
fn launcher(exe: PathBuf) -> Result<PathBuf> {
    let launcher = exe.with_file_name("udc-agentw.exe");
    if !launcher.is_file() {
        return Err(anyhow!(
            "{} is missing: it starts the agent at sign-in without a console window, and is \
             built beside udc-agent.exe",
            launcher.display()
        ));
    }
    Ok(launcher)
}

#[cfg(not(windows))]
fn launcher(exe: PathBuf) -> Result<PathBuf> {
    Ok(exe)
}

/// Starts the agent at sign-in from now on.
pub fn enable() -> Result<()> {
    system::write(&command()?)
}

/// Stops starting it; whether there was an entry.
pub fn disable() -> Result<bool> {
    system::remove()
}

/// The command line this user's sign-in starts, if any.
pub fn current() -> Result<Option<String>> {
    system::read()
}

/// `args` as one Windows command line: each quoted where it must be, as the C runtime (and
/// std's `args()`) split it again.
pub fn windows_command_line(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
                return arg.clone();
            }
            let mut quoted = String::from("\"");
            let mut backslashes = 0;
            for c in arg.chars() {
                match c {
                    '\\' => backslashes += 1,
                    '"' => {
                        // Backslashes before a quote are doubled, and the quote escaped.
                        quoted.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                        backslashes = 0;
                    }
                    _ => {
                        quoted.extend(std::iter::repeat_n('\\', backslashes));
                        backslashes = 0;
                    }
                }
                if c != '\\' {
                    quoted.push(c);
                }
            }
            // Before the closing quote, backslashes are doubled too.
            quoted.extend(std::iter::repeat_n('\\', backslashes * 2));
            quoted.push('"');
            quoted
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `args` as a desktop entry's `Exec` value: `env NAME=VALUE … program args`, each quoted and
/// escaped as the Desktop Entry specification says (its quoting rule, then its string escapes).
pub fn desktop_exec(args: &[String]) -> String {
    let (env, rest): (Vec<&String>, Vec<&String>) = args
        .iter()
        .partition(|a| CARRIED.iter().any(|n| a.starts_with(&format!("{n}="))));
    let quote = |arg: &str| {
        let mut q = String::from("\"");
        for c in arg.chars() {
            if matches!(c, '"' | '`' | '$' | '\\') {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        // `%` introduces a field code; a backslash is itself escaped in every string value.
        q.replace('%', "%%").replace('\\', "\\\\")
    };
    let mut words: Vec<String> = Vec::new();
    if !env.is_empty() {
        words.push("env".into());
    }
    words.extend(env.iter().chain(rest.iter()).map(|a| quote(a)));
    words.join(" ")
}

#[cfg(windows)]
mod system {
    //! The user's Run key.
    // The registry is reached through its C API (windows-sys): each block says why it is sound.
    #![allow(unsafe_code)]

    use anyhow::{anyhow, Result};
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        RegDeleteKeyValueW, RegGetValueW, RegSetKeyValueW, HKEY_CURRENT_USER, REG_SZ, RRF_RT_REG_SZ,
    };

    const RUN: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
    const NAME: &str = "udc-agent";

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain([0]).collect()
    }

    pub fn write(args: &[String]) -> Result<()> {
        let value = wide(&super::windows_command_line(args));
        let (key, name) = (wide(RUN), wide(NAME));
        // SAFETY: every pointer is to a NUL-terminated UTF-16 buffer that outlives the call;
        // the data's length is the buffer's in bytes, its terminating NUL included.
        let status = unsafe {
            RegSetKeyValueW(
                HKEY_CURRENT_USER,
                key.as_ptr(),
                name.as_ptr(),
                REG_SZ,
                value.as_ptr().cast(),
                (value.len() * 2) as u32,
            )
        };
        if status != ERROR_SUCCESS {
            return Err(anyhow!(
                "writing HKCU\\{RUN}\\{NAME}: Windows error {status}"
            ));
        }
        Ok(())
    }

    pub fn remove() -> Result<bool> {
        let (key, name) = (wide(RUN), wide(NAME));
        // SAFETY: both pointers are to NUL-terminated UTF-16 buffers that outlive the call.
        match unsafe { RegDeleteKeyValueW(HKEY_CURRENT_USER, key.as_ptr(), name.as_ptr()) } {
            ERROR_SUCCESS => Ok(true),
            ERROR_FILE_NOT_FOUND => Ok(false),
            status => Err(anyhow!(
                "removing HKCU\\{RUN}\\{NAME}: Windows error {status}"
            )),
        }
    }

    pub fn read() -> Result<Option<String>> {
        let (key, name) = (wide(RUN), wide(NAME));
        let mut buf = vec![0u16; 4096];
        let mut bytes = (buf.len() * 2) as u32;
        // SAFETY: `buf` is `bytes` bytes long and outlives the call, which writes at most that
        // many and says how many it wrote; the other pointers are NUL-terminated strings.
        let status = unsafe {
            RegGetValueW(
                HKEY_CURRENT_USER,
                key.as_ptr(),
                name.as_ptr(),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                buf.as_mut_ptr().cast(),
                &mut bytes,
            )
        };
        match status {
            ERROR_SUCCESS => {
                buf.truncate(bytes as usize / 2);
                let text = String::from_utf16_lossy(&buf);
                Ok(Some(text.trim_end_matches('\0').to_owned()))
            }
            ERROR_FILE_NOT_FOUND => Ok(None),
            status => Err(anyhow!(
                "reading HKCU\\{RUN}\\{NAME}: Windows error {status}"
            )),
        }
    }
}

#[cfg(not(windows))]
mod system {
    //! A file the desktop reads at sign-in: an XDG autostart entry, or a macOS launch agent.

    use std::path::PathBuf;

    use anyhow::{anyhow, Context, Result};

    use crate::store::env_dir;

    fn home() -> Result<PathBuf> {
        env_dir("HOME").ok_or_else(|| anyhow!("HOME is not set"))
    }

    #[cfg(target_os = "macos")]
    fn entry() -> Result<PathBuf> {
        Ok(home()?.join("Library/LaunchAgents/org.udc.agent.plist"))
    }

    #[cfg(not(target_os = "macos"))]
    fn entry() -> Result<PathBuf> {
        let config = match env_dir("XDG_CONFIG_HOME") {
            Some(dir) => dir,
            None => home()?.join(".config"),
        };
        Ok(config.join("autostart/udc-agent.desktop"))
    }

    #[cfg(target_os = "macos")]
    fn text(args: &[String]) -> String {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let (env, rest): (Vec<&String>, Vec<&String>) =
            args.iter().partition(|a| a.starts_with("UDC_"));
        let strings = |v: &[&String]| -> String {
            v.iter()
                .map(|a| format!("    <string>{}</string>\n", escape(a)))
                .collect()
        };
        let env: String = env
            .iter()
            .filter_map(|a| a.split_once('='))
            .map(|(k, v)| {
                format!(
                    "    <key>{}</key><string>{}</string>\n",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\n  <key>Label</key><string>org.udc.agent</string>\n  <key>ProgramArguments</key><array>\n{}  </array>\n  <key>EnvironmentVariables</key><dict>\n{env}  </dict>\n  <key>RunAtLoad</key><true/>\n</dict></plist>\n",
            strings(&rest)
        )
    }

    #[cfg(not(target_os = "macos"))]
    fn text(args: &[String]) -> String {
        format!(
            "[Desktop Entry]\nType=Application\nName=udc agent\n\
             Comment=Shares the clipboard and answers remote control requests (udc-agent run)\n\
             Exec={}\nNoDisplay=true\nX-GNOME-Autostart-enabled=true\n",
            super::desktop_exec(args)
        )
    }

    pub fn write(args: &[String]) -> Result<()> {
        let path = entry()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text(args)).with_context(|| format!("writing {}", path.display()))
    }

    pub fn remove() -> Result<bool> {
        let path = entry()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    pub fn read() -> Result<Option<String>> {
        let path = entry()?;
        match std::fs::read_to_string(&path) {
            Ok(_) => Ok(Some(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_windows_command_line_quotes_what_the_c_runtime_would_split() {
        let line = windows_command_line(&strings(&[
            r"C:\Program Files\udc\udc-agentw.exe",
            r"UDC_CONFIG_DIR=C:\My udc\",
            "run",
            "say \"hi\"",
            "",
        ]));
        assert_eq!(
            line,
            r#""C:\Program Files\udc\udc-agentw.exe" "UDC_CONFIG_DIR=C:\My udc\\" run "say \"hi\"" """#
        );
    }

    #[test]
    fn a_desktop_entry_runs_the_settings_through_env_and_escapes_what_it_must() {
        let exec = desktop_exec(&strings(&[
            "/opt/udc agent/udc-agent",
            "UDC_CONFIG_DIR=/home/me/100%/$x",
            "run",
            "--log",
        ]));
        assert_eq!(
            exec,
            r#"env "UDC_CONFIG_DIR=/home/me/100%%/\\$x" "/opt/udc agent/udc-agent" "run" "--log""#
        );
    }
}
