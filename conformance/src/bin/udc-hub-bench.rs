//! `udc-hub-bench --base-url URL [--sockets N] [--server-pid PID]`: the realtime hub's figures.
//! - fan-out: from the API call that publishes (a device rename) to receipt on each of N open
//!   sockets of one account, p50/p99 over several rounds;
//! - throughput: renames published back to back, until the last reaches a listener;
//! - with `--server-pid` (udc-server): resident memory per idle connection.
//!
//! Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::mpsc;
use udc_agent::realtime::{Incoming, Socket};
use udc_agent::Client;
use udc_conformance::{device_info, ms, percentile, unique_email, unique_ip, PASSWORD};
use udc_hub::HubFrame;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut base, mut sockets, mut pid) =
        (std::env::var("UDC_BASE_URL").ok(), 100usize, None::<u32>);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--base-url" => base = args.next(),
            "--sockets" => sockets = args.next().context("--sockets N")?.parse()?,
            "--server-pid" => pid = Some(args.next().context("--server-pid PID")?.parse()?),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let base = base.context("--base-url URL")?;
    let client = Client::new(&base).with_header("x-udc-test-client-ip", &unique_ip());
    let email = unique_email();
    let (signed, _) = client.register(&email, PASSWORD).await?;
    let listener = client
        .register_device(&signed.tokens.access_token, &device_info("listener"))
        .await?;
    let (signed, _) = client.login(&email, PASSWORD).await?;
    let publisher = client
        .register_device(&signed.tokens.access_token, &device_info("publisher"))
        .await?;
    let token = publisher.tokens.access_token.clone();
    let target = publisher.device.id.clone();

    let before = pid.and_then(rss_kib);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    for i in 0..sockets {
        let mut socket = Socket::connect(&base, &listener.tokens.access_token, None).await?;
        loop {
            if let Incoming::Frame(HubFrame::Ready { .. }) = socket.next().await {
                break;
            }
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match socket.next().await {
                    Incoming::Frame(HubFrame::Event(e))
                        if e.event == "device.updated"
                            && tx.send((i, e.seq, Instant::now())).is_err() =>
                    {
                        break
                    }
                    Incoming::Closed { .. } => break,
                    _ => {}
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = pid.and_then(rss_kib);

    // Fan-out rounds.
    let rounds = 20;
    let mut latencies = Vec::with_capacity(rounds * sockets);
    for r in 0..rounds {
        let start = Instant::now();
        client
            .update_device(&token, &target, &json!({ "name": format!("round {r}") }))
            .await?;
        let mut got = 0;
        while got < sockets {
            let (_, _, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await?
                .context("listeners ended")?;
            latencies.push(at - start);
            got += 1;
        }
    }
    latencies.sort();

    // Throughput: back-to-back publishes, until every listener has the last one.
    let burst = 300;
    let start = Instant::now();
    for n in 0..burst {
        client
            .update_device(&token, &target, &json!({ "name": format!("burst {n}") }))
            .await?;
    }
    let mut got = 0;
    while got < burst * sockets {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .context("listeners ended")?;
        got += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();

    println!("udc-hub-bench against {base}: {sockets} sockets of one account");
    println!(
        "  fan-out (API call -> receipt)  p50 {:7.2} ms   p99 {:7.2} ms   ({} samples; target p99 <= 50 ms at 1000)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        latencies.len()
    );
    println!(
        "  throughput  {:.0} events/s published and fanned out to every socket ({:.0} deliveries/s)",
        burst as f64 / elapsed,
        (burst * sockets) as f64 / elapsed
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "  udc-server memory per idle connection: {:.1} KB (RSS {} -> {} KiB; target <= 16 KB)",
            (a.saturating_sub(b)) as f64 * 1.024 / sockets as f64,
            b,
            a
        );
    }
    Ok(())
}
