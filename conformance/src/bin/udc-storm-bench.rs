//! `udc-storm-bench --base-url URL [--devices N] [--posts-per-sec R] [--seconds S]`: one account
//! with N devices, each with an open socket that pings every 20 s as the agent does, while one
//! more device posts a clipboard item R times a second for S seconds. Prints how long the posts
//! took to answer, how long each item took to reach all N devices, how many deliveries never
//! arrived, and how many sockets the hub closed. Prints figures; asserts nothing.

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
    let (mut devices, mut rate, mut seconds) = (500usize, 20u32, 60u64);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("a value after each option");
        match a.as_str() {
            "--base-url" => base = Some(value()?),
            "--devices" => devices = value()?.parse()?,
            "--posts-per-sec" => rate = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let base = base.context("--base-url URL")?;
    let client = Client::new(&base).with_header("x-udc-test-client-ip", &unique_ip());
    let email = unique_email();
    let (_, keys) = client.register(&email, PASSWORD).await?;
    // Every device signs in with the key derived once: only the server's work is paid for.
    let login = json!({ "email": email, "auth_key": keys.auth_key_b64() });
    let device_token = || async {
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
        anyhow::Ok(device.tokens.access_token)
    };

    let set_up = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    for _ in 0..devices {
        let token = device_token().await?;
        let mut socket = Socket::connect(&base, &token, None).await?;
        loop {
            if let Incoming::Frame(HubFrame::Ready { .. }) = socket.next().await {
                break;
            }
        }
        let tx = tx.clone();
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
    drop(tx);
    let sender = device_token().await?;
    eprintln!(
        "udc-storm-bench: {devices} devices connected in {:.1} s",
        set_up.elapsed().as_secs_f64()
    );

    // The posts, on a fixed schedule: a slow answer does not slow the offered rate.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Instant, Duration)>();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let total = rate as u64 * seconds;
    let mut failed_posts = 0u64;
    let mut posts = Vec::new();
    for n in 0..total {
        tick.tick().await;
        let (client, sender, done_tx) = (client.clone(), sender.clone(), done_tx.clone());
        let key = keys.enc_key;
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
    let expected = started.len() * devices;
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
        "udc-storm-bench against {base}: {devices} devices, {rate} clipboard posts/s for {seconds} s"
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
