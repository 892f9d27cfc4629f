//! The directory: which account an email, and a sign-in approval request, belong to.
// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use http::Request;
use udc_core::{RequestContext, Sql, Stmt};

/// A sign-up as a host that keeps each account apart sends it: to the account it chose.
async fn register_as(
    core: &udc_core::Core<TestPorts>,
    email: &str,
    account: &str,
) -> (u16, serde_json::Value) {
    let req = Request::post("/auth/register")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&register_body(email)).unwrap())
        .unwrap();
    let ctx = RequestContext {
        account: Some(account.to_owned()),
        ..RequestContext::default()
    };
    let resp = core.handle(req, ctx).await;
    let json = serde_json::from_slice(resp.body()).unwrap_or_default();
    (resp.status().as_u16(), json)
}

async fn holder(core: &udc_core::Core<TestPorts>, email: &str) -> Option<String> {
    udc_core::directory::find_email(&core.ports.sql, email)
        .await
        .unwrap()
}

#[test]
fn a_sign_up_claims_its_email_and_takes_over_a_claim_whose_account_was_never_made() {
    let h = harness("directory-claims");
    let core = &h.core;
    pollster::block_on(async {
        let (status, made) =
            post(core, "/auth/register", None, register_body("a@example.com")).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(
            holder(core, "a@example.com").await.as_deref(),
            made["user"]["id"].as_str()
        );

        // A sign-up that claimed its email and stopped before making the account.
        let left = "0b6a3d2e-5f7c-4e1a-9d8b-2c4f6a8e0b1d";
        core.ports
            .sql
            .batch(vec![Stmt::new(
                "INSERT INTO account_directory (email, user_id, created_at) VALUES ('b@example.com', ?, 0)",
                vec![left.into()],
            )])
            .await
            .unwrap();
        let (status, made) =
            post(core, "/auth/register", None, register_body("b@example.com")).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["user"]["id"], left);
        let (status, again) =
            post(core, "/auth/register", None, register_body("b@example.com")).await;
        assert_eq!(
            (status, again["error"]["code"].as_str()),
            (409, Some("email_taken"))
        );
    });
}

#[test]
fn a_sign_up_routed_to_an_account_makes_that_account_unless_the_email_is_anothers() {
    let h = harness("directory-routed");
    let core = &h.core;
    pollster::block_on(async {
        let first = "4d2f8b1a-6c3e-4f5a-8b7d-9e0a1c2b3d4e";
        let (status, made) = register_as(core, "c@example.com", first).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["user"]["id"], first);
        let refresh = made["tokens"]["refresh_token"].as_str().unwrap();
        assert_eq!(udc_core::tokens::refresh_account(refresh), Some(first));
        // Another account chosen for the same email, as by a host whose look-up raced the
        // claim: refused, and the email stays the first account's.
        let (status, refused) = register_as(
            core,
            "c@example.com",
            "7e1d2c3b-4a5f-4e6d-8c7b-0a9f8e7d6c5b",
        )
        .await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (409, Some("email_taken"))
        );
        assert_eq!(holder(core, "c@example.com").await.as_deref(), Some(first));

        // A deleted account whose erasure stopped before its email was freed: a sign-up to the
        // email reaches it, and is refused (409), not failed on the tombstone's id.
        let (gone, token) = account_with_device(core, "e@example.com").await;
        let body = serde_json::json!({ "auth_key": AUTH_KEY });
        let (status, _) = call(core, "DELETE", "/account", Some(&token), Some(body)).await;
        assert_eq!(status, 204);
        core.ports
            .sql
            .batch(vec![
                Stmt::new(
                    "INSERT INTO users (id, email, kdf_algorithm, kdf_memory_kib, kdf_iterations, \
                     kdf_parallelism, kdf_salt, auth_hash, created_at, updated_at, deleted_at) \
                     VALUES (?, 'deleted:' || ?, 'argon2id', 19456, 2, 1, '', '', 0, 0, 0)",
                    vec![gone.as_str().into(), gone.as_str().into()],
                ),
                Stmt::new(
                    "INSERT INTO account_directory (email, user_id, created_at) VALUES ('e@example.com', ?, 0)",
                    vec![gone.as_str().into()],
                ),
            ])
            .await
            .unwrap();
        let (status, refused) = register_as(core, "e@example.com", &gone).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (409, Some("email_taken")),
            "{refused}"
        );
    });
}

#[test]
fn an_approval_request_records_where_it_went_known_email_or_not() {
    let h = harness("directory-approvals");
    let core = &h.core;
    pollster::block_on(async {
        let (user, _) = account_with_device(core, "d@example.com").await;
        let key = format!("{}=", "A".repeat(43));
        for (email, account) in [("d@example.com", Some(user)), ("nobody@example.com", None)] {
            let (status, asked) = post(
                core,
                "/auth/approval/request",
                None,
                serde_json::json!({ "email": email, "device_name": "New", "public_key": key }),
            )
            .await;
            assert_eq!(status, 201, "{asked}");
            let id = asked["request_id"].as_str().unwrap();
            let found = udc_core::directory::find_approval(&core.ports.sql, id)
                .await
                .unwrap();
            assert_eq!(found, Some(account));
        }
    });
}
