//! `udc-agent`: what device owners run. Sign in, register this device, manage the account's
//! devices, send and receive files. `--json` prints machine-readable output for scripts.

use std::io::BufRead;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Parser, Subcommand};
use serde_json::json;
use udc_agent::client::SignedIn;
use udc_agent::kdf::DerivedKeys;
use udc_agent::seal::DeviceKeyPair;
use udc_agent::sync::{ApprovalState, PendingLogin};
use udc_agent::transfer::{self, Progress, SendOptions, SessionTokens};
use udc_agent::{Client, Device, DeviceInfo, Session, Store};

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Parser)]
#[command(
    name = "udc-agent",
    version,
    about = "udc, the Universal Device Connector: the device agent"
)]
struct Cli {
    /// The udc server (defaults to the signed-in session's, then http://127.0.0.1:8080).
    #[arg(long, env = "UDC_SERVER", global = true)]
    server: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account and register this device in it.
    Register(Credentials),
    /// Sign in and register this device.
    Login(Credentials),
    /// End this device's session (the device stays listed; remove it with `devices remove`).
    Logout,
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
        /// Where to save them.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
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
    /// Remote control of this device: serve requests, choose who may connect unattended.
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// Answer remote control requests for this device (asks at the terminal unless allowed),
    /// replay input, keep sessions alive; runs until stopped.
    Serve,
    /// See another device's screen (and with --control, drive it). Reads input from standard
    /// input, one JSON line each: a list of input events, or {"snapshot": "PATH"}.
    View {
        /// The device, by name or id.
        device: String,
        /// Ask to control it too, not only view it.
        #[arg(long)]
        control: bool,
        /// Save the first picture as PNG (and, without --control, end there).
        #[arg(long)]
        snapshot: Option<std::path::PathBuf>,
        /// Seconds before the session ends by itself.
        #[arg(long, default_value_t = 3600)]
        max_duration: u32,
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
enum ClipboardCommand {
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

fn parse_switch(raw: &str) -> std::result::Result<bool, String> {
    match raw {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{raw:?}: use on or off")),
    }
}

#[derive(clap::Args)]
struct ApproveArgs {
    /// The request to answer (by id); by default each pending one in turn.
    #[arg(long)]
    request: Option<String>,
    /// Approve without asking (for scripts).
    #[arg(long, conflicts_with = "deny")]
    yes: bool,
    /// Deny without asking.
    #[arg(long)]
    deny: bool,
    /// Wait this many seconds for a request to arrive.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

#[derive(clap::Args)]
struct SendArgs {
    path: std::path::PathBuf,
    /// The receiving device (by id or name); without it the file is stored for the account.
    #[arg(long)]
    to: Option<String>,
    /// Parts uploaded at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Average upload rate limit, in bytes per second (suffixes K, M, G).
    #[arg(long, value_parser = parse_rate)]
    limit_rate: Option<u64>,
    #[arg(long)]
    mime: Option<String>,
}

#[derive(Subcommand)]
enum FilesCommand {
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

fn parse_rate(raw: &str) -> std::result::Result<u64, String> {
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
struct Credentials {
    #[arg(long, env = "UDC_EMAIL")]
    email: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
    /// Sign in without the password: one of the account's devices approves (`udc-agent approve`).
    #[arg(long, conflicts_with = "password_stdin")]
    approve_with_device: bool,
    /// This device's name (defaults to the host name).
    #[arg(long)]
    device_name: Option<String>,
}

#[derive(Subcommand)]
enum DevicesCommand {
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

fn read_password(from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password("Password: ")?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

async fn sign_in(cli: &Cli, store: &Store, creds: &Credentials, create: bool) -> Result<()> {
    let server = cli
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let client = Client::new(&server);
    let (signed, enc_key): (SignedIn, [u8; 32]) = if creds.approve_with_device && !create {
        approved_sign_in(cli, &client, creds).await?
    } else {
        let password = read_password(creds.password_stdin)?;
        let (signed, keys): (SignedIn, DerivedKeys) = if create {
            client.register(&creds.email, &password).await?
        } else {
            let cookie = store.device_cookie(&creds.email);
            client
                .login_as(&creds.email, &password, cookie.as_deref())
                .await?
        };
        if let Some(cookie) = &signed.device_cookie {
            store.save_device_cookie(&creds.email, cookie)?;
        }
        (signed, keys.enc_key)
    };
    let registered = client
        .register_device(
            &signed.tokens.access_token,
            &DeviceInfo::this_machine(creds.device_name.clone()),
        )
        .await?;
    let mut session = Session {
        server,
        email: signed.user.email.clone(),
        user_id: signed.user.id.clone(),
        device_id: None,
        access_token: String::new(),
        access_expires_at: 0,
        refresh_token: String::new(),
        enc_key: B64.encode(enc_key),
    };
    session.apply(registered.tokens);
    store.save(&session)?;
    if cli.json {
        println!(
            "{}",
            json!({ "user": signed.user, "device": registered.device })
        );
    } else {
        println!(
            "Signed in as {} on device \"{}\" ({})",
            signed.user.email, registered.device.name, registered.device.id
        );
    }
    Ok(())
}

/// Asks for a sign-in, shows the phrase, and waits until a device of the account answers.
async fn approved_sign_in(
    cli: &Cli,
    client: &Client,
    creds: &Credentials,
) -> Result<(SignedIn, [u8; 32])> {
    let keys = DeviceKeyPair::generate();
    let name = DeviceInfo::this_machine(creds.device_name.clone()).name;
    let ticket = client
        .request_approval(&creds.email, &name, &keys.public_b64())
        .await?;
    let phrase = keys.fingerprint_phrase();
    // The server's phrase must be the one of the key we sent; if not, someone in between put
    // their own key in its place, and the approving device would seal the account key to them.
    if ticket.fingerprint_phrase != phrase {
        bail!(
            "the server named this request \"{}\", which is not the phrase of this device's key \
             (\"{phrase}\"): refusing; the server or something in between is not to be trusted",
            ticket.fingerprint_phrase
        );
    }
    if cli.json {
        println!(
            "{}",
            json!({ "approval": "requested", "request_id": ticket.request_id, "fingerprint_phrase": phrase })
        );
    } else {
        println!(
            "Approve this sign-in on one of your devices (`udc-agent approve`).\n\
             Check that it shows this phrase: {phrase}\nWaiting up to {} s...",
            ticket.expires_in
        );
    }
    loop {
        match client.poll_approval(&ticket).await? {
            ApprovalState::Pending { .. } => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await
            }
            ApprovalState::Approved(approved) => {
                let key = keys.open_account_key(&approved.sealed_key)?;
                return Ok((approved.signed_in(), key));
            }
        }
    }
}

async fn approve(cli: &Cli, store: &Store, args: &ApproveArgs) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let key = udc_agent::seal::account_key(&session.enc_key)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.wait);
    let requests = loop {
        let token = session.access_token(&client, store).await?;
        let pending: Vec<PendingLogin> = client
            .pending_approvals(&token)
            .await?
            .into_iter()
            .filter(|p| args.request.as_ref().is_none_or(|id| *id == p.id))
            .collect();
        if !pending.is_empty() || std::time::Instant::now() >= deadline {
            break pending;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    if requests.is_empty() {
        bail!("no sign-in request is waiting");
    }
    for request in requests {
        // The phrase is computed here from the key that will receive the account key, so a
        // server that lied about it would be caught by the user comparing the two screens.
        let public_key = B64
            .decode(&request.public_key)
            .map_err(|_| anyhow!("request {} has a malformed public key", request.id))?;
        let phrase = udc_client::phrase::fingerprint_phrase(&public_key);
        if phrase != request.fingerprint_phrase {
            bail!(
                "request {}: the server's phrase does not match its key; refusing",
                request.id
            );
        }
        let approved = if args.yes {
            true
        } else if args.deny {
            false
        } else {
            eprint!(
                "\"{}\" asks to sign in from {} at {}.\nIt should show: {phrase}\nApprove? [y/N] ",
                request.device_name,
                request.client_ip.as_deref().unwrap_or("an unknown address"),
                request.created_at
            );
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            matches!(line.trim(), "y" | "Y" | "yes")
        };
        let token = session.access_token(&client, store).await?;
        // This agent has no biometric sensor; a device that has one sets `biometric_verified`.
        client
            .respond_approval(&token, &request, approved, false, &key)
            .await?;
        let state = if approved { "approved" } else { "denied" };
        if cli.json {
            println!(
                "{}",
                json!({ "request_id": request.id, "state": state, "fingerprint_phrase": phrase })
            );
        } else {
            println!("{state} \"{}\"", request.device_name);
        }
    }
    Ok(())
}

async fn remote(cli: &Cli, store: &Store, command: &RemoteCommand) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    match command {
        RemoteCommand::Serve => {
            udc_agent::remote::serve(&client, store, &mut session, cli.json).await
        }
        RemoteCommand::View {
            device,
            control,
            snapshot,
            max_duration,
        } => {
            let opts = udc_agent::view::ViewOptions {
                device: device.clone(),
                control: *control,
                snapshot: snapshot.clone(),
                max_duration: *max_duration,
            };
            udc_agent::view::view(&client, store, &mut session, &opts, cli.json).await
        }
        RemoteCommand::Allow { device, mode } => {
            unattended(cli, store, &client, &mut session, device, Some(mode)).await
        }
        RemoteCommand::Disallow { device } => {
            unattended(cli, store, &client, &mut session, device, None).await
        }
        RemoteCommand::End { session: id } => {
            let token = session.access_token(&client, store).await?;
            let ended = client.end_remote(&token, id).await?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "session_id": ended.id, "state": ended.state, "end_reason": ended.end_reason })
                );
            } else {
                println!("session {} {}", ended.id, ended.state);
            }
            Ok(())
        }
    }
}

/// Adds (`mode`) or removes a device from this device's unattended-access list.
async fn unattended(
    cli: &Cli,
    store: &Store,
    client: &Client,
    session: &mut Session,
    device: &str,
    mode: Option<&String>,
) -> Result<()> {
    let token = session.access_token(client, store).await?;
    let all = client.devices(&token).await?;
    let d = pick(&all, device)?;
    let mut allowed = udc_agent::remote::Unattended::load(store)?;
    match mode {
        Some(m) => allowed.devices.insert(d.id.clone(), m.clone()),
        None => allowed.devices.remove(&d.id),
    };
    allowed.save(store)?;
    if cli.json {
        println!("{}", json!({ "allowed": allowed.devices }));
    } else {
        println!("unattended access: {:?}", allowed.devices);
    }
    Ok(())
}

async fn clipboard(cli: &Cli, store: &Store, command: &Option<ClipboardCommand>) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    match command {
        None => udc_agent::clipboard::run(&client, store, &mut session, cli.json).await,
        Some(ClipboardCommand::Prefs {
            send,
            receive,
            history,
        }) => {
            let token = session.access_token(&client, store).await?;
            let changes = json!({ "send": send, "receive": receive, "history_size": history });
            let any = send.is_some() || receive.is_some() || history.is_some();
            let prefs = client
                .clipboard_prefs(&token, any.then_some(&changes))
                .await?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "send": prefs.send, "receive": prefs.receive, "history_size": prefs.history_size })
                );
            } else {
                println!(
                    "send {}, receive {}, history {}",
                    if prefs.send { "on" } else { "off" },
                    if prefs.receive { "on" } else { "off" },
                    prefs.history_size
                );
            }
            Ok(())
        }
    }
}

