//! File transfer throughput: `udc-agent send` / `receive` moving a file (default 1 GiB) against
//! `curl` moving the same bytes to and from presigned URLs of the same server, as ratios from
//! one run (target >= 0.9), a sealed download against the same bytes stored in the clear
//! (sealing's cost, target >= 0.9), and the agent's peak memory, which must not grow with the
//! file.
//! Usage: UDC_BASE_URL=... UDC_AGENT_BIN=... udc-files-bench [--mib N]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use udc_conformance::{agent_command, base_url, client, unique_email, PASSWORD};

const PART: u64 = 8 * 1024 * 1024;
const PARALLEL: usize = 4;

/// Runs the agent; returns its stdout JSON, wall time and its own peak resident memory (KiB).
// The child is reaped by wait4, which std's wait cannot replace: it also reports the memory.
#[allow(clippy::zombie_processes)]
fn agent(config: &Path, args: &[&str], stdin: &str) -> (Value, Duration, i64) {
    let started = Instant::now();
    let mut child = agent_command(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run udc-agent");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let (status, peak) = wait_with_rusage(child.id() as libc::pid_t);
    let took = started.elapsed();
    let out = reader.join().unwrap().unwrap();
    assert!(status == 0, "udc-agent {args:?} failed");
    (
        serde_json::from_slice(&out).unwrap_or(Value::Null),
        took,
        peak,
    )
}

/// Waits for one child; its exit status and peak resident set (Linux: KiB).
#[allow(unsafe_code)] // the standard library reads no child's rusage
fn wait_with_rusage(pid: libc::pid_t) -> (i32, i64) {
    // SAFETY: wait4 writes only the status and the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let mut status = 0;
        libc::wait4(pid, &mut status, 0, &mut usage);
        (status, usage.ru_maxrss)
    }
}

/// Flushes dirty pages, so each timed phase starts with the disk idle rather than paying for
/// the previous phase's writes (the store writes every byte, here on the same disk).
fn settle() {
    let _ = Command::new("sync").status();
}

