//! Requests per second with the load spread over many accounts, and the first request after a
//! start (cold) against the next ones (warm). Prints figures; asserts nothing.
//!
//! `udc-accounts-bench --accounts 1,10,100 [--clients 32] [--seconds 10] [--save FILE]` makes
//! as many accounts as the largest number (a device each), then for each number runs the
//! clients in a closed loop of authenticated `GET /devices` spread over that many accounts: on
//! Workers, over that many Durable Objects; first the same load on `/health`, the host's own
//! ceiling in this harness. `--save` keeps the devices' tokens for
//! `udc-accounts-bench --cold FILE`, run first after the host restarted on the same state: each
//! saved account's first `GET /devices` (on Workers, its object woken and its storage opened),
//! against the same requests once warm.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::Method;
use tokio::task::JoinSet;
use udc_agent::Client;
use udc_conformance::{device_info, ms, percentile, timed, unique_email, unique_ip, PASSWORD};

/// Accounts made at once (each derives its password's key first).
const MAKING_AT_ONCE: usize = 4;

/// Saved accounts timed cold.
const COLD_ACCOUNTS: usize = 10;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let base = std::env::var("UDC_BASE_URL").context("UDC_BASE_URL")?;
    let (mut counts, mut clients, mut seconds) = (vec![1, 10, 100], 32usize, 10u64);
    let (mut save, mut cold) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--accounts" => {
                counts = args
                    .next()
                    .context("--accounts N,N,...")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--clients" => clients = args.next().context("--clients N")?.parse()?,
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--save" => save = args.next(),
            "--cold" => cold = args.next(),
            other => anyhow::bail!(
                "unknown argument {other}; use --accounts N,N,... [--clients N] [--seconds N] [--save FILE] | --cold FILE"
            ),
        }
    }
    if let Some(file) = cold {
        let tokens: Vec<String> = serde_json::from_slice(&std::fs::read(file)?)?;
        return first_and_next(&base, &tokens).await;
    }

    let most = counts
        .iter()
        .copied()
        .max()
        .context("--accounts: at least one number")?;
    let tokens = make_accounts(&base, most).await?;
    println!(
        "udc-accounts-bench against {base}: authenticated GET /devices, {clients} clients in a closed loop, {seconds} s each"
    );
    // The host's own ceiling in this harness: the same load on a route that reads nothing.
    let (rate, samples) = load(&base, "/health", &[None], clients, seconds).await?;
    println!(
        "  GET /health    {rate:8.0} req/s   p50 {:7.2} ms   p99 {:7.2} ms",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99))
    );
    let tokens: Vec<Option<String>> = tokens.into_iter().map(Some).collect();
    for &n in &counts {
        let (rate, samples) = load(&base, "/devices", &tokens[..n], clients, seconds).await?;
        println!(
            "  {n:4} accounts   {rate:8.0} req/s   p50 {:7.2} ms   p99 {:7.2} ms",
            ms(percentile(&samples, 0.50)),
            ms(percentile(&samples, 0.99))
        );
    }
    if let Some(file) = save {
        let tokens: Vec<&String> = tokens.iter().flatten().collect();
        std::fs::write(file, serde_json::to_vec(&tokens)?)?;
    }
    Ok(())
}

/// `n` new accounts with a device each: the devices' access tokens.
async fn make_accounts(base: &str, n: usize) -> Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(n);
    let mut making = JoinSet::new();
    for i in 0..n {
        if making.len() == MAKING_AT_ONCE {
            tokens.push(making.join_next().await.context("a sign-up")???);
        }
        let base = base.to_owned();
        making.spawn(async move {
            let client = Client::new(&base).with_header("x-udc-test-client-ip", &unique_ip());
            let (signed, _) = client.register(&unique_email(), PASSWORD).await?;
            let device = client
                .register_device(
                    &signed.tokens.access_token,
                    &device_info(&format!("bench {i}")),
                )
                .await?;
            anyhow::Ok(device.tokens.access_token)
        });
    }
    while let Some(made) = making.join_next().await {
        tokens.push(made??);
    }
    Ok(tokens)
}

/// `clients` closed loops of `GET path` for `seconds`, each request with the next of the
/// tokens (client `i` starts at token `i`): requests per second and every answer's time.
async fn load(
    base: &str,
    path: &'static str,
    tokens: &[Option<String>],
    clients: usize,
    seconds: u64,
) -> Result<(f64, Vec<Duration>)> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut loops = JoinSet::new();
    for i in 0..clients {
        let client = Client::new(base).with_header("x-udc-test-client-ip", &unique_ip());
        let tokens = tokens.to_vec();
        loops.spawn(async move {
            let mut samples = Vec::new();
            let mut next = i;
            while Instant::now() < deadline {
                let token = tokens[next % tokens.len()].as_deref();
                next += clients;
                samples.push(timed(&client, Method::GET, path, token, None).await?);
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = loops.join_next().await {
        samples.extend(done??);
    }
    let rate = samples.len() as f64 / start.elapsed().as_secs_f64();
    samples.sort();
    Ok((rate, samples))
}

/// Each account's first `GET /devices` after a start, against the same requests again (five
/// each), and `/health` beside them. (The host's own first answer is not timed here: the start
/// waits for `/health` to answer.)
async fn first_and_next(base: &str, tokens: &[String]) -> Result<()> {
    let client = Client::new(base).with_header("x-udc-test-client-ip", &unique_ip());
    let mut health = Vec::new();
    for _ in 0..5 {
        health.push(timed(&client, Method::GET, "/health", None, None).await?);
    }
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for token in tokens.iter().take(COLD_ACCOUNTS) {
        cold.push(timed(&client, Method::GET, "/devices", Some(token), None).await?);
        for _ in 0..5 {
            warm.push(timed(&client, Method::GET, "/devices", Some(token), None).await?);
        }
    }
    health.sort();
    cold.sort();
    warm.sort();
    println!("udc-accounts-bench against {base}, right after a start: cold (first) against warm");
    println!(
        "  GET /health                                                            p50 {:7.2} ms",
        ms(percentile(&health, 0.5))
    );
    println!(
        "  GET /devices, {:2} accounts' first    p50 {:8.2} ms   max {:7.2} ms   then p50 {:7.2} ms",
        cold.len(),
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 1.0)),
        ms(percentile(&warm, 0.5))
    );
    Ok(())
}