fn signed_in(cli: &Cli, store: &Store) -> Result<(Client, Session)> {
    let session = store
        .load()?
        .ok_or_else(|| anyhow!("not signed in: run `udc-agent login --email you@example.com`"))?;
    let server = cli.server.clone().unwrap_or_else(|| session.server.clone());
    Ok((Client::new(&server), session))
}

/// A device by exact id, or by name (case-insensitive) when that is unambiguous.
fn pick<'a>(devices: &'a [Device], wanted: &str) -> Result<&'a Device> {
    if let Some(d) = devices.iter().find(|d| d.id == wanted) {
        return Ok(d);
    }
    let named: Vec<&Device> = devices
        .iter()
        .filter(|d| d.name.eq_ignore_ascii_case(wanted))
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => bail!("no device named or numbered {wanted:?}"),
        _ => bail!("several devices are named {wanted:?}: use its id"),
    }
}

fn print_devices(devices: &[Device], json_out: bool) {
    if json_out {
        println!("{}", json!({ "devices": devices }));
        return;
    }
    for d in devices {
        let marker = if d.is_current { "*" } else { " " };
        println!(
            "{marker} {:<36}  {:<24} {:<8} trusts {}",
            d.id,
            d.name,
            d.platform,
            d.trusts.len()
        );
    }
}

