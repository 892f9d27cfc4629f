//! `account sessions`: where the account is signed in, and signing sessions out; `account
//! activity`; `account password`, `account recovery-code`; `account delete`.

use std::io::{BufRead, IsTerminal};

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use udc_agent::client::AccountSession;
use udc_agent::Store;

use super::account::{print_recovery_code, read_password, read_password_as};
use super::signed_in;
use crate::cli::*;

fn print_sessions(sessions: &[AccountSession], json_out: bool) {
    if json_out {
        println!("{}", json!({ "sessions": sessions }));
        return;
    }
    for s in sessions {
        let marker = if s.is_current { "*" } else { " " };
        let device = s.device_name.as_deref().unwrap_or("(no device)");
        println!(
            "{marker} {:<36}  {:<20} {:<28} {:<15} last used {}",
            s.id,
            device,
            s.client.as_deref().unwrap_or("-"),
            s.client_ip.as_deref().unwrap_or("-"),
            s.last_used_at
        );
    }
}

pub(crate) async fn sessions(
    cli: &Cli,
    store: &Store,
    command: &Option<SessionsCommand>,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let token = session.access_token(&client, store).await?;
    match command {
        None | Some(SessionsCommand::List) => {
            print_sessions(&client.account_sessions(&token).await?, cli.json)
        }
        Some(SessionsCommand::End { session: id }) => {
            let all = client.account_sessions(&token).await?;
            let this = all
                .iter()
                .find(|s| s.id == *id)
                .ok_or_else(|| anyhow!("no session {id:?} of this account can still be used"))?;
            client.end_account_session(&token, id).await?;
            if this.is_current {
                store.clear()?;
            }
            if cli.json {
                println!("{}", json!({ "ended": id }));
            } else {
                println!("Signed out session {id}");
            }
        }
        Some(SessionsCommand::EndOthers) => {
            let ended = client.end_other_sessions(&token).await?;
            if cli.json {
                println!("{}", json!({ "ended": ended }));
            } else {
                println!("Signed out {ended} other session(s)");
            }
        }
    }
    Ok(())
}

/// `account activity`: what happened to the account, newest first.
pub(crate) async fn activity(cli: &Cli, store: &Store, limit: u32) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let token = session.access_token(&client, store).await?;
    let entries = client.account_activity(&token, limit).await?;
    if cli.json {
        println!("{}", json!({ "activity": entries }));
        return Ok(());
    }
    for e in &entries {
        let by = e.device_name.as_deref().unwrap_or("(no device)");
        let on = e
            .target_device_name
            .as_deref()
            .map(|n| format!(" -> {n}"))
            .unwrap_or_default();
        println!(
            "{}  {:<22} {by}{on}  {} {}",
            e.at,
            e.kind,
            e.client_ip.as_deref().unwrap_or("-"),
            e.client.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `account password`: a new password for the account. The account key stays what it is (this
/// device keeps it), so nothing sealed changes; the other sessions end.
pub(crate) async fn change_password(cli: &Cli, store: &Store, password_stdin: bool) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let account_key = udc_agent::seal::account_key(&session.enc_key)?;
    let current = read_password_as("Current password: ", password_stdin)?;
    let new = read_password_as("New password: ", password_stdin)?;
    if !password_stdin && read_password_as("New password again: ", false)? != new {
        bail!("the new passwords differ: nothing was changed");
    }
    if new == current {
        bail!("the new password is the current one: nothing was changed");
    }
    let token = session.access_token(&client, store).await?;
    let (ended, code) = client
        .change_password(&token, &session.email, (&current, &new), &account_key)
        .await?;
    let words = code.words()?;
    if cli.json {
        println!(
            "{}",
            json!({ "changed": true, "ended": ended, "recovery_code": words })
        );
    } else {
        println!(
            "The password of {} is changed; {ended} other session(s) signed out. \
             Sign in again on those devices with the new password.",
            session.email
        );
        print_recovery_code(&words);
    }
    Ok(())
}

/// `account recovery-code`: a new recovery code, with the password; the last one stops working.
pub(crate) async fn new_recovery_code(
    cli: &Cli,
    store: &Store,
    password_stdin: bool,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let account_key = udc_agent::seal::account_key(&session.enc_key)?;
    let password = read_password(password_stdin)?;
    let token = session.access_token(&client, store).await?;
    let words = client
        .new_recovery_code(&token, &session.email, &password, &account_key)
        .await?
        .words()?;
    if cli.json {
        println!("{}", json!({ "recovery_code": words }));
    } else {
        print_recovery_code(&words);
    }
    Ok(())
}

/// `account delete`: with the password, the account and everything in it, on every device.
pub(crate) async fn delete(
    cli: &Cli,
    store: &Store,
    password_stdin: bool,
    yes: bool,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    if !yes {
        if !std::io::stdin().is_terminal() || password_stdin {
            bail!("deleting the account cannot be undone: pass --yes to confirm");
        }
        eprint!(
            "Delete the account {} with every device's files, clipboard and settings? \
             This cannot be undone. [y/N] ",
            session.email
        );
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            bail!("nothing was deleted");
        }
    }
    let password = read_password(password_stdin)?;
    let token = session.access_token(&client, store).await?;
    let remaining = client
        .delete_account(&token, &session.email, &password)
        .await?;
    store.clear()?;
    match (cli.json, remaining) {
        (true, remaining) => println!("{}", json!({ "deleted": true, "remaining": remaining })),
        (false, None) => println!(
            "The account {} is deleted, and everything in it erased",
            session.email
        ),
        (false, Some(r)) => println!(
            "The account {} is deleted; the server will finish erasing {r}",
            session.email
        ),
    }
    Ok(())
}
