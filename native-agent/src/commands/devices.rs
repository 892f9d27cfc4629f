//! `devices`: the account's devices — list, rename, trust, remove.

use anyhow::Result;
use serde_json::json;
use udc_agent::{Device, Store};

use super::{pick, signed_in};
use crate::cli::*;

pub(crate) fn print_devices(devices: &[Device], json_out: bool) {
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

pub(crate) async fn devices(
    cli: &Cli,
    store: &Store,
    command: &Option<DevicesCommand>,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let token = session.access_token(&client, store).await?;
    let all = client.devices(&token).await?;
    let this = session.device()?;
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