async fn devices(cli: &Cli, store: &Store, command: &Option<DevicesCommand>) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let token = session.access_token(&client, store).await?;
    let all = client.devices(&token).await?;
    let this = session
        .device_id
        .clone()
        .context("this session has no device")?;
    match command {
        None | Some(DevicesCommand::List) => print_devices(&all, cli.json),
        Some(DevicesCommand::Rename { device, name }) => {
            let d = pick(&all, device)?;
            let updated = client
                .update_device(&token, &d.id, &json!({ "name": name }))
                .await?;
            print_devices(std::slice::from_ref(&updated), cli.json);
        }
        Some(DevicesCommand::Remove { device }) => {
            let d = pick(&all, device)?;
            client.remove_device(&token, &d.id).await?;
            if d.id == this {
                store.clear()?;
            }
            if !cli.json {
                println!("Removed {} ({})", d.name, d.id);
            }
        }
        Some(DevicesCommand::Trust { device }) => {
            let d = pick(&all, device)?;
            client.trust(&token, &this, &d.id).await?;
            if !cli.json {
                println!("This device now trusts {} ({})", d.name, d.id);
            }
        }
        Some(DevicesCommand::Untrust { device }) => {
            let d = pick(&all, device)?;
            client.untrust(&token, &this, &d.id).await?;
            if !cli.json {
                println!("This device no longer trusts {} ({})", d.name, d.id);
            }
        }
    }
    Ok(())
}

