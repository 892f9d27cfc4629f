//! The web app's figures, in headless Chromium on loopback against the host in UDC_BASE_URL:
//! the app shell's first-load bytes (gzip) and time to interactive (cold, fresh profile); the
//! KDF and the whole sign-in in the page (wasm, in the Worker) against the native KDF and
//! `udc-agent login`; a file (default 1 GiB) sent from the page against `udc-agent send` of the
//! same file to the same host, as a ratio (target >= 0.8), with the browser's peak memory
//! during the page's upload.
//! Usage: UDC_BASE_URL=... UDC_AGENT_BIN=... udc-web-bench [--mib N]

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use udc_conformance::browser::Browser;
use udc_conformance::desktop::DisplayAgent;
use udc_conformance::{agent_command, base_url, ms, percentile, unique_email, PASSWORD};

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::args()
        .skip_while(|a| a != "--mib")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    first_load().await;
    let email = unique_email();
    sign_in(&email).await;
    upload(&email, mib).await;
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out);
    out
}

/// The app shell's bytes as a browser downloads them (gzip), file by file.
async fn first_load() {
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let resp = http
                .get(format!("{}{path}", base_url()))
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap();
            let gzip = resp
                .headers()
                .get("content-encoding")
                .is_some_and(|v| v == "gzip");
            let body = resp.bytes().await.unwrap().to_vec();
            (body, gzip)
        }
    };
    let (page, gzip) = get("/".into()).await;
    let page = String::from_utf8_lossy(&if gzip { gunzip(&page) } else { page }).into_owned();
    let mut files: Vec<String> = page
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect();
    let mut total = 0;
    let mut seen = vec!["/".to_owned()];
    let (bytes, gzip) = get("/".into()).await;
    println!(
        "first load: {:<44} {:>7} bytes{}",
        "/",
        bytes.len(),
        if gzip { " gzip" } else { "" }
    );
    total += bytes.len();
    while let Some(path) = files.pop() {
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        let (bytes, gzip) = get(path.clone()).await;
        if path.ends_with(".js") {
            // The script names the wasm and the Worker it loads.
            let plain = if gzip { gunzip(&bytes) } else { bytes.clone() };
            for name in String::from_utf8_lossy(&plain).split('"') {
                let name = name.rsplit('/').next().unwrap_or("");
                if name.ends_with(".wasm") || (name.ends_with(".js") && name.contains("worker")) {
                    files.push(format!("/assets/{name}"));
                }
            }
        }
        let shell = !path.contains("worker");
        println!(
            "first load: {path:<44} {:>7} bytes{}{}",
            bytes.len(),
            if gzip { " gzip" } else { "" },
            if shell { "" } else { " (loaded at sign-in)" }
        );
        if shell {
            total += bytes.len();
        }
    }
    println!(
        "first load: app shell total {total} bytes ({:.1} KB; budget 300 KB gzip)",
        total as f64 / 1024.0
    );

    let mut tti = Vec::new();
    for _ in 0..5 {
        let b = Browser::start().await;
        b.open("/").await;
        let at = b
            .until(
                "the first screen",
                "const m = performance.getEntriesByName('udc-interactive')[0]; return m && m.startTime",
                json!([]),
            )
            .await;
        tti.push(Duration::from_secs_f64(at.as_f64().unwrap_or(0.0) / 1000.0));
    }
    tti.sort();
    let all: Vec<String> = tti.iter().map(|d| format!("{:.0}", ms(*d))).collect();
    println!(
        "time to interactive (cold, fresh profile; ms from navigation to the first usable screen): {}",
        all.join(", ")
    );
}

/// Sign-in in the page (KDF in the Worker, then registering the device) against the agent.
async fn sign_in(email: &str) {
    let b = Browser::start().await;
    b.sign_up(email, "Bench Browser").await;
    let mut kdf_page = Vec::new();
    let mut whole_page = Vec::new();
    for round in 0..3 {
        b.click("#sign-out").await;
        b.fill("#email", email).await;
        b.fill("#password", PASSWORD).await;
        b.fill("#device-name", &format!("Bench Browser {round}"))
            .await;
        let started = Instant::now();
        b.click("#submit").await;
        b.signed_in().await;
        whole_page.push(started.elapsed());
        let kdf = b
            .js(
                "const m = performance.getEntriesByName('udc-kdf'); return m[m.length - 1].duration",
                json!([]),
            )
            .await;
        kdf_page.push(Duration::from_secs_f64(
            kdf.as_f64().unwrap_or(0.0) / 1000.0,
        ));
    }
    let kdf = udc_agent::kdf::KdfParams::new_random().unwrap();
    let mut kdf_native = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        udc_agent::kdf::derive(PASSWORD, &kdf).unwrap();
        kdf_native.push(started.elapsed());
    }
    let mut whole_agent = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let agent = DisplayAgent::login_as(email, &format!("Bench Agent {round}"));
        whole_agent.push(started.elapsed());
        drop(agent);
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        ms(percentile(&v, 50.0))
    };
    let (kp, kn) = (med(kdf_page), med(kdf_native));
    println!("sign-in KDF (Argon2id m=19 MiB t=2): page (wasm, Worker) {kp:.0} ms, native {kn:.0} ms, page/native {:.2}×", kp / kn);
    let (wp, wa) = (med(whole_page), med(whole_agent));
    println!("sign-in whole (click to live page / agent login): page {wp:.0} ms, agent {wa:.0} ms");
}

