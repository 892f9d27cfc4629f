//! `udc-bench --base-url URL`: latency of an authenticated `GET /devices` against a bare
//! `GET /health` on the same host in the same run, and of a sign-in with the key already
//! derived (so only the server's share is timed); then every authenticated GET of the API that
//! needs no id of the caller's making, each against `/health` in turns. Prints figures; asserts
//! nothing.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use udc_agent::Client;
use udc_conformance::{device_info, ms, percentile, timed, unique_email, unique_ip, PASSWORD};

struct Stats {
    p50: Duration,
    p95: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        p50: percentile(&samples, 0.50),
        p95: percentile(&samples, 0.95),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut base = std::env::var("UDC_BASE_URL").ok();
    let mut rounds = 300usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--base-url" => base = args.next(),
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            other => anyhow::bail!("unknown argument {other}; use --base-url URL [--rounds N]"),
        }
    }
    let base = base.context("--base-url URL (or UDC_BASE_URL)")?;
    let client = Client::new(&base).with_header("x-udc-test-client-ip", &unique_ip());

    let email = unique_email();
    let (signed, keys) = client.register(&email, PASSWORD).await?;
    let device = client
        .register_device(&signed.tokens.access_token, &device_info("bench"))
        .await?;
    let token = device.tokens.access_token.clone();

    for _ in 0..20 {
        timed(&client, Method::GET, "/health", None, None).await?;
        timed(&client, Method::GET, "/devices", Some(&token), None).await?;
    }
    // Interleaved, so both routes see the same machine conditions.
    let (mut health, mut devices) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        health.push(timed(&client, Method::GET, "/health", None, None).await?);
        devices.push(timed(&client, Method::GET, "/devices", Some(&token), None).await?);
    }
    let login_body =
        serde_json::json!({ "email": email, "auth_key": keys.password.auth_key_b64() });
    let mut logins = Vec::new();
    for _ in 0..(rounds / 5).max(20) {
        logins.push(
            timed(
                &client,
                Method::POST,
                "/auth/login",
                None,
                Some(&login_body),
            )
            .await?,
        );
    }

    // Something for the clipboard's reads to answer with (sealed data is opaque to the server).
    let item = serde_json::json!({ "content_type": "text/plain", "size": 8, "ciphertext": "A".repeat(64) });
    timed(
        &client,
        Method::POST,
        "/sync/clipboard",
        Some(&token),
        Some(&item),
    )
    .await?;
    let own = format!("/devices/{}", device.device.id);
    let mut gets = Vec::new();
    for path in AUTHENTICATED_GETS.iter().copied().chain([own.as_str()]) {
        let (mut bare, mut read) = (Vec::new(), Vec::new());
        for _ in 0..(rounds / 3).max(20) {
            bare.push(timed(&client, Method::GET, "/health", None, None).await?);
            read.push(timed(&client, Method::GET, path, Some(&token), None).await?);
        }
        let (bare, read) = (stats(bare), stats(read));
        gets.push((path.to_owned(), ms(read.p50), ms(read.p50) / ms(bare.p50)));
    }

    let (h, d, l) = (stats(health), stats(devices), stats(logins));
    println!("udc-bench against {base} ({rounds} rounds, sequential, keep-alive)");
    println!(
        "  GET /health            p50 {:7.3} ms   p95 {:7.3} ms",
        ms(h.p50),
        ms(h.p95)
    );
    println!(
        "  GET /devices (auth)    p50 {:7.3} ms   p95 {:7.3} ms",
        ms(d.p50),
        ms(d.p95)
    );
    println!(
        "  ratio devices/health   p50 {:7.2}      p95 {:7.2}      (target <= 1.3)",
        ms(d.p50) / ms(h.p50),
        ms(d.p95) / ms(h.p95)
    );
    println!("  POST /auth/login       p50 {:7.3} ms   p95 {:7.3} ms   (key pre-derived: server share only)", ms(l.p50), ms(l.p95));
    println!(
        "  login server time ~    p50 {:7.3} ms   (login p50 - health p50; target <= 5 ms)",
        ms(l.p50.saturating_sub(h.p50))
    );
    println!("  every authenticated GET, p50 against /health's in the same turns (target <= 1.5):");
    for (path, p50, ratio) in &gets {
        println!("    {path:34} p50 {p50:7.3} ms   ratio {ratio:5.2}");
    }
    if let Some((path, _, ratio)) = gets.iter().max_by(|a, b| a.2.total_cmp(&b.2)) {
        println!("  highest ratio            {ratio:7.2}      ({path})");
    }
    Ok(())
}

/// The API's authenticated GETs that need no id (the device's own is added): each answers 2xx
/// to a device of a new account with one clipboard item.
const AUTHENTICATED_GETS: &[&str] = &[
    "/account",
    "/account/passkeys",
    "/account/activity",
    "/account/sessions",
    "/devices",
    "/events?after=0",
    "/files",
    "/files/shared",
    "/auth/approval/pending",
    "/sync/clipboard/latest",
    "/sync/clipboard/history",
    "/sync/clipboard/preferences",
    "/sync/settings",
    "/sync/settings/policies",
    "/sync/settings/conflicts",
    "/sync/settings/resolutions",
    "/sync/handoff",
    "/remote/sessions",
    "/remote/ice-servers",
];
