//! `udc-agent run`: what a desk offers the account's other devices, in one process that runs
//! until stopped — its clipboard shared (as `clipboard`) and remote control requests answered
//! (as `remote serve`). This is what `autostart` starts at sign-in. Either part stopping (no
//! clipboard here, say) is said and leaves the other running.

use anyhow::{anyhow, Result};
use serde_json::json;

use crate::context::Context;

pub async fn run(cx: Context<'_>) -> Result<()> {
    let Context {
        client,
        store,
        session,
        json,
    } = cx;
    let device = session.device()?;
    let pid = std::process::id();
    if json {
        println!(
            "{}",
            json!({ "running": true, "pid": pid, "device_id": device })
        );
    } else {
        println!(
            "udc-agent {} running (process {pid}): sharing the clipboard and answering remote \
             control requests",
            env!("CARGO_PKG_VERSION")
        );
    }
    // Each part keeps its own copy of the session: when its token is refreshed, the other takes
    // the new pair from the store (Session::access_token).
    let mut own = session.clone();
    let said = |part: &'static str| {
        move |r: Result<()>| {
            if let Err(e) = &r {
                eprintln!("udc-agent: {part} stopped: {e:#}");
            }
            r
        }
    };
    let clipboard = async {
        said("sharing the clipboard")(
            crate::clipboard::run(Context {
                client,
                store,
                session: &mut own,
                json,
            })
            .await,
        )
    };
    let serving = async {
        said("answering remote control requests")(
            crate::remote::serve(Context {
                client,
                store,
                session,
                json,
            })
            .await,
        )
    };
    match tokio::join!(clipboard, serving) {
        (Err(c), Err(s)) => Err(anyhow!("nothing left to run: {c:#}; {s:#}")),
        _ => Ok(()),
    }
}
