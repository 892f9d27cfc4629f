//! `clipboard`: the watcher that shares this desk's clipboard, and the account's preferences.

use anyhow::Result;
use serde_json::json;
use udc_agent::context::Context;
use udc_agent::Store;

use super::signed_in;
use crate::cli::*;

pub(crate) async fn clipboard(
    cli: &Cli,
    store: &Store,
    command: &Option<ClipboardCommand>,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    match command {
        None => {
            udc_agent::clipboard::run(Context {
                client: &client,
                store,
                session: &mut session,
                json: cli.json,
            })
            .await
        }
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
