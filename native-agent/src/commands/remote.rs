//! `remote`: serving this screen, requesting another, and the unattended setting.

use anyhow::Result;
use serde_json::json;
use udc_agent::context::Context;
use udc_agent::{Client, Session, Store};

use super::{pick, signed_in};
use crate::cli::*;

pub(crate) async fn remote(cli: &Cli, store: &Store, command: &RemoteCommand) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    match command {
        RemoteCommand::Serve => {
            udc_agent::remote::serve(Context {
                client: &client,
                store,
                session: &mut session,
                json: cli.json,
            })
            .await
        }
        RemoteCommand::View {
            device,
            control,
            snapshot,
            no_window,
            max_duration,
            screen,
        } => {
            let opts = udc_agent::view::ViewOptions {
                device: device.clone(),
                control: *control,
                // On a desktop, unless told otherwise or saving a picture for a script.
                window: !no_window && snapshot.is_none() && has_desktop(),
                snapshot: snapshot.clone(),
                max_duration: *max_duration,
                screen: screen.clone(),
            };
            udc_agent::view::view(
                Context {
                    client: &client,
                    store,
                    session: &mut session,
                    json: cli.json,
                },
                &opts,
            )
            .await
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
pub(crate) async fn unattended(
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

/// Whether windows can be opened here: a display server on Linux, always on Windows and macOS.
fn has_desktop() -> bool {
    !cfg!(target_os = "linux") || std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
}