/// Progress as JSON lines on stderr (`--json`), or a bar with bytes, rate and ETA.
fn reporter(json_out: bool) -> impl FnMut(Progress) {
    let bar = indicatif::ProgressBar::hidden();
    if !json_out {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
    }
    move |p: Progress| {
        if json_out {
            eprintln!("{}", json!(p));
            return;
        }
        match p {
            Progress::Hashing { size } => {
                bar.set_message("hashing");
                bar.set_length(size);
            }
            Progress::Uploading { size, .. } => {
                bar.set_message("sending");
                bar.set_length(size);
                bar.reset_eta();
            }
            Progress::Downloading {
                size, resumed_at, ..
            } => {
                bar.set_message("receiving");
                bar.set_length(size);
                bar.set_position(resumed_at);
                bar.reset_eta();
            }
            Progress::PartSent { bytes_done, .. } | Progress::Received { bytes_done, .. } => {
                bar.set_position(bytes_done)
            }
        }
    }
}

async fn send(cli: &Cli, store: &Store, args: &SendArgs) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let target = match &args.to {
        Some(wanted) => {
            let token = session.access_token(&client, store).await?;
            Some(pick(&client.devices(&token).await?, wanted)?.id.clone())
        }
        None => None,
    };
    let opts = SendOptions {
        target_device_id: target,
        mime: args.mime.clone(),
        parallel: args.parallel,
        limit_rate: args.limit_rate,
        part_size: None,
        state_dir: store.dir().to_owned(),
    };
    let mut tokens = SessionTokens {
        client: &client,
        session: &mut session,
        store,
    };
    let sent = transfer::send(
        &client,
        &mut tokens,
        &args.path,
        &opts,
        &mut reporter(cli.json),
    )
    .await?;
    if cli.json {
        println!("{}", json!(sent));
    } else if sent.deduplicated {
        println!(
            "Sent {} ({}): the account already had these bytes",
            sent.file.name, sent.file.id
        );
    } else {
        println!(
            "Sent {} ({}, {} bytes)",
            sent.file.name, sent.file.id, sent.file.size
        );
    }
    Ok(())
}

