//! Operating udc-server, against servers of the test's own (`udc_conformance::own_server`;
//! scripts/test.sh runs this binary with the faults): its log, one JSON line per request with
//! no secret in it; `backup` taken while it takes writes and `restore` into a fresh data
//! directory; and stopping it with SIGTERM without losing anyone's work.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use udc_conformance::own_server::*;
use udc_conformance::*;

#[tokio::test]
async fn each_request_is_one_json_line_with_its_route_template_and_no_secret() {
    let dir = temp_dir();
    let (port, data) = (free_port(), dir.join("server"));
    let _server = start_server(&data, port, None).await;
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let seen = account
        .api
        .raw(
            Method::GET,
            &format!("/devices/{}", phone.id),
            Some(phone.token()),
            None,
            &[("x-request-id", "log-check-1")],
        )
        .await
        .unwrap();
    assert_eq!(seen.status, 200, "{}", seen.body);
    // A token where no token belongs: in the query of a path no route has.
    let secret = "dont-log-this-0123456789";
    let stray = account
        .api
        .raw(
            Method::POST,
            &format!("/devices/{}/nothing?token={secret}", phone.id),
            Some(phone.token()),
            None,
            &[("x-request-id", "log-check-2")],
        )
        .await
        .unwrap();
    assert_eq!(stray.status, 404, "{}", stray.body);

    let line = |id: &'static str| {
        let data = data.clone();
        async move {
            let line = log_line_with(&data, &format!("\"request_id\":\"{id}\"")).await;
            serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"))
        }
    };
    let got = line("log-check-1").await;
    assert_eq!(got["message"], "request");
    assert_eq!(got["method"], "GET");
    assert_eq!(got["route"], "/devices/{id}");
    assert_eq!(got["status"], 200);
    assert_eq!(got["account_id"], account.user_id.as_str());
    assert_eq!(got["device_id"], phone.id.as_str());
    assert!(got["duration_ms"].as_f64().is_some(), "{got}");
    assert!(got["bytes_out"].as_u64().unwrap_or(0) > 0, "{got}");
    let stray = line("log-check-2").await;
    assert_eq!(stray["route"], "unknown");
    assert_eq!(stray["error"], "not_found");
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    for line in log.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
    }
    for leaked in [secret, phone.token()] {
        assert!(!log.contains(leaked), "the log holds {leaked}");
    }
    assert!(
        !log.contains(&format!("/devices/{}", phone.id)),
        "a raw path reached the log"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `udc-server backup|restore DIR --data-dir DATA` (as the README writes it): whether it
/// worked, and what it said.
fn run(verb: &str, dir: &Path, data: &Path) -> (bool, String) {
    let bin = std::env::var("UDC_SERVER_BIN").expect("UDC_SERVER_BIN names the udc-server binary");
    let out = Command::new(bin)
        .arg(verb)
        .arg(dir)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run udc-server");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// One sample of a scrape: the value of the series named exactly `series` (0 if absent).
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_what_the_server_did_on_their_own_listener_only() {
    let dir = temp_dir();
    let (port, metrics_port, data) = (free_port(), free_port(), dir.join("server"));
    let listen = format!("127.0.0.1:{metrics_port}");
    let _server = start_server_with(
        &data,
        port,
        None,
        &[("UDC_METRICS_LISTEN", listen.as_str())],
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    std::env::set_var("UDC_BASE_URL", &base);
    let scrape = || async {
        let resp = reqwest::get(format!("http://{listen}/metrics"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    let before = scrape().await;

    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let desk = account.device("Desk").await;
    assert!(account
        .api
        .login(&account.email, "not the password")
        .await
        .is_err());
    let devices = account
        .raw(Method::GET, "/devices", Some(phone.token()), None)
        .await;
    assert_eq!(devices.status, 200);
    let mut socket = hub::connect(&desk, None).await;
    hub::replay(&mut socket).await;
    account
        .api
        .update_device(
            phone.token(),
            &phone.id,
            &serde_json::json!({ "name": "Phone 2" }),
        )
        .await
        .unwrap();
    hub::wait_event(&mut socket, udc_hub::names::DEVICE_UPDATED, "Phone 2").await;
    let bytes = vec![7u8; 100_000];
    upload_as(&account, &phone, "m.bin", &bytes, &bytes, None).await;

    let after = scrape().await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(r#"udc_http_requests_total{route="/devices",method="GET",status="200"}"#),
        1.0,
        "{after}"
    );
    assert!(moved(r#"udc_http_request_duration_seconds_count{route="/devices"}"#) >= 1.0);
    assert_eq!(moved("udc_sign_in_failures_total"), 1.0, "{after}");
    assert_eq!(sample(&after, "udc_sockets_open"), 1.0, "{after}");
    assert!(moved("udc_events_logged_total") >= 1.0, "{after}");
    assert!(moved("udc_hub_frames_sent_total") >= 1.0, "{after}");
    assert!(moved("udc_event_fanout_seconds_count") >= 1.0, "{after}");
    assert!(
        moved("udc_store_received_bytes_total") >= 100_000.0,
        "{after}"
    );
    assert!(moved("udc_database_calls_total") > 0.0, "{after}");
    // Never on the public port.
    let public = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert!(!public
        .text()
        .await
        .unwrap()
        .contains("udc_http_requests_total"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server started on a restored backup signs the same people in and has every device,
/// trust, file and change the backup saw.
#[tokio::test]
async fn a_backup_taken_under_writes_restores_into_a_server_that_has_it_all() {
    let dir = temp_dir();
    let (port, live) = (free_port(), dir.join("live"));
    let _server = start_server(&live, port, None).await;
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let desk = account.device("Desk").await;
    account
        .api
        .trust(phone.token(), &phone.id, &desk.id)
        .await
        .unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let file_id = upload_as(&account, &phone, "kept.bin", &bytes, &bytes, Some(&desk.id)).await;

    // Renames, one after another, all through the backup: each answered one is a change the
    // server made; those answered before the backup began must all be in it.
    let renamed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (api, token, id, renamed) = (
            account.api.clone(),
            phone.token().to_owned(),
            phone.id.clone(),
            renamed.clone(),
        );
        tokio::spawn(async move {
            for n in 1u64.. {
                let name = serde_json::json!({ "name": format!("Phone {n}") });
                if api.update_device(&token, &id, &name).await.is_ok() {
                    renamed.store(n, Ordering::SeqCst);
                }
            }
        })
    };
    while renamed.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = renamed.load(Ordering::SeqCst);
    let backup = dir.join("backup");
    let (ok, said) = tokio::task::spawn_blocking({
        let (backup, live) = (backup.clone(), live.clone());
        move || run("backup", &backup, &live)
    })
    .await
    .unwrap();
    assert!(ok, "backup: {said}");
    let during = renamed.load(Ordering::SeqCst);
    assert!(
        during > before,
        "no write was answered while the backup ran"
    );
    writer.abort();

    // Not over a live data directory, and not over one that holds a database.
    let (ok, said) = run("restore", &backup, &live);
    assert!(!ok && said.contains("running"), "{said}");
    let restored = dir.join("restored");
    let (ok, said) = run("restore", &backup, &restored);
    assert!(ok, "restore: {said}");
    let (ok, said) = run("restore", &backup, &restored);
    assert!(!ok && said.contains("already holds a database"), "{said}");

    let port = free_port();
    let _restored_server = start_server(&restored, port, None).await;
    let api = udc_agent::Client::new(&format!("http://127.0.0.1:{port}"));
    // The same password signs in (the pepper came with the backup), and tokens signed before
    // the backup are still good (so did the signing key).
    api.login(&account.email, PASSWORD)
        .await
        .expect("the restored server signs the owner in");
    let devices = api
        .raw(Method::GET, "/devices", Some(desk.token()), None, &[])
        .await
        .unwrap();
    assert_eq!(devices.status, 200, "{}", devices.body);
    let names: Vec<&str> = devices.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(names.contains(&"Desk"), "{names:?}");
    let n: u64 = names
        .iter()
        .find_map(|name| name.strip_prefix("Phone "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the phone's last name is gone: {names:?}"));
    assert!(
        (before..=during).contains(&n),
        "the phone is named {n}: renames {before} (answered before the backup) to {during} (after) were possible"
    );

    let download = api
        .raw(
            Method::GET,
            &format!("/files/{file_id}/download"),
            Some(desk.token()),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(download.status, 200, "{}", download.body);
    let url = download.body["url"].as_str().unwrap();
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &bytes[..]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGTERM, as systemd, Docker or a deploy send it: no new connection, the request in flight
/// finished, every socket closed with 1012 ("restarting": devices reconnect at once), exit 0 —
/// and a device resuming on the next server misses no event.
#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_closes_sockets_with_1012_and_loses_no_event() {
    let dir = temp_dir();
    let (port, data) = (free_port(), dir.join("server"));
    let mut server = start_server(&data, port, None).await;
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let account = Account::create().await;
    let watcher = account.device("Watcher").await;
    let phone = account.device("Phone").await;
    let mut socket = hub::connect(&watcher, None).await;
    hub::replay(&mut socket).await;
    let seen = last_seq(&account, &watcher).await;

    // A rename whose body is still arriving when the signal comes.
    let body = r#"{"name":"Renamed while stopping"}"#;
    let (first, rest) = body.split_at(12);
    let mut in_flight = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "PUT /devices/{} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        phone.id,
        phone.token(),
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.signal("-TERM");
    assert_eq!(
        hub::wait_closed(&mut socket).await,
        Some(udc_hub::protocol::close::RESTARTING)
    );
    let refused = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        assert!(
            refused.elapsed() < Duration::from_secs(5),
            "a stopping server still takes connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    in_flight.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    in_flight.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the request in flight: {answer}"
    );

    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "udc-server did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(status.success(), "udc-server exited with {status}:\n{log}");
    assert!(
        log.contains("SIGTERM: stopping") && log.contains("stopped"),
        "{log}"
    );

    // The next server on the same data: the watcher resumes and gets the rename it missed.
    let port = free_port();
    let _next = start_server(&data, port, None).await;
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let mut socket = hub::connect(&watcher, Some(seen)).await;
    let (events, _) = hub::replay(&mut socket).await;
    assert!(
        events
            .iter()
            .any(|e| e.event == udc_hub::names::DEVICE_UPDATED
                && e.data.to_string().contains("Renamed while stopping")),
        "events after #{seen}: {events:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