/// The memory (proportional set size, KiB) of one browser: the Chromium process whose command
/// line names `profile`, and all its descendants; and of its renderers alone.
fn browser_rss_kib(profile: &str) -> (u64, u64) {
    struct Proc {
        pid: u32,
        parent: u32,
        cmdline: String,
        rss: u64,
    }
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let dir = entry.path();
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        // Proportional: pages shared between Chromium's processes are counted once in all.
        let pss = std::fs::read_to_string(dir.join("smaps_rollup"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("Pss:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
            })
            .unwrap_or(0);
        procs.push(Proc {
            pid,
            parent: field("PPid:") as u32,
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            rss: pss,
        });
    }
    let mut family: Vec<u32> = procs
        .iter()
        .filter(|p| p.cmdline.contains(profile) && !p.cmdline.contains("--type="))
        .map(|p| p.pid)
        .collect();
    let mut grew = true;
    while grew {
        grew = false;
        for p in &procs {
            if family.contains(&p.parent) && !family.contains(&p.pid) {
                family.push(p.pid);
                grew = true;
            }
        }
    }
    let mine = procs.iter().filter(|p| family.contains(&p.pid));
    let all = mine.clone().map(|p| p.rss).sum();
    let renderers = mine
        .filter(|p| p.cmdline.contains("--type=renderer"))
        .map(|p| p.rss)
        .sum();
    (all, renderers)
}

/// The same file from the page and from the agent, to the same host.
async fn upload(email: &str, mib: u64) {
    let dir = std::env::temp_dir().join(format!("udc-web-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.bin");
    {
        let mut block = vec![0u8; 1024 * 1024];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for b in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..mib {
            block[0] = i as u8;
            block[1] = (i >> 8) as u8;
            f.write_all(&block).unwrap();
        }
    }
    let size = mib * 1024 * 1024;

    let b = Browser::start().await;
    b.open("/").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.fill("#device-name", "Bench Uploader").await;
    b.click("#submit").await;
    b.signed_in().await;
    b.open("/#/files").await;
    b.signed_in().await;
    b.until(
        "the target list",
        "return document.querySelector('#send-to')",
        json!([]),
    )
    .await;
    b.js("const s = document.querySelector('#send-to'); s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true})); return true", json!([])).await;

    let profile = b.profile().display().to_string();
    let (base_all, base_renderers) = browser_rss_kib(&profile);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = (0, 0);
            while sampling.load(Ordering::Relaxed) {
                let (a, r) = browser_rss_kib(&profile);
                peak = (peak.0.max(a), peak.1.max(r));
                std::thread::sleep(Duration::from_millis(500));
            }
            peak
        })
    };
    // The page times its own phases (a MutationObserver on the transfer's phase), so the bench
    // polls only twice a second: its own polling must not take CPU from the upload it measures.
    let t0 = b
        .js(
            "window.udcBench = {}; new MutationObserver(() => { \
               const phase = document.querySelector('.transfer')?.dataset.phase; \
               if (phase) window.udcBench[phase] ??= performance.now(); \
             }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-phase'] }); \
             return performance.now()",
            json!([]),
        )
        .await
        .as_f64()
        .unwrap();
    let started = Instant::now();
    b.choose_file("#file-input", &path).await;
    let seen = loop {
        let seen = b.js("return window.udcBench", json!([])).await;
        if seen.get("done").is_some() || seen.get("failed").is_some() {
            break seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the page's upload never ended"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // When the page reached each phase, from the moment the file was chosen.
    let at = |phase: &str| {
        seen[phase]
            .as_f64()
            .map(|ms| Duration::from_secs_f64((ms - t0) / 1000.0))
    };
    let page = at("done").expect("the page's upload failed");
    sampling.store(false, Ordering::Relaxed);
    let (peak_all, peak_renderers) = sampler.join().unwrap();
    drop(b);

    let sender = DisplayAgent::login_as(email, "Bench Sender");
    let started = Instant::now();
    let sent = agent_command(&sender.config)
        .args(["send", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let agent = started.elapsed();
    assert!(sent.success(), "the agent's send failed");

    let rate = |d: Duration| size as f64 / 1024.0 / 1024.0 / d.as_secs_f64();
    println!(
        "upload {mib} MiB (hash + send): page {:.2} s ({:.0} MiB/s), agent {:.2} s ({:.0} MiB/s), page/agent {:.2}× (target >= 0.8)",
        page.as_secs_f64(),
        rate(page),
        agent.as_secs_f64(),
        rate(agent),
        rate(page) / rate(agent)
    );
    if let (Some(hashed), Some(completing)) = (at("uploading"), at("completing")) {
        println!(
            "page's upload, in phases: SHA-256 in the Worker {:.2} s ({:.0} MiB/s), initiate + parts {:.2} s ({:.0} MiB/s), complete {:.2} s",
            hashed.as_secs_f64(),
            rate(hashed),
            (completing - hashed).as_secs_f64(),
            rate(completing - hashed),
            (page - completing).as_secs_f64(),
        );
    }
    println!(
        "browser memory during the page's upload: peak {} MiB the whole browser ({} MiB before), its renderers {} MiB ({} MiB before)",
        peak_all / 1024,
        base_all / 1024,
        peak_renderers / 1024,
        base_renderers / 1024
    );
    let _ = std::fs::remove_dir_all(dir);
}