async fn receive(
    cli: &Cli,
    store: &Store,
    dir: &std::path::Path,
    only: Option<&str>,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_owned()],
        None => {
            let token = session.access_token(&client, store).await?;
            client
                .shared_files(&token)
                .await?
                .into_iter()
                .map(|f| f.id)
                .collect()
        }
    };
    let mut tokens = SessionTokens {
        client: &client,
        session: &mut session,
        store,
    };
    let mut received = Vec::new();
    let mut failed = Vec::new();
    let mut refused = store.refused_files();
    let mut skipped = Vec::new();
    for id in ids {
        // Bytes refused once would be the same bytes again: only `--file ID` tries once more.
        if only.is_none() && refused.contains(&id) {
            skipped.push(id);
            continue;
        }
        // One bad file (refused bytes, a store error) is reported and left on the server; the
        // rest still arrive.
        match transfer::receive(&client, &mut tokens, &id, dir, &mut reporter(cli.json)).await {
            Ok(r) => {
                if !cli.json {
                    println!(
                        "Received {} ({} bytes, SHA-256 verified)",
                        r.path.display(),
                        r.file.size
                    );
                }
                received.push(r);
            }
            Err(e) => {
                eprintln!("udc-agent: file {id} not received: {e:#}");
                failed.push(json!({ "file_id": id, "error": format!("{e:#}") }));
                if e.downcast_ref::<transfer::BytesRefused>().is_some() && !refused.contains(&id) {
                    refused.push(id);
                    store.save_refused_files(&refused)?;
                }
            }
        }
    }
    if cli.json {
        println!(
            "{}",
            json!({ "received": received, "failed": failed, "skipped": skipped })
        );
    } else {
        if received.is_empty() && failed.is_empty() && skipped.is_empty() {
            println!("Nothing is waiting for this device");
        }
        if !skipped.is_empty() {
            println!(
                "Skipped {} file(s) whose bytes were refused before ({}); `receive --file ID` tries one again",
                skipped.len(),
                skipped.join(", ")
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} files could not be received; they stay on the server",
            failed.len(),
            failed.len() + received.len()
        );
    }
    Ok(())
}

async fn files(cli: &Cli, store: &Store, command: &Option<FilesCommand>) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let token = session.access_token(&client, store).await?;
    let list = |files: Vec<udc_agent::files::FileInfo>| {
        if cli.json {
            println!("{}", json!({ "files": files }));
        } else {
            for f in files {
                println!("{:<36}  {:>12}  {:<9}  {}", f.id, f.size, f.state, f.name);
            }
        }
    };
    match command {
        None => list(client.files(&token, false).await?),
        Some(FilesCommand::List { deleted }) => list(client.files(&token, *deleted).await?),
        Some(FilesCommand::Delete { file }) => {
            client.delete_file(&token, file).await?;
            if !cli.json {
                println!("Deleted {file} (restorable for 30 days)");
            }
        }
        Some(FilesCommand::Restore { file }) => {
            list(vec![client.restore_file(&token, file).await?])
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let store = Store::from_env()?;
    match &cli.command {
        Command::Register(creds) => sign_in(&cli, &store, creds, true).await,
        Command::Login(creds) => sign_in(&cli, &store, creds, false).await,
        Command::Logout => {
            if let Ok((client, mut session)) = signed_in(&cli, &store) {
                // A session that already ended server-side is still cleared locally.
                if let Ok(token) = session.access_token(&client, &store).await {
                    let _ = client.logout(&token).await;
                }
            }
            store.clear()?;
            if !cli.json {
                println!("Signed out");
            }
            Ok(())
        }
        Command::Devices { command } => devices(&cli, &store, command).await,
        Command::Send(args) => send(&cli, &store, args).await,
        Command::Receive { dir, file } => receive(&cli, &store, dir, file.as_deref()).await,
        Command::Files { command } => files(&cli, &store, command).await,
        Command::Clipboard { command } => clipboard(&cli, &store, command).await,
        Command::Approve(args) => approve(&cli, &store, args).await,
        Command::Remote { command } => remote(&cli, &store, command).await,
        Command::Watch => {
            let (client, mut session) = signed_in(&cli, &store)?;
            udc_agent::watch::watch(&client, &store, &mut session, cli.json).await
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let json_out = cli.json;
    if let Err(e) = run(cli).await {
        if json_out {
            let code = e
                .downcast_ref::<udc_agent::Error>()
                .and_then(|e| e.code().map(str::to_owned))
                .unwrap_or_else(|| "agent_error".to_owned());
            eprintln!(
                "{}",
                json!({ "error": { "code": code, "message": e.to_string() } })
            );
        } else {
            eprintln!("udc-agent: {e:#}");
        }
        std::process::exit(1);
    }
}
