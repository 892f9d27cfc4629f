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