fn curl_timed(args: &[String]) -> Duration {
    let started = Instant::now();
    let status = Command::new("curl").args(args).status().expect("run curl");
    assert!(status.success(), "curl {args:?}");
    started.elapsed()
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1_048_576.0 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib * 1024 * 1024;
    let dir = std::env::temp_dir().join(format!("udc-files-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }

    let email = unique_email();
    let (sender, receiver) = (dir.join("sender"), dir.join("receiver"));
    let password = format!("{PASSWORD}\n");
    agent(
        &sender,
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Sender",
        ],
        &password,
    );
    agent(
        &receiver,
        &[
            "login",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Receiver",
        ],
        &password,
    );
    agent(&sender, &["devices", "trust", "Receiver"], "");

    // curl, upload: the same bytes to presigned part URLs, PARALLEL at a time (parts are cut
    // into their own files first, untimed, since curl cannot send a slice of a file).
    let session: Value =
        serde_json::from_slice(&std::fs::read(sender.join("session.json")).unwrap()).unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let api = client();
    let sha = udc_agent::transfer::sha256_file(&file).await.unwrap();
    let started = api
        .raw(
            Method::POST,
            "/files/upload/initiate",
            Some(&token),
            Some(&json!({ "name": "curl.bin", "size": size, "sha256": sha })),
            &[],
        )
        .await
        .unwrap();
    let file_id = started.body["file"]["id"].as_str().unwrap().to_owned();
    let count = started.body["upload"]["part_count"].as_u64().unwrap();
    let urls = api
        .raw(
            Method::POST,
            &format!("/files/{file_id}/parts"),
            Some(&token),
            Some(&json!({ "part_numbers": (1..=count).collect::<Vec<_>>() })),
            &[],
        )
        .await
        .unwrap();
    let parts_dir = dir.join("parts");
    std::fs::create_dir_all(&parts_dir).unwrap();
    let mut curl_args = vec![
        "-sf".to_owned(),
        "--no-progress-meter".to_owned(),
        "--parallel".to_owned(),
        "--parallel-max".to_owned(),
        PARALLEL.to_string(),
    ];
    // Part by part: a whole-file buffer here would count in the agents' peak memory too
    // (a child starts with its parent's resident set as its high-water mark).
    let mut source = std::fs::File::open(&file).unwrap();
    let mut chunk = vec![0u8; PART as usize];
    for i in 0..count as usize {
        let len = (size - i as u64 * PART).min(PART) as usize;
        std::io::Read::read_exact(&mut source, &mut chunk[..len]).unwrap();
        let p = parts_dir.join(format!("{}", i + 1));
        std::fs::write(&p, &chunk[..len]).unwrap();
        curl_args.extend([
            "-T".to_owned(),
            p.display().to_string(),
            urls.body["parts"][i]["url"].as_str().unwrap().to_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
        ]);
    }
    drop(chunk);
    // Timed like the agent's send: the bytes, then recording the parts and completing (the
    // store assembles the object), but without hashing the file first.
    settle();
    let timer = Instant::now();
    // Each finished transfer prints its URL and the store's ETag.
    curl_args.extend(["-w".to_owned(), "%{url} %header{etag}\\n".to_owned()]);
    let out = Command::new("curl")
        .args(&curl_args)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed");
    let upload_id = started.body["upload"]["upload_id"].as_str().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (url, etag) = line.split_once(' ').unwrap();
        let n: u64 = url
            .split("partNumber=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let body = json!({ "upload_id": upload_id, "part_number": n, "etag": etag });
        api.raw(
            Method::POST,
            "/files/upload/part",
            Some(&token),
            Some(&body),
            &[],
        )
        .await
        .unwrap();
    }
    let done = api
        .raw(
            Method::POST,
            "/files/upload/complete",
            Some(&token),
            Some(&json!({ "upload_id": upload_id })),
            &[],
        )
        .await
        .unwrap();
    assert!(done.status.is_success(), "{:?}", done.body);
    let curl_up = timer.elapsed();
    std::fs::remove_dir_all(&parts_dir).unwrap();
    // Kept for the download in the clear below: sealed uploads are deduplicated only onto
    // sealed files (by their content id), so the agent's send of the same bytes is not.
    let clear_id = file_id;

    // The agent: hash, initiate, parts in parallel, record each, complete.
    settle();
    let (sent, agent_up, up_peak) = agent(
        &sender,
        &[
            "send",
            file.to_str().unwrap(),
            "--to",
            "Receiver",
            "--parallel",
            &PARALLEL.to_string(),
        ],
        "",
    );
    assert_eq!(sent["parts_sent"].as_u64(), Some(count));
    let hash_started = Instant::now();
    udc_agent::transfer::sha256_file(&file).await.unwrap();
    let hashing = hash_started.elapsed();

    // Download: curl to a file, then the agent (streams to disk, hashes, confirms).
    let rsession: Value =
        serde_json::from_slice(&std::fs::read(receiver.join("session.json")).unwrap()).unwrap();
    let rtoken = rsession["access_token"].as_str().unwrap();
    let id = sent["file"]["id"].as_str().unwrap();
    let dl = api
        .raw(
            Method::GET,
            &format!("/files/{id}/download"),
            Some(rtoken),
            None,
            &[],
        )
        .await
        .unwrap();
    // Twice, the second timed, as the agent's downloads below are (the first pays for memory).
    let out = dir.join("curl.out");
    let curl_download = || {
        settle();
        let took = curl_timed(&[
            "-sf".to_owned(),
            "-o".to_owned(),
            out.display().to_string(),
            dl.body["url"].as_str().unwrap().to_owned(),
        ]);
        std::fs::remove_file(&out).unwrap();
        took
    };
    let (curl_first, curl_down) = (curl_download(), curl_download());
    // The agent: the same bytes stored in the clear (as files sent before sealing are), a
    // download that opens nothing, against the sealed file: sealing's cost. Each is received
    // twice and timed the second time: on a VM whose host backs guest memory on first touch
    // (this project's machines), a download into a growing page cache pays for that memory
    // (most of all the sealed one, written in whole aligned MiBs, so in large folios that
    // freed small pages cannot make up), which says nothing about the agent. Both figures
    // are printed.
    let inbox = dir.join("inbox");
    let receive = |file: &str| {
        settle();
        let got = agent(
            &receiver,
            &["receive", "--file", file, "--dir", inbox.to_str().unwrap()],
            "",
        );
        std::fs::remove_dir_all(&inbox).unwrap();
        got
    };
    let (clear_first, (_, clear_down, _)) = (receive(&clear_id).1, receive(&clear_id));
    let (sealed_first, (_, agent_down, down_peak)) = (receive(id).1, receive(id));
    let first_round = (mib_s(size, clear_first), mib_s(size, sealed_first));

    println!(
        "files: {mib} MiB, {count} parts of 8 MiB, {PARALLEL} in flight, against {}",
        base_url()
    );
    println!("  upload    curl {:7.1} MiB/s   agent {:7.1} MiB/s  (incl. SHA-256 of the file, {:.2} s)   ratio {:.2}",
        mib_s(size, curl_up), mib_s(size, agent_up), hashing.as_secs_f64(), curl_up.as_secs_f64() / agent_up.as_secs_f64());
    println!(
        "            agent without the hashing {:7.1} MiB/s   ratio {:.2}",
        mib_s(size, agent_up.saturating_sub(hashing)),
        curl_up.as_secs_f64() / agent_up.saturating_sub(hashing).as_secs_f64()
    );
    println!("  download  curl {:7.1} MiB/s   agent {:7.1} MiB/s  (streams, hashes, confirms)   ratio {:.2}   (first time: {:.1} and {:.1})",
        mib_s(size, curl_down), mib_s(size, agent_down), curl_down.as_secs_f64() / agent_down.as_secs_f64(),
        mib_s(size, curl_first), first_round.1);
    println!(
        "  download  sealed {:7.1} MiB/s   in the clear {:7.1} MiB/s   ratio {:.2}   (first time: {:.1} and {:.1})",
        mib_s(size, agent_down),
        mib_s(size, clear_down),
        clear_down.as_secs_f64() / agent_down.as_secs_f64(),
        first_round.1,
        first_round.0,
    );
    println!(
        "  agent peak memory: send {:.1} MiB, receive {:.1} MiB",
        up_peak as f64 / 1024.0,
        down_peak as f64 / 1024.0
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
