//! `udc-agent`: what device owners run. Sign in, register this device, manage the account's
//! devices, send and receive files. `--json` prints machine-readable output for scripts.
//! `cli` defines the commands; `commands` runs them, one module per group.

mod cli;
mod commands;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use udc_agent::context::Context;
use udc_agent::Store;

use cli::{AccountCommand, Cli, Command};
use commands::account::{approve, recover, sign_in};
use commands::background::{autostart, run as run_in_background};
use commands::clipboard::clipboard;
use commands::devices::devices;
use commands::files::{files, receive, send};
use commands::remote::remote;
use commands::sessions::{activity, change_password, delete, new_recovery_code, sessions};
use commands::signed_in;

async fn run(cli: Cli) -> Result<()> {
    let store = Store::from_env()?;
    match &cli.command {
        Command::Register(creds) => sign_in(&cli, &store, creds, true).await,
        Command::Login(creds) => sign_in(&cli, &store, creds, false).await,
        Command::Recover(creds) => recover(&cli, &store, creds).await,
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
        Command::Account { command } => match command {
            AccountCommand::Sessions { command } => sessions(&cli, &store, command).await,
            AccountCommand::Activity { limit } => activity(&cli, &store, *limit).await,
            AccountCommand::Password { password_stdin } => {
                change_password(&cli, &store, *password_stdin).await
            }
            AccountCommand::RecoveryCode { password_stdin } => {
                new_recovery_code(&cli, &store, *password_stdin).await
            }
            AccountCommand::Delete {
                password_stdin,
                yes,
            } => delete(&cli, &store, *password_stdin, *yes).await,
        },
        Command::Devices { command } => devices(&cli, &store, command).await,
        Command::Send(args) => send(&cli, &store, args).await,
        Command::Receive { dir, file } => {
            receive(&cli, &store, dir.as_deref(), file.as_deref()).await
        }
        Command::Files { command } => files(&cli, &store, command).await,
        Command::Clipboard { command } => clipboard(&cli, &store, command).await,
        Command::Approve(args) => approve(&cli, &store, args).await,
        Command::Remote { command } => remote(&cli, &store, command).await,
        Command::Run { log } => run_in_background(&cli, &store, *log).await,
        Command::Autostart { state } => autostart(&cli, &store, *state),
        Command::Watch => {
            let (client, mut session) = signed_in(&cli, &store)?;
            udc_agent::watch::watch(Context {
                client: &client,
                store: &store,
                session: &mut session,
                json: cli.json,
            })
            .await
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
                json!({ "error": { "code": code, "message": format!("{e:#}") } })
            );
        } else {
            eprintln!("udc-agent: {e:#}");
        }
        std::process::exit(1);
    }
}
