//! The command line: every command, its arguments and their rules (clap).

use clap::{Parser, Subcommand};

pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Parser)]
#[command(
    name = "udc-agent",
    version,
    about = "udc, the Universal Device Connector: the device agent"
)]
pub(crate) struct Cli {
    /// The udc server (defaults to the signed-in session's, then http://127.0.0.1:8080).
    #[arg(long, env = "UDC_SERVER", global = true)]
    pub(crate) server: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create an account and register this device in it.
    Register(Credentials),
    /// Sign in and register this device.
    Login(Credentials),
    /// Lost the password: set a new one with the account's recovery code (every session ends,
    /// the data stays), then sign in with it here.
    Recover(Credentials),
    /// End this device's session (the device stays listed; remove it with `devices remove`).
    Logout,
    /// The account itself: where it is signed in, its password and recovery code; deleting it.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Stay connected to the account's hub and print its events (resumes after a restart).
    Watch,
    /// The account's devices.
    Devices {
        #[command(subcommand)]
        command: Option<DevicesCommand>,
    },
    /// Send a file to another device (resumes an interrupted send of the same file).
    Send(SendArgs),
    /// Download the files sent to this device, verify them and confirm them.
    Receive {
        /// Where to save them (by default your Downloads folder).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Only this file (by id); by default every file waiting for this device.
        #[arg(long)]
        file: Option<String>,
    },
    /// The account's files.
    Files {
        #[command(subcommand)]
        command: Option<FilesCommand>,
    },
    /// Share the clipboard with the account's other devices (runs until stopped), or set this
    /// device's clipboard preferences.
    Clipboard {
        #[command(subcommand)]
        command: Option<ClipboardCommand>,
    },
    /// Answer another device's request to sign in (shows who asks and its fingerprint phrase).
    Approve(ApproveArgs),
    /// Run in the background: share the clipboard and answer remote control requests (what
    /// `autostart` starts at sign-in); runs until stopped.
    Run {
        /// Write everything to the log file, each line timed, instead of the terminal
        /// (`autostart` says where it is).
        #[arg(long)]
        log: bool,
    },
    /// Start `udc-agent run` whenever you sign in to this computer (on) or stop that (off);
    /// without on or off, say whether it does and where its log is.
    Autostart {
        #[arg(value_parser = parse_switch)]
        state: Option<bool>,
    },
    /// Remote control of this device: serve requests, choose who may connect unattended.
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum RemoteCommand {
    /// Answer remote control requests for this device (asks at the terminal unless allowed),
    /// replay input, keep sessions alive; runs until stopped.
    Serve,
    /// See another device's screen in a window (and with --control, drive it from there).
    /// Also reads standard input, one JSON line each: a list of input events,
    /// {"snapshot": "PATH"}, {"keyframe": true} or {"screen": ID}.
    View {
        /// The device, by name or id.
        device: String,
        /// Ask to control it too, not only view it.
        #[arg(long)]
        control: bool,
        /// Save the first picture as PNG (and, without --control, end there); no window.
        #[arg(long)]
        snapshot: Option<std::path::PathBuf>,
        /// No window, even on a desktop: standard input drives the session (scripts).
        #[arg(long)]
        no_window: bool,
        /// Seconds before the session ends by itself.
        #[arg(long, default_value_t = 3600)]
        max_duration: u32,
        /// Which of its screens to show: an id it lists when connected, or all (by default its
        /// primary one). Standard input's {"screen": ID} changes it during the session.
        #[arg(long)]
        screen: Option<String>,
    },
    /// Let a device in without asking (by id or name).
    Allow {
        device: String,
        #[arg(long, value_parser = ["view_only", "view_and_control"], default_value = "view_only")]
        mode: String,
    },
    /// Ask again before letting a device in.
    Disallow { device: String },
    /// End a remote session at once.
    End { session: String },
}

#[derive(Subcommand)]
pub(crate) enum ClipboardCommand {
    /// Show or change whether this device sends and receives, and the account's history size.
    Prefs {
        #[arg(long, value_parser = parse_switch)]
        send: Option<bool>,
        #[arg(long, value_parser = parse_switch)]
        receive: Option<bool>,
        #[arg(long)]
        history: Option<u32>,
    },
}

pub(crate) fn parse_switch(raw: &str) -> std::result::Result<bool, String> {
    match raw {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{raw:?}: use on or off")),
    }
}

#[derive(clap::Args)]
pub(crate) struct ApproveArgs {
    /// The request to answer (by id); by default each pending one in turn.
    #[arg(long)]
    pub(crate) request: Option<String>,
    /// Approve without asking (for scripts).
    #[arg(long, conflicts_with = "deny")]
    pub(crate) yes: bool,
    /// Deny without asking.
    #[arg(long)]
    pub(crate) deny: bool,
    /// Wait this many seconds for a request to arrive.
    #[arg(long, default_value_t = 0)]
    pub(crate) wait: u64,
}

#[derive(clap::Args)]
pub(crate) struct SendArgs {
    pub(crate) path: std::path::PathBuf,
    /// The receiving device (by id or name); without it the file is stored for the account.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Parts uploaded at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) parallel: usize,
    /// Average upload rate limit, in bytes per second (suffixes K, M, G).
    #[arg(long, value_parser = parse_rate)]
    pub(crate) limit_rate: Option<u64>,
    #[arg(long)]
    pub(crate) mime: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum FilesCommand {
    /// List files (the default); `--deleted` lists those that can be restored.
    List {
        #[arg(long)]
        deleted: bool,
    },
    /// Delete a file (restorable for 30 days).
    Delete { file: String },
    /// Bring back a deleted file.
    Restore { file: String },
}

pub(crate) fn parse_rate(raw: &str) -> std::result::Result<u64, String> {
    let raw = raw.trim();
    let (digits, scale) = match raw.char_indices().last() {
        Some((i, 'K' | 'k')) => (&raw[..i], 1024),
        Some((i, 'M' | 'm')) => (&raw[..i], 1024 * 1024),
        Some((i, 'G' | 'g')) => (&raw[..i], 1024 * 1024 * 1024),
        _ => (raw, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * scale)
        .ok_or_else(|| format!("{raw:?} is not a rate like 500K or 8M"))
}

#[derive(clap::Args)]
pub(crate) struct Credentials {
    #[arg(long, env = "UDC_EMAIL")]
    pub(crate) email: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// Sign in without the password: one of the account's devices approves (`udc-agent approve`).
    #[arg(long, conflicts_with = "password_stdin")]
    pub(crate) approve_with_device: bool,
    /// This device's name (defaults to the host name).
    #[arg(long)]
    pub(crate) device_name: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum AccountCommand {
    /// Where the account is signed in (the default), or sign sessions out.
    Sessions {
        #[command(subcommand)]
        command: Option<SessionsCommand>,
    },
    /// What happened to the account, newest first: sign-ins and failed attempts, devices,
    /// trust, approvals, password and recovery code changes, remote sessions (90 days).
    Activity {
        /// How many entries (1 to 200).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
    },
    /// Change the password (asks for the current one and the new one, twice). Everything
    /// sealed stays readable; every other session signs out.
    Password {
        /// Read the current password, then the new one, from two lines of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a new recovery code (asks for the password); the last one stops working.
    RecoveryCode {
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete the account and everything in it, on every device (asks for the password).
    Delete {
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum SessionsCommand {
    /// List the sessions that can still be used, the most recently used first (the default).
    List,
    /// Sign one session out (by id): its tokens stop working and its sockets close.
    End { session: String },
    /// Sign out every session but this device's.
    EndOthers,
}

#[derive(Subcommand)]
pub(crate) enum DevicesCommand {
    /// List devices (the default).
    List,
    /// Rename a device (by id or name).
    Rename { device: String, name: String },
    /// Remove a device: its sessions end at once.
    Remove { device: String },
    /// Make this device trust another (by id or name).
    Trust { device: String },
    /// Stop this device trusting another.
    Untrust { device: String },
}
