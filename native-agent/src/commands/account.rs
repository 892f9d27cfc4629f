//! Signing in (a new account, a password, or another device's approval) and answering another
//! device's sign-in request.

use std::io::BufRead;

use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::json;
use udc_agent::client::{PasswordKeys, SignedIn};
use udc_agent::recovery::RecoveryCode;
use udc_agent::seal::DeviceKeyPair;
use udc_agent::sync::{ApprovalState, PendingLogin};
use udc_agent::{Client, DeviceInfo, Session, Store};

use super::signed_in;
use crate::cli::*;

pub(crate) fn read_password(from_stdin: bool) -> Result<String> {
    read_password_as("Password: ", from_stdin)
}

/// A password from the terminal (asked with `prompt`), or the next line of standard input.
pub(crate) fn read_password_as(prompt: &str, from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(prompt)?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

pub(crate) async fn sign_in(
    cli: &Cli,
    store: &Store,
    creds: &Credentials,
    create: bool,
) -> Result<()> {
    sign_in_as(cli, store, creds, create, None).await
}

/// `recover`: the recovery code and a new password (twice on a terminal; with
/// `--password-stdin`, two lines: the code, then the password), then a sign-in with it.
pub(crate) async fn recover(cli: &Cli, store: &Store, creds: &Credentials) -> Result<()> {
    if creds.approve_with_device {
        bail!("recover sets a new password: leave out --approve-with-device");
    }
    let server = cli
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let typed = if creds.password_stdin {
        read_password_as("", true)?
    } else {
        eprint!("Recovery code (12 words): ");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    let code = RecoveryCode::parse(&typed)?;
    let new = read_password_as("New password: ", creds.password_stdin)?;
    if !creds.password_stdin && read_password_as("New password again: ", false)? != new {
        bail!("the new passwords differ: nothing was changed");
    }
    let next = Client::new(&server)
        .recover(&creds.email, &code, &new)
        .await?
        .words()?;
    if !cli.json {
        println!("The password is reset; every session of the account was signed out.");
    }
    sign_in_as(cli, store, creds, false, Some((new, Some(next)))).await
}

/// Signs in (or creates the account) with `given` password, else the one read as `creds` say;
/// a recovery code made on the way (`recover`) is shown with the result.
async fn sign_in_as(
    cli: &Cli,
    store: &Store,
    creds: &Credentials,
    create: bool,
    given: Option<(String, Option<String>)>,
) -> Result<()> {
    let (password, made) = given.unzip();
    let server = cli
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let client = Client::new(&server);
    let mut recovery = None;
    let (signed, enc_key): (SignedIn, [u8; 32]) = if creds.approve_with_device && !create {
        approved_sign_in(cli, &client, creds).await?
    } else {
        let password = match password {
            Some(p) => p,
            None => read_password(creds.password_stdin)?,
        };
        let (signed, keys): (SignedIn, PasswordKeys) = if create {
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
        recovery = keys.recovery;
        (signed, keys.account_key)
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
    let words = recovery.map(|r| r.words()).transpose()?.or(made.flatten());
    if cli.json {
        let mut out = json!({ "user": signed.user, "device": registered.device });
        if let Some(words) = &words {
            out["recovery_code"] = json!(words);
        }
        println!("{out}");
    } else {
        println!(
            "Signed in as {} on device \"{}\" ({})",
            signed.user.email, registered.device.name, registered.device.id
        );
        if let Some(words) = &words {
            print_recovery_code(words);
        }
    }
    Ok(())
}

/// The recovery code as the owner should keep it, with what it is for.
pub(crate) fn print_recovery_code(words: &str) {
    println!(
        "\nYour recovery code (write it down and keep it safe; it is not shown again):\n\n    {words}\n\n\
         With it you can set a new password if you forget yours (`udc-agent recover`). Without\n\
         it and without your password, nobody can open your account's data, not even the server."
    );
}

/// Asks for a sign-in, shows the phrase, and waits until a device of the account answers.
pub(crate) async fn approved_sign_in(
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

pub(crate) async fn approve(cli: &Cli, store: &Store, args: &ApproveArgs) -> Result<()> {
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
