//! `send`, `receive` and `files`: transfers with their progress, and the account's files.

use anyhow::{bail, Result};
use serde_json::json;
use udc_agent::transfer::{self, Progress, SendOptions, SessionTokens};
use udc_agent::Store;

use super::{pick, signed_in};
use crate::cli::*;

/// Progress as JSON lines on stderr (`--json`), or a bar with bytes, rate and ETA.
pub(crate) fn reporter(json_out: bool) -> impl FnMut(Progress) {
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

pub(crate) async fn send(cli: &Cli, store: &Store, args: &SendArgs) -> Result<()> {
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
        keys: session.file_keys()?,
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

pub(crate) async fn receive(
    cli: &Cli,
    store: &Store,
    dir: Option<&std::path::Path>,
    only: Option<&str>,
) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let dir = dir.map_or_else(
        udc_agent::store::downloads_dir,
        std::path::Path::to_path_buf,
    );
    let dir = dir.as_path();
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
    let keys = tokens.session.file_keys()?;
    let mut received = Vec::new();
    let mut failed = Vec::new();
    let mut refused = store.refused_files();
    let mut skipped = Vec::new();
    for id in ids {
        // Bytes refused once would be the same bytes again: only `--file ID` tries once more.
        if only.is_none() && refused.contains(&id) {
            skipped.push(id);
            continue;
        }
        // One bad file (refused bytes, a store error) is reported and left on the server; the
        // rest still arrive.
        match transfer::receive(
            &client,
            &mut tokens,
            &keys,
            &id,
            dir,
            &mut reporter(cli.json),
        )
        .await
        {
            Ok(r) => {
                if !cli.json {
                    let clear = if r.file.sealed.is_none() {
                        "; it was stored unencrypted (sent before udc sealed files)"
                    } else {
                        ""
                    };
                    println!(
                        "Received {} ({} bytes, SHA-256 verified{clear})",
                        r.path.display(),
                        r.file.size
                    );
                }
                received.push(r);
            }
            Err(e) => {
                eprintln!("udc-agent: file {id} not received: {e:#}");
                failed.push(json!({ "file_id": id, "error": format!("{e:#}") }));
                if e.downcast_ref::<transfer::BytesRefused>().is_some() && !refused.contains(&id) {
                    refused.push(id);
                    store.save_refused_files(&refused)?;
                }
            }
        }
    }
    if cli.json {
        println!(
            "{}",
            json!({ "received": received, "failed": failed, "skipped": skipped })
        );
    } else {
        if received.is_empty() && failed.is_empty() && skipped.is_empty() {
            println!("Nothing is waiting for this device");
        }
        if !skipped.is_empty() {
            println!(
                "Skipped {} file(s) whose bytes were refused before ({}); `receive --file ID` tries one again",
                skipped.len(),
                skipped.join(", ")
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} files could not be received; they stay on the server",
            failed.len(),
            failed.len() + received.len()
        );
    }
    Ok(())
}

pub(crate) async fn files(cli: &Cli, store: &Store, command: &Option<FilesCommand>) -> Result<()> {
    let (client, mut session) = signed_in(cli, store)?;
    let token = session.access_token(&client, store).await?;
    let keys = session.file_keys()?;
    let list = |files: Vec<udc_agent::files::FileInfo>| {
        let files: Vec<_> = files.into_iter().map(|f| f.opened(&keys)).collect();
        if cli.json {
            println!("{}", json!({ "files": files }));
        } else {
            for f in files {
                let clear = if f.sealed.is_none() {
                    "  (not encrypted)"
                } else {
                    ""
                };
                println!(
                    "{:<36}  {:>12}  {:<9}  {}{clear}",
                    f.id, f.size, f.state, f.name
                );
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
