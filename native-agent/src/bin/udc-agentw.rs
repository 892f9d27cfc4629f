//! `udc-agentw.exe`: starts `udc-agent.exe` (the one beside it) with no console window, for
//! what Windows starts at sign-in (`udc-agent autostart on` registers it). `udc-agent.exe` is a
//! console program, so started directly it would open a console the owner could close by
//! mistake; this one is a Windows program, which opens none, and starts the agent without one.
//! Leading `NAME=VALUE` arguments set the agent's environment (as `env` does on Unix).
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::process::ExitCode;

#[cfg(windows)]
fn main() -> ExitCode {
    use std::os::windows::process::CommandExt;
    use std::process::{Command, Stdio};
    /// The agent gets no console (CreateProcess's CREATE_NO_WINDOW).
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;

    let Ok(me) = std::env::current_exe() else {
        return ExitCode::FAILURE;
    };
    let mut agent = Command::new(me.with_file_name("udc-agent.exe"));
    let mut args = std::env::args_os().skip(1).peekable();
    while let Some((name, value)) = args
        .peek()
        .and_then(|a| a.to_str())
        .and_then(|a| a.split_once('='))
        .filter(|(name, _)| name.starts_with("UDC_"))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    {
        agent.env(name, value);
        args.next();
    }
    let started = agent
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .creation_flags(CREATE_NO_WINDOW)
        .spawn();
    // Nobody sees an error here: the agent's own log says what it did once it runs.
    if started.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(not(windows))]
fn main() -> ExitCode {
    eprintln!("udc-agentw starts the Windows agent without a console window; here, run udc-agent");
    ExitCode::from(2)
}
