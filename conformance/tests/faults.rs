//! Faults a host must survive: udc-server killed (SIGKILL) in the middle of a request, a disk
//! that fills, and a store it cannot reach. Each test runs its own udc-server
//! (`udc_conformance::own_server`): the kill test with
//! SeaweedFS (`weed`) as its object store, so it can hold a request inside a store call (SIGSTOP
//! on the store) and kill the server there; the disk test on a small tmpfs of its own (root, as
//! CI runs). scripts/test.sh runs this binary once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use udc_conformance::own_server::*;
use udc_conformance::*;

async fn start_store(dir: &Path, port: u16) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("weed.log");
    let child = Command::new("weed")
        .args([
            "mini",
            &format!("-dir={}", dir.display()),
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-bucket=udc-files",
            "-webdav=false",
            "-admin.ui=false",
            &format!("-s3.port={port}"),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ])
        // Without credentials SeaweedFS accepts anything: they make it check signatures.
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("weed (SeaweedFS; scripts/setup.sh installs it)");
    let proc = Proc(child);
    // Anonymous requests are refused (403) once its S3 gateway is up.
    wait_until(
        "SeaweedFS",
        &format!("http://127.0.0.1:{port}/udc-files"),
        |s| s == StatusCode::FORBIDDEN,
    )
    .await;
    // A 403 says the gateway is up, not that the store keeps bytes yet (on CI this test's first
    // part PUT once failed right after it): wait until a part is actually stored.
    let started = Instant::now();
    loop {
        match store_takes_a_part(port).await {
            Ok(()) => return proc,
            Err(e) if started.elapsed() > Duration::from_secs(90) => panic!(
                "SeaweedFS takes no part after {:?}: {e}; its log ends:\n{}",
                started.elapsed(),
                tail(&log)
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Starts a multipart upload in the store and PUTs one part to it, as udc-server and a device do.
async fn store_takes_a_part(port: u16) -> Result<(), String> {
    let store = udc_core::blob::BlobStore::new(&udc_core::config::Storage {
        endpoint: format!("http://127.0.0.1:{port}").parse().unwrap(),
        region: "auto".into(),
        bucket: "udc-files".into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    });
    let now = udc_core::ports::Clock::now_ms(&udc_core::ports::SystemClock);
    let ttl = Duration::from_secs(60);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let create = store
        .create_multipart("ready-probe", now)
        .map_err(|e| e.message)?;
    let resp = http
        .post(create.uri().to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
    let created = http::Response::builder().status(status).body(body).unwrap();
    let upload_id = udc_core::blob::BlobStore::created_upload_id(&created)
        .map_err(|e| format!("{status}: {}", e.internal.unwrap_or(e.message)))?;
    let url = store
        .presign_upload_part("ready-probe", &upload_id, 1, 5, now, ttl)
        .map_err(|e| e.message)?;
    let put = http
        .put(url.as_str())
        .body(b"ready".to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    // What the test's own upload needs back: success with the part's ETag.
    match put.status() {
        s if s.is_success() && put.headers().contains_key("etag") => Ok(()),
        s => Err(format!(
            "part PUT: {s} {}",
            put.text().await.unwrap_or_default()
        )),
    }
}

/// The last lines of a log, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `POST path` as `token`, with an Idempotency-Key and the clock moved `later_ms` ahead.
async fn post_keyed(
    account: &Account,
    token: &str,
    path: &str,
    body: &Value,
    key: &str,
    later_ms: i64,
) -> udc_agent::client::RawResponse {
    account
        .api
        .raw(
            Method::POST,
            path,
            Some(token),
            Some(body),
            &[
                ("Idempotency-Key", key),
                (CLOCK_HEADER, &later_ms.to_string()),
            ],
        )
        .await
        .unwrap()
}

/// A kill while `complete` waits on the store leaves its Idempotency-Key claimed: the retry
/// says so while the claim's lease runs (a minute), then runs the request again, which finds
/// the upload as the store left it and finishes the file; the file is announced once.
#[tokio::test]
async fn a_complete_cut_by_a_kill_finishes_when_retried_after_its_lease() {
    let dir = temp_dir();
    let store_port = free_port();
    let port = free_port();
    let store = start_store(&dir.join("store"), store_port).await;
    let data_dir = dir.join("server");
    let server = start_server(&data_dir, port, Some(store_port)).await;
    // This process talks to its own server only (nextest runs each test in its own process).
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));

    let account = Account::create().await;
    let from = account.device("Sender").await;
    let to = account.device("Receiver").await;
    account
        .api
        .trust(from.token(), &from.id, &to.id)
        .await
        .unwrap();
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha256 = sha256_hex(&bytes);
    let started = account
        .raw(
            Method::POST,
            "/files/upload/initiate",
            Some(from.token()),
            Some(&json!({ "name": "cut.bin", "size": bytes.len(), "sha256": sha256, "target_device_id": to.id })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let file_id = started.body["file"]["id"].as_str().unwrap().to_owned();
    let upload_id = started.body["upload"]["upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let urls = account
        .raw(
            Method::POST,
            &format!("/files/{file_id}/parts"),
            Some(from.token()),
            Some(&json!({ "part_numbers": [1] })),
        )
        .await;
    let put = reqwest::Client::new()
        .put(urls.body["parts"][0]["url"].as_str().unwrap())
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let status = put.status();
    let etag = put.headers().get("etag").cloned();
    assert!(
        status.is_success() && etag.is_some(),
        "the store took the part: {status} {}",
        put.text().await.unwrap_or_default()
    );
    let etag = etag.unwrap().to_str().unwrap().to_owned();
    let recorded = account
        .raw(
            Method::POST,
            "/files/upload/part",
            Some(from.token()),
            Some(&json!({ "upload_id": upload_id, "part_number": 1, "etag": etag })),
        )
        .await;
    assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.body);

    // The store stops answering; the complete claims its key and waits on the store.
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({ "upload_id": upload_id });
    store.signal("-STOP");
    let cut = {
        let api = account.api.clone();
        let token = from.token().to_owned();
        let (body, key) = (body.clone(), key.clone());
        tokio::spawn(async move {
            api.raw(
                Method::POST,
                "/files/upload/complete",
                Some(&token),
                Some(&body),
                &[("Idempotency-Key", &key)],
            )
            .await
        })
    };
    // A debug build reaches the store call in milliseconds; the retry below proves the key
    // was claimed when the kill came (a probe with the key could claim it itself and hang).
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill();
    assert!(cut.await.unwrap().is_err(), "the cut request got no answer");
    store.signal("-CONT");
    let _server = start_server(&data_dir, port, Some(store_port)).await;

    // Within the lease the key is still taken (the cut request had claimed it): the first
    // request may, for all the server knows, still be running.
    let soon = post_keyed(
        &account,
        from.token(),
        "/files/upload/complete",
        &body,
        &key,
        0,
    )
    .await;
    assert_eq!(
        (soon.status, soon.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("request_in_progress")),
        "{}",
        soon.body
    );
    // After it, the request runs again and finishes the file, whatever the store did with the
    // cut request (completed the upload or never saw it).
    let later = post_keyed(
        &account,
        from.token(),
        "/files/upload/complete",
        &body,
        &key,
        61_000,
    )
    .await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    assert_eq!(later.body["file"]["state"], "available");
    let replay = post_keyed(
        &account,
        from.token(),
        "/files/upload/complete",
        &body,
        &key,
        62_000,
    )
    .await;
    assert_eq!((replay.status, &replay.body), (later.status, &later.body));

    let url = account
        .raw(
            Method::GET,
            &format!("/files/{file_id}/download"),
            Some(to.token()),
            None,
        )
        .await;
    let got = reqwest::get(url.body["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        got.as_ref() == bytes.as_slice(),
        "the receiver gets the bytes sent"
    );
    let announced = events_named(&account, &from, "file.transfer.completed").await;
    assert_eq!(announced.len(), 1, "announced once");
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

/// Every event the account's log holds, read page by page as `device` polls it.
async fn whole_log(account: &Account, device: &TestDevice) -> Vec<udc_hub::Event> {
    let mut all: Vec<udc_hub::Event> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page = events(account, device, after).await;
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// udc-server killed 25 times during 4,000 settings writes (eight at a time, each its own key,
/// so a write cut by a kill is either made or not): every write the server made has its event
/// in the log exactly once, no event names a write it did not make, and the numbers a device
/// reads have no gap. Each kill comes at a different point of its round.
#[tokio::test]
async fn every_change_made_has_its_event_once_across_kills() {
    const KILLS: usize = 25;
    const CHANGES: usize = 4000;
    const IN_FLIGHT: usize = 8;
    let dir = temp_dir();
    let port = free_port();
    let data_dir = dir.join("server");
    let mut server = start_server(&data_dir, port, None).await;
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let account = Account::create().await;
    let writer = account.device("Writer").await;
    let reader = account.device("Reader").await;

    let per_round = CHANGES.div_ceil(KILLS + 1);
    // Writes the server answered 200: each of them was made.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for round in 0..=KILLS {
        let first = round * per_round;
        let answered_before = answered.load(std::sync::atomic::Ordering::SeqCst);
        let writers: Vec<_> = (0..IN_FLIGHT)
            .map(|lane| {
                let api = account.api.clone();
                let token = writer.token().to_owned();
                let answered = answered.clone();
                tokio::spawn(async move {
                    for i in (first + lane..(first + per_round).min(CHANGES)).step_by(IN_FLIGHT) {
                        let body = json!({ "namespace": "faults", "key": format!("k{i}"), "value": i, "base_version": 0 });
                        // A refused connection (the server is down) ends this lane's round.
                        match api
                            .raw(Method::POST, "/sync/settings", Some(&token), Some(&body), &[])
                            .await
                        {
                            Ok(r) if r.status == StatusCode::OK => {
                                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        if round == KILLS {
            for w in writers {
                w.await.unwrap();
            }
            break;
        }
        // The kill comes at a different point of each round, counted in writes answered (not
        // in time), early to late, with eight more in flight and the rest never sent.
        let kill_after = answered_before + 10 + (round * 37) % (per_round - 40);
        while answered.load(std::sync::atomic::Ordering::SeqCst) < kill_after
            && !writers.iter().all(|w| w.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill();
        for w in writers {
            w.await.unwrap();
        }
        server = start_server(&data_dir, port, None).await;
    }

    let mut made = std::collections::BTreeSet::new();
    let mut since = 0;
    loop {
        let r = account
            .raw(
                Method::GET,
                &format!("/sync/settings?since={since}&namespace=faults"),
                Some(reader.token()),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for doc in r.body["changes"].as_array().unwrap() {
            made.insert(doc["key"].as_str().unwrap().to_owned());
            since = since.max(doc["version"].as_i64().unwrap());
        }
        if r.body["more"] != true {
            break;
        }
    }
    let log = whole_log(&account, &reader).await;
    eprintln!(
        "{} of {CHANGES} writes made across {KILLS} kills; {} events in the log",
        made.len(),
        log.len()
    );
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    let first = seqs.first().copied().unwrap_or(1);
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "no gap in the numbers"
    );
    let mut told = std::collections::BTreeMap::<String, usize>::new();
    for e in log.iter().filter(|e| e.event == "settings.changed") {
        for c in e.data["changes"].as_array().unwrap() {
            *told
                .entry(c["key"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let lost: Vec<&String> = made.iter().filter(|k| !told.contains_key(*k)).collect();
    let twice: Vec<(&String, &usize)> = told.iter().filter(|(_, n)| **n > 1).collect();
    let phantom: Vec<&String> = told.keys().filter(|k| !made.contains(*k)).collect();
    assert!(
        lost.is_empty() && twice.is_empty() && phantom.is_empty(),
        "of {} writes made: {} without their event {lost:?}, {} told twice {twice:?}, {} told but not made {phantom:?}",
        made.len(),
        lost.len(),
        twice.len(),
        phantom.len()
    );
    // Every answered write was made; each kill left writes unsent.
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        made.len() >= answered && made.len() < CHANGES,
        "{} of {CHANGES} writes made, {answered} answered",
        made.len()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// A small file system of its own (tmpfs), unmounted when dropped: a disk that can fill.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, mib: u32) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount")
            .success();
        assert!(
            ok,
            "mounting a tmpfs (the fault tests run as root, as CI does)"
        );
        SmallDisk(path.to_owned())
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk: a change answers 507 `storage_full` and is not made, reads go on, the embedded
/// store answers 507 too, and once there is room again everything works.
#[tokio::test]
async fn a_full_disk_answers_507_changes_nothing_and_reads_go_on() {
    let dir = temp_dir();
    let disk = SmallDisk::mount(&dir.join("small"), 24);
    let port = free_port();
    let server = start_server(&disk.0.join("data"), port, None).await;
    std::env::set_var("UDC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let part = vec![7u8; 1024 * 1024];
    let started = account
        .raw(
            Method::POST,
            "/files/upload/initiate",
            Some(device.token()),
            Some(&json!({ "name": "a.bin", "size": part.len(), "sha256": "0".repeat(64) })),
        )
        .await;
    let file_id = started.body["file"]["id"].as_str().unwrap().to_owned();
    let urls = account
        .raw(
            Method::POST,
            &format!("/files/{file_id}/parts"),
            Some(device.token()),
            Some(&json!({ "part_numbers": [1] })),
        )
        .await;
    let part_url = urls.body["parts"][0]["url"].as_str().unwrap().to_owned();

    let filler = disk.fill();
    // SQLite may still have room in pages it holds: change until it has none.
    let rename = |name: String| {
        let api = account.api.clone();
        let (token, id) = (device.token().to_owned(), device.id.clone());
        async move {
            api.raw(
                Method::PUT,
                &format!("/devices/{id}"),
                Some(&token),
                Some(&json!({ "name": name })),
                &[],
            )
            .await
            .unwrap()
        }
    };
    let mut last_made = "Laptop".to_owned();
    let mut refused = None;
    for i in 0..2000 {
        let name = format!("Laptop {i} {}", "x".repeat(40));
        let r = rename(name.clone()).await;
        match r.status {
            StatusCode::OK => last_made = name,
            _ => {
                refused = Some(r);
                break;
            }
        }
    }
    let refused = refused.expect("a full disk refused no change");
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (StatusCode::INSUFFICIENT_STORAGE, Some("storage_full")),
        "{}",
        refused.body
    );
    let read = account
        .raw(
            Method::GET,
            &format!("/devices/{}", device.id),
            Some(device.token()),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "reads go on: {}", read.body);
    assert_eq!(
        read.body["name"],
        last_made.as_str(),
        "the refused change was not made"
    );
    let stored = reqwest::Client::new()
        .put(&part_url)
        .body(part.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.status(),
        StatusCode::INSUFFICIENT_STORAGE,
        "the store"
    );

    std::fs::remove_file(filler).unwrap();
    let made = rename("Laptop again".into()).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let stored = reqwest::Client::new()
        .put(&part_url)
        .body(part)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.status(),
        StatusCode::OK,
        "the store, with room again"
    );
    drop(server);
    drop(disk);
    let _ = std::fs::remove_dir_all(dir);
}

/// A store that cannot be reached makes the server not ready (503, naming the store) while it
/// stays alive (`/health`); why goes only to its log, under the request's id.
#[tokio::test]
async fn a_server_whose_store_cannot_be_reached_is_alive_but_not_ready() {
    let dir = temp_dir();
    let port = free_port();
    // Nothing listens there: every store request is refused.
    let nowhere = free_port();
    let data_dir = dir.join("server");
    let _server = start_server(&data_dir, port, Some(nowhere)).await;
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("x-request-id", "ready-check-1")
            .send()
    };

    let ready = get("/ready").await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("the object store"), "{message}");
    assert!(!message.contains("the database"), "{message}");
    assert!(
        !message.contains(&nowhere.to_string()),
        "an address reached the caller: {message}"
    );
    assert_eq!(get("/health").await.unwrap().status(), StatusCode::OK);

    let line = log_line_with(&data_dir, "ready-check-1").await;
    assert!(line.contains("object store"), "{line}");
    assert!(
        !line.contains("X-Amz-"),
        "a signed URL reached the log: {line}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
