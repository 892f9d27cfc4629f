//! `udc-server backup` taken while the server takes writes, and `restore` into a fresh data
//! directory: a server started there signs the same people in and has every device, trust,
//! file and change the backup saw. Runs its own servers (`udc_conformance::own_server`);
//! scripts/test.sh runs it with the faults.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::Method;
use udc_conformance::own_server::*;
use udc_conformance::*;

/// `udc-server backup|restore DIR --data-dir DATA`: whether it worked, and what it said.
fn run(verb: &str, dir: &Path, data: &Path) -> (bool, String) {
    let bin = std::env::var("UDC_SERVER_BIN").expect("UDC_SERVER_BIN names the udc-server binary");
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(data)
        .arg(verb)
        .arg(dir)
        .output()
        .expect("run udc-server");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

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
