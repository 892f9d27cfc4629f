//! Deleting an account leaves nothing of it in the database.
// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use serde_json::json;

/// Every text value in every table of the database, with its table.
async fn every_text(h: &Harness) -> Vec<(String, String)> {
    let core = &h.core;
    let tables = texts(
        core,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .await;
    let mut all = Vec::new();
    for table in tables {
        let conn = rusqlite::Connection::open(h.dir.join("udc.sqlite3")).unwrap();
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                if let Ok(text) = row.get::<_, String>(i) {
                    all.push((table.clone(), text));
                }
            }
        }
    }
    all
}

/// Where the hub keeps its log apart (the Worker's Durable Object): the user ids its tables
/// hold.
const HUB_USERS: &str = "SELECT user_id FROM hub_events UNION ALL SELECT user_id FROM hub_seq \
     UNION ALL SELECT user_id FROM hub_presence UNION ALL SELECT user_id FROM hub_outbox";

/// An account with devices, trust, a clipboard item, settings and a handoff, deleted with its
/// password: nothing in any table names it or its email any more (its tombstone included),
/// its tokens are dead, the email registers again, and another account is untouched.
#[test]
fn a_deleted_account_leaves_nothing_in_the_database() {
    deletes_everything(harness("delete-account"));
}

/// The same where the hub's log is apart: the hub forgets the account too.
#[test]
fn a_deleted_account_leaves_nothing_in_the_hub_kept_apart() {
    deletes_everything(harness_apart("delete-account-apart"));
}

fn deletes_everything(h: Harness) {
    let core = &h.core;
    let apart = !udc_core::Hub::logs_in_sql(&core.ports.hub);
    pollster::block_on(async {
        let email = "gone@example.com";
        let (user, desk_token) = account_with_device(core, email).await;
        let (kept, _) = account_with_device(core, "kept@example.com").await;
        let (status, _) = post(
            core,
            "/sync/settings",
            Some(&desk_token),
            json!({ "namespace": "ui", "key": "theme", "value": "dark", "base_version": 0 }),
        )
        .await;
        assert_eq!(status, 200);
        let sealed = "A".repeat(64);
        let (status, item) = post(
            core,
            "/sync/clipboard",
            Some(&desk_token),
            json!({ "content_type": "text/plain", "size": 8, "ciphertext": sealed }),
        )
        .await;
        assert_eq!(status, 201, "{item}");
        assert!(every_text(&h).await.iter().any(|(_, t)| t.contains(&user)));
        if apart {
            assert!(hub_texts(core, HUB_USERS).contains(&user));
        }

        // A wrong password deletes nothing.
        let wrong = json!({ "auth_key": "d3JvbmctYXV0aC1rZXktdGhhdC1pcy0zMi1ieXRlcyE=" });
        let (status, refused) =
            call(core, "DELETE", "/account", Some(&desk_token), Some(wrong)).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (403, Some("wrong_password"))
        );

        let (status, body) = call(
            core,
            "DELETE",
            "/account",
            Some(&desk_token),
            Some(json!({ "auth_key": AUTH_KEY })),
        )
        .await;
        assert_eq!(status, 204, "{body}");
        let left: Vec<_> = every_text(&h)
            .await
            .into_iter()
            .filter(|(_, t)| t.contains(&user) || t.contains(email))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        if apart {
            assert!(!hub_texts(core, HUB_USERS).contains(&user));
        }
        let (status, _) = call(core, "GET", "/devices", Some(&desk_token), None).await;
        assert_eq!(status, 401);
        let (status, _) = post(core, "/auth/register", None, register_body(email)).await;
        assert_eq!(status, 201, "the email registers again");
        assert!(every_text(&h).await.iter().any(|(_, t)| t.contains(&kept)));
    });
}
