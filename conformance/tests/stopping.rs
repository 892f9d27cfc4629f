//! udc-server stopped by SIGTERM, as systemd, Docker or a deploy stop it: it takes no new
//! connection, finishes the request in flight, closes every socket with 1012 ("restarting",
//! so devices reconnect at once), exits 0 — and a device resuming on the next server misses no
//! event. Runs its own servers (`udc_conformance::own_server`); scripts/test.sh runs it with
//! the faults.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use udc_conformance::own_server::*;
use udc_conformance::*;

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
