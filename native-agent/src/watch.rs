//! `udc-agent watch`: stays connected to the account's hub, prints events, acknowledges them
//! and saves the cursor, so a restart resumes exactly where it stopped. Reconnects with
//! exponential backoff and jitter; stops for good when the hub says access was revoked.

use std::time::Duration;

use anyhow::{bail, Result};
use udc_hub::protocol::close;
use udc_hub::{ClientFrame, HubFrame};

use crate::client::Client;
use crate::context::Context;
use crate::realtime::{Incoming, Socket};
use crate::store::{Session, Store};

pub const PING_EVERY: Duration = Duration::from_secs(25);
const BACKOFF_MIN_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;

/// Full jitter: a random wait up to an exponentially growing cap.
pub fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_MIN_MS
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    let mut r = [0u8; 8];
    let random = getrandom::fill(&mut r)
        .map(|_| u64::from_le_bytes(r))
        .unwrap_or(cap / 2);
    Duration::from_millis(BACKOFF_MIN_MS.min(cap) / 2 + random % cap.max(1))
}

/// A file event as its owner reads it: the sealed description opened in place.
fn opened_file(data: &mut serde_json::Value, keys: &udc_client::file_seal::FileKeys) {
    let Some(file) = data
        .get("file")
        .and_then(|f| serde_json::from_value::<crate::files::FileInfo>(f.clone()).ok())
    else {
        return;
    };
    if let Ok(view) = serde_json::to_value(file.opened(keys)) {
        data["file"] = view;
    }
}

pub async fn watch(cx: Context<'_>) -> Result<()> {
    let Context {
        client,
        store,
        session,
        json,
    } = cx;
    let device_id = session.device()?;
    let keys = session.file_keys()?;
    let mut attempt = 0u32;
    loop {
        let cursor = store.cursor(&device_id);
        let mut socket = connect(client, store, session, cursor, &mut attempt).await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let closed = loop {
            tokio::select! {
                _ = ping.tick() => {
                    if socket.send(&ClientFrame::Ping).await.is_err() {
                        break None;
                    }
                }
                incoming = socket.next() => match incoming {
                    Incoming::Frame(HubFrame::Event(mut event)) => {
                        opened_file(&mut event.data, &keys);
                        if json {
                            println!("{}", serde_json::to_string(&event)?);
                        } else {
                            println!("#{} {} {}", event.seq, event.event, event.data);
                        }
                        store.save_cursor(&device_id, event.seq)?;
                        let _ = socket.send(&ClientFrame::Ack { seq: event.seq }).await;
                    }
                    Incoming::Frame(HubFrame::Ready { .. }) => attempt = 0,
                    Incoming::Frame(HubFrame::ResyncRequired { last_seq, .. }) => {
                        // Too far behind for a replay: the caller's state must be refetched.
                        eprintln!("udc-agent: missed more than the hub keeps; refetch state (continuing from #{last_seq})");
                        store.save_cursor(&device_id, last_seq)?;
                    }
                    Incoming::Frame(_) | Incoming::Unreadable(_) => {}
                    Incoming::Closed { code, reason } => break Some((code, reason)),
                },
            }
        };
        after_close(closed, &mut attempt).await?;
    }
}

/// Opens the device's socket (resuming after `resume_after`), retrying with backoff; a hub that
/// refuses the device is an error.
pub async fn connect(
    client: &Client,
    store: &Store,
    session: &mut Session,
    resume_after: Option<u64>,
    attempt: &mut u32,
) -> Result<Socket> {
    loop {
        let token = match session.access_token(client, store).await {
            Ok(token) => token,
            // Only the server refusing the session ends here. Unreachable (asleep, the network
            // not up yet at sign-in) or another agent's refresh stuck: try again, as below.
            Err(e)
                if e.downcast_ref::<crate::Error>()
                    .is_none_or(|e| e.code().is_none()) =>
            {
                let wait = backoff(*attempt);
                eprintln!("udc-agent: {e:#}; retrying in {:.1} s", wait.as_secs_f64());
                *attempt += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        match Socket::connect(client.base_url(), &token, resume_after).await {
            Ok(s) => return Ok(s),
            Err(e) if matches!(e.status(), Some(401 | 403)) => {
                bail!("the hub refused this device: {e}")
            }
            Err(e) => {
                let wait = backoff(*attempt);
                eprintln!("udc-agent: {e}; retrying in {:.1} s", wait.as_secs_f64());
                *attempt += 1;
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// After the socket closed: stop when the device's access was revoked, else wait to reconnect.
pub async fn after_close(closed: Option<(Option<u16>, String)>, attempt: &mut u32) -> Result<()> {
    match &closed {
        Some((Some(close::REVOKED), reason)) => {
            bail!("this device's access was revoked ({reason})")
        }
        // A server restarting says so: the next one is expected at once, whatever came before
        // (the first wait is still jittered, so its devices do not all arrive together).
        Some((Some(close::RESTARTING), _)) => *attempt = 0,
        _ => {}
    }
    let wait = backoff(*attempt);
    eprintln!(
        "udc-agent: disconnected ({closed:?}); reconnecting in {:.1} s",
        wait.as_secs_f64()
    );
    *attempt += 1;
    tokio::time::sleep(wait).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_and_is_jittered() {
        for attempt in 0..40 {
            let d = backoff(attempt).as_millis() as u64;
            assert!(
                d <= BACKOFF_MAX_MS + BACKOFF_MIN_MS,
                "attempt {attempt}: {d} ms"
            );
        }
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(10).as_millis()).collect();
        assert!(samples.len() > 1, "jitter: {samples:?}");
    }
}
