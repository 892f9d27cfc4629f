//! Nothing is lost across a restart of the host. scripts/test.sh runs this twice around a
//! restart on the same storage: `UDC_RESTART_PHASE=before`, then `after`, sharing the file
//! `UDC_RESTART_STATE`.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use udc_agent::client::TokenPair;
use udc_conformance::hub::*;
use udc_conformance::*;

#[derive(Serialize, Deserialize)]
struct Saved {
    b_id: String,
    b_tokens: TokenPair,
    cursor: u64,
    missed: Vec<u64>,
}

fn state_file() -> String {
    std::env::var("UDC_RESTART_STATE")
        .expect("UDC_RESTART_STATE names the file shared by both phases")
}

#[tokio::test]
async fn events_missed_before_a_restart_are_replayed_after_it() {
    match std::env::var("UDC_RESTART_PHASE").as_deref() {
        Ok("before") => before().await,
        Ok("after") => after().await,
        _ => panic!(
            "set UDC_RESTART_PHASE=before, restart the host on the same storage, then =after"
        ),
    }
}

async fn before() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let b = account.device("B").await;
    let mut sb = connect(&b, None).await;
    let (_, ready) = replay(&mut sb).await;
    let udc_hub::HubFrame::Ready {
        last_seq: cursor, ..
    } = ready
    else {
        panic!("{ready:?}")
    };
    sb.close().await;
    for name in ["before-restart-1", "before-restart-2"] {
        account
            .api
            .update_device(a.token(), &a.id, &json!({ "name": name }))
            .await
            .unwrap();
    }
    let polled = account
        .raw(
            Method::GET,
            &format!("/events?after={cursor}"),
            Some(b.token()),
            None,
        )
        .await;
    let missed: Vec<u64> = polled.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(missed.len() >= 2, "{missed:?}");
    let saved = Saved {
        b_id: b.id,
        b_tokens: b.tokens,
        cursor,
        missed,
    };
    std::fs::write(state_file(), serde_json::to_vec(&saved).unwrap()).unwrap();
}

async fn after() {
    let saved: Saved = serde_json::from_slice(&std::fs::read(state_file()).unwrap()).unwrap();
    let b = TestDevice {
        id: saved.b_id,
        tokens: saved.b_tokens,
    };
    let mut sb = connect(&b, Some(saved.cursor)).await;
    let (replayed, _) = replay(&mut sb).await;
    let seqs: Vec<u64> = replayed.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs, saved.missed,
        "the replay after the restart is exactly what was missed before it"
    );
    let names: Vec<&str> = replayed
        .iter()
        .filter(|e| e.event == "device.updated")
        .filter_map(|e| e.data["device"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["before-restart-1", "before-restart-2"]);
}

#[derive(Serialize, Deserialize)]
struct SavedFiles {
    sender: TokenPair,
    receiver: TokenPair,
    sent_id: String,
    sha256: String,
    account_key: [u8; 32],
    dir: std::path::PathBuf,
}

fn file_bytes(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

/// A sent file, and an upload half done, both outlive a restart: the file downloads, and the
/// upload resumes with only its missing part.
#[tokio::test]
async fn files_and_unfinished_uploads_survive_a_restart() {
    use udc_agent::transfer::{self, SendOptions};
    let state = format!("{}.files", state_file());
    type Keys = std::sync::Arc<udc_agent::file_seal::FileKeys>;
    let options = |dir: &std::path::Path, to: &str, keys: Keys| SendOptions {
        target_device_id: Some(to.to_owned()),
        mime: None,
        parallel: 1,
        limit_rate: None,
        part_size: Some(5 * 1024 * 1024),
        state_dir: dir.join("state"),
        keys,
    };
    match std::env::var("UDC_RESTART_PHASE").as_deref() {
        Ok("before") => {
            let account = Account::create().await;
            let a = account.device("A").await;
            let b = account.device("B").await;
            account.api.trust(a.token(), &a.id, &b.id).await.unwrap();
            let dir =
                std::env::temp_dir().join(format!("udc-restart-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("small.txt"), file_bytes(3000)).unwrap();
            let sent = transfer::send(
                &account.api,
                &mut a.token().to_owned(),
                &dir.join("small.txt"),
                &options(&dir, &b.id, account.file_keys()),
                &mut |_| {},
            )
            .await
            .unwrap();
            // Two parts of 5 MiB: stop after the first, as a killed agent would.
            let big = dir.join("big.bin");
            std::fs::write(&big, file_bytes(6 * 1024 * 1024)).unwrap();
            let (api, mut token, opts) = (
                account.api.clone(),
                a.token().to_owned(),
                options(&dir, &b.id, account.file_keys()),
            );
            let send = async move {
                let mut first = |p: transfer::Progress| {
                    if matches!(p, transfer::Progress::PartSent { .. }) {
                        panic!("stop after the first part");
                    }
                };
                transfer::send(&api, &mut token, &big, &opts, &mut first)
                    .await
                    .map(|_| ())
            };
            // A panic in the task ends it mid-send, as a killed agent would stop.
            let stopped = tokio::task::LocalSet::new()
                .run_until(async { tokio::task::spawn_local(send).await })
                .await;
            assert!(stopped.is_err(), "the send stopped after its first part");
            let saved = SavedFiles {
                sender: a.tokens,
                receiver: b.tokens,
                sent_id: sent.file.id,
                sha256: sent.file.sha256,
                account_key: account.account_key,
                dir,
            };
            std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();
        }
        Ok("after") => {
            let saved: SavedFiles =
                serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
            let api = client();
            let keys: Keys = std::sync::Arc::new(
                udc_agent::file_seal::FileKeys::new(&saved.account_key).unwrap(),
            );
            let got = transfer::receive(
                &api,
                &mut saved.receiver.access_token.clone(),
                &keys,
                &saved.sent_id,
                &saved.dir.join("in"),
                &mut |_| {},
            )
            .await
            .unwrap();
            assert_eq!(got.file.sha256, saved.sha256);
            assert_eq!(std::fs::read(&got.path).unwrap(), file_bytes(3000));
            let b_id = saved.receiver.device_id.clone().unwrap();
            let resumed = transfer::send(
                &api,
                &mut saved.sender.access_token.clone(),
                &saved.dir.join("big.bin"),
                &options(&saved.dir, &b_id, keys.clone()),
                &mut |_| {},
            )
            .await
            .unwrap();
            assert_eq!((resumed.resumed, resumed.parts_sent), (true, 1));
            assert_eq!(resumed.file.state, "available");
            std::fs::remove_dir_all(&saved.dir).unwrap();
        }
        _ => panic!(
            "set UDC_RESTART_PHASE=before, restart the host on the same storage, then =after"
        ),
    }
}
