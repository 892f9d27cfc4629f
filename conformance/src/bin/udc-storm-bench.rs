//! `udc-storm-bench --base-url URL [--accounts A] [--devices N] [--posts-per-sec R] [--seconds S]`:
//! A accounts of N devices each, every device with an open socket that pings every 20 s as the
//! agent does, while each account posts R clipboard items a second for S seconds, its devices
//! taking turns, each item for the account's other N - 1 devices. Prints how long the posts took
//! to answer, how long each item took to reach each receiver, how many deliveries never arrived,
//! and how many sockets the hub closed. Prints figures; asserts nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::json;
use tokio::sync::mpsc;
use udc_agent::realtime::{Incoming, Socket};
use udc_agent::Client;
use udc_conformance::{device_info, ms, percentile, unique_email, unique_ip, PASSWORD};
use udc_hub::{ClientFrame, HubFrame};

/// What a device's socket task reports.
enum Seen {
    Item(String, Instant),
    Closed(Option<u16>),
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut base = std::env::var("UDC_BASE_URL").ok();
    let (mut accounts, mut devices, mut rate, mut seconds) = (1usize, 501usize, 20u32, 60u64);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("a value after each option");
        match a.as_str() {
            "--base-url" => base = Some(value()?),
            "--accounts" => accounts = value()?.parse()?,
            "--devices" => devices = value()?.parse()?,
            "--posts-per-sec" => rate = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let base = base.context("--base-url URL")?;
    anyhow::ensure!(
        devices >= 2,
        "--devices: at least 2 (one posts, the others receive)"
    );
    let set_up = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let mut members = Vec::with_capacity(accounts);
    for _ in 0..accounts {
        members.push(account(&base, devices, &tx).await?);
    }
    drop(tx);
    eprintln!(
        "udc-storm-bench: {accounts} account(s) of {devices} connected devices in {:.1} s",
        set_up.elapsed().as_secs_f64()
    );

    // The posts, on a fixed schedule: a slow answer does not slow the offered rate.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Instant, Duration)>();
    let per_second = rate * accounts as u32;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    let total = per_second as u64 * seconds;
    let mut failed_posts = 0u64;
    let mut posts = Vec::new();
    for n in 0..total {
        tick.tick().await;
        // Accounts in turn, and within an account its devices in turn.
        let member = &members[n as usize % accounts];
        let sender = member.tokens[(n as usize / accounts) % devices].clone();
        let (client, done_tx, key) = (member.client.clone(), done_tx.clone(), member.account_key);
        posts.push(tokio::spawn(async move {
            let start = Instant::now();
            let text = format!("storm {n}");
            let posted = client
                .post_clipboard(&sender, &key, "text/plain", text.as_bytes())
                .await;
            match posted {
                Ok(item) => done_tx.send((item.id, start, start.elapsed())).is_ok(),
                Err(_) => false,
            }
        }));
    }
    for post in posts {
        if !post.await.unwrap_or(false) {
            failed_posts += 1;
        }
    }
    drop(done_tx);
    let mut started = HashMap::new();
    let mut answered = Vec::new();
    while let Some((id, start, took)) = done_rx.recv().await {
        started.insert(id, start);
        answered.push(took);
    }

    // Deliveries still in flight get a few seconds; then what has not arrived is dropped.
    let expected = started.len() * (devices - 1);
    let (mut reached, mut closed) = (Vec::with_capacity(expected), Vec::new());
    let mut arrivals = Vec::new();
    while arrivals.len() < expected {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Seen::Item(id, at))) => arrivals.push((id, at)),
            Ok(Some(Seen::Closed(code))) => closed.push(code),
            Ok(None) | Err(_) => break,
        }
    }
    for (id, at) in &arrivals {
        if let Some(start) = started.get(id) {
            reached.push(at.duration_since(*start));
        }
    }
    answered.sort();
    reached.sort();
    println!(
        "udc-storm-bench against {base}: {accounts} account(s) x {devices} devices, {rate} clipboard posts/s per account for {seconds} s"
    );
    println!(
        "  post answered      p50 {:7.2} ms   p99 {:7.2} ms   ({} posts, {failed_posts} failed; target p99 <= 50 ms)",
        ms(percentile(&answered, 0.5)),
        ms(percentile(&answered, 0.99)),
        answered.len()
    );
    println!(
        "  item received      p50 {:7.2} ms   p99 {:7.2} ms   ({} of {expected} deliveries, {} dropped; target p99 <= 200 ms, none dropped)",
        ms(percentile(&reached, 0.5)),
        ms(percentile(&reached, 0.99)),
        reached.len(),
        expected - reached.len()
    );
    println!("  sockets closed by the hub: {} {:?}", closed.len(), closed);
    Ok(())
}

/// One account's client, key and the access tokens of its devices.
struct Member {
    client: Client,
    account_key: [u8; 32],
    tokens: Vec<String>,
}

/// A new account with `devices` devices, each with an open socket reporting to `tx`.
async fn account(base: &str, devices: usize, tx: &mpsc::UnboundedSender<Seen>) -> Result<Member> {
    let client = Client::new(base).with_header("x-udc-test-client-ip", &unique_ip());
    let email = unique_email();
    let (_, keys) = client.register(&email, PASSWORD).await?;
    // Every device signs in with the key derived once: only the server's work is paid for.
    let login = json!({ "email": email, "auth_key": keys.password.auth_key_b64() });
    let mut tokens = Vec::with_capacity(devices);
    for _ in 0..devices {
        let signed = client
            .raw(Method::POST, "/auth/login", None, Some(&login), &[])
            .await?;
        let token = signed.body["tokens"]["access_token"]
            .as_str()
            .context("login answered no token")?
            .to_owned();
        let device = client
            .register_device(&token, &device_info("storm"))
            .await?;
        let token = device.tokens.access_token;
        listen(Socket::connect(base, &token, None).await?, tx.clone()).await;
        tokens.push(token);
    }
    Ok(Member {
        client,
        account_key: keys.account_key,
        tokens,
    })
}

/// Waits for the socket to be ready, then reports each clipboard item it receives.
async fn listen(mut socket: Socket, tx: mpsc::UnboundedSender<Seen>) {
    loop {
        if let Incoming::Frame(HubFrame::Ready { .. }) = socket.next().await {
            break;
        }
    }
    tokio::spawn(async move {
        let mut ping = tokio::time::interval(Duration::from_secs(20));
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    let _ = socket.send(&ClientFrame::Ping).await;
                }
                incoming = socket.next() => match incoming {
                    Incoming::Frame(HubFrame::Event(e)) if e.event == "clipboard.sync" => {
                        let id = e.data["item"]["id"].as_str().unwrap_or_default().to_owned();
                        let _ = tx.send(Seen::Item(id, Instant::now()));
                    }
                    Incoming::Closed { code, .. } => {
                        let _ = tx.send(Seen::Closed(code));
                        break;
                    }
                    _ => {}
                }
            }
        }
    });
}
