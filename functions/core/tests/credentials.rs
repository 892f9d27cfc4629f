//! What the database keeps of a credential.
// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use udc_core::Sql;

/// What a stolen database holds: no auth key, no refresh token, nothing a client sent in
/// the clear that would let someone sign in without an Argon2id per guess.
#[test]
fn the_database_keeps_only_keyed_hashes_of_credentials() {
    let h = harness("hashes");
    let core = &h.core;
    pollster::block_on(async {
        let (status, answer) = post(
            core,
            "/auth/register",
            None,
            register_body("owner@example.com"),
        )
        .await;
        assert_eq!(status, 201);
        let auth_key = AUTH_KEY;
        let refresh = answer["tokens"]["refresh_token"].as_str().unwrap();

        let dump: String = core
            .ports
            .sql
            .query(udc_core::Stmt::new(
                "SELECT u.auth_hash || ' ' || t.token_hash FROM users u, refresh_tokens t",
                vec![],
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{r:?}"))
            .collect();
        use base64::Engine;
        let raw_key = base64::engine::general_purpose::STANDARD
            .decode(auth_key)
            .unwrap();
        for secret in [
            auth_key.to_owned(),
            hex::encode(&raw_key),
            refresh.to_owned(),
        ] {
            assert!(
                !dump.contains(&secret),
                "{secret} stored in the clear: {dump}"
            );
        }
    });
}
