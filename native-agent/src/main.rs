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
    let password = read_password(creds.password_stdin)?;
    let (signed, keys): (SignedIn, DerivedKeys) = if create {
        client.register(&creds.email, &password).await?
    } else {
        client.login(&creds.email, &password).await?
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
        enc_key: B64.encode(keys.enc_key),
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
    for id in ids {
        let r = transfer::receive(&client, &mut tokens, &id, dir, &mut reporter(cli.json)).await?;
        if !cli.json {
            println!(
                "Received {} ({} bytes, SHA-256 verified)",
                r.path.display(),
                r.file.size
            );
        }
        received.push(r);
    }
    if cli.json {
        println!("{}", json!({ "received": received }));
    } else if received.is_empty() {
        println!("Nothing is waiting for this device");
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
