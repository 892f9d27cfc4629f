//! `run` (the agent in the background, its output in the log with `--log`) and `autostart`.

use anyhow::Result;
use serde_json::json;
use udc_agent::context::Context;
use udc_agent::{autostart, log, Store};

use super::signed_in;
use crate::cli::Cli;

pub(crate) async fn run(cli: &Cli, store: &Store, to_log: bool) -> Result<()> {
    let logging = if to_log {
        Some(log::to_file(&log::path(store))?)
    } else {
        None
    };
    let ran = match signed_in(cli, store) {
        Ok((client, mut session)) => {
            udc_agent::background::run(Context {
                client: &client,
                store,
                session: &mut session,
                json: cli.json,
            })
            .await
        }
        Err(e) => Err(e),
    };
    if let Some(logging) = logging {
        // The last word goes to the log too, before the output is closed.
        if let Err(e) = &ran {
            eprintln!("udc-agent: {e:#}");
        }
        logging.finish();
    }
    ran
}

pub(crate) fn autostart(cli: &Cli, store: &Store, state: Option<bool>) -> Result<()> {
    match state {
        Some(true) => autostart::enable()?,
        Some(false) => {
            autostart::disable()?;
        }
        None => {}
    }
    let entry = autostart::current()?;
    let log = log::path(store);
    if cli.json {
        println!(
            "{}",
            json!({ "autostart": entry.is_some(), "entry": entry, "log": log })
        );
    } else {
        match entry {
            Some(entry) => println!("Starts at sign-in: {entry}"),
            None => println!("Does not start at sign-in (udc-agent autostart on)"),
        }
        println!("Its log: {}", log.display());
    }
    Ok(())
}
