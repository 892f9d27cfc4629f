//! One module per command group; what several share is here.

pub(crate) mod account;
pub(crate) mod background;
pub(crate) mod clipboard;
pub(crate) mod devices;
pub(crate) mod files;
pub(crate) mod remote;
pub(crate) mod sessions;

use anyhow::{anyhow, bail, Result};
use udc_agent::{Client, Device, Session, Store};

use crate::cli::Cli;

pub(crate) fn signed_in(cli: &Cli, store: &Store) -> Result<(Client, Session)> {
    let session = store
        .load()?
        .ok_or_else(|| anyhow!("not signed in: run `udc-agent login --email you@example.com`"))?;
    let server = cli.server.clone().unwrap_or_else(|| session.server.clone());
    Ok((Client::new(&server), session))
}

/// A device by exact id, or by name (case-insensitive) when that is unambiguous.
pub(crate) fn pick<'a>(devices: &'a [Device], wanted: &str) -> Result<&'a Device> {
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
