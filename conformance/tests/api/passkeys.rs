//! Passkeys, with a software authenticator (`udc_conformance::passkey`): added with the
//! password, signing in without it and handing back the account key it wraps; every ceremony
//! that does not hold is refused, and says why.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use udc_conformance::passkey::SoftPasskey;
use udc_conformance::*;

async fn password_proof(account: &Account) -> String {
    let kdf = account.api.prelogin(&account.email).await.unwrap();
    udc_agent::kdf::derive(PASSWORD, &kdf)
        .unwrap()
        .auth_key_b64()
}

async fn post(
    account: &Account,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let r = account.raw(Method::POST, path, token, Some(body)).await;
    (r.status, r.body)
}

/// Registers `key` on the account through `token`, with `wrapped_key`; the answer.
async fn add(
    account: &Account,
    token: &str,
    key: &SoftPasskey,
    proof: &str,
    wrapped: Option<&str>,
) -> (StatusCode, Value) {
    let (status, options) = post(
        account,
        "/auth/webauthn/register/options",
        Some(token),
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let (client_data_json, attestation_object) =
        key.register(options["challenge"].as_str().unwrap());
    post(
        account,
        "/auth/webauthn/register",
        Some(token),
        &json!({
            "auth_key": proof, "name": "Test key", "client_data_json": client_data_json,
            "attestation_object": attestation_object, "wrapped_key": wrapped,
        }),
    )
    .await
}

/// A sign-in with `key`, over a fresh challenge, for the account's own user handle.
async fn sign_in(account: &Account, key: &SoftPasskey) -> (StatusCode, Value) {
    let challenge = sign_in_challenge(account).await;
    post(
        account,
        "/auth/webauthn/login",
        None,
        &key.assert(&challenge, &account.user_id),
    )
    .await
}

async fn remove(account: &Account, token: &str, id: &str) -> udc_agent::client::RawResponse {
    account
        .raw(
            Method::DELETE,
            &format!("/account/passkeys/{id}"),
            Some(token),
            None,
        )
        .await
}

async fn sign_in_challenge(account: &Account) -> String {
    let (status, options) = post(account, "/auth/webauthn/login/options", None, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    options["challenge"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_passkey_added_with_the_password_signs_in_and_hands_back_the_key_it_wraps() {
    let account = Account::create().await;
    let token = account.login().await.tokens.access_token;
    let key = SoftPasskey::new();
    let prf_key = [3u8; 32];
    let wrapped = udc_agent::seal::wrap_account_key(&prf_key, &account.account_key).unwrap();
    let (status, added) = add(
        &account,
        &token,
        &key,
        &password_proof(&account).await,
        Some(&wrapped),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(
        (added["name"].as_str(), added["unlocks"].as_bool()),
        (Some("Test key"), Some(true))
    );
    let listed = account
        .raw(Method::GET, "/account/passkeys", Some(&token), None)
        .await;
    assert_eq!(
        listed.body["passkeys"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );

    // Signing in takes no password and no email: the passkey names the account.
    let challenge = sign_in_challenge(&account).await;
    let answer = key.assert(&challenge, &account.user_id);
    let (status, signed) = post(&account, "/auth/webauthn/login", None, &answer).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["user"]["email"], json!(account.email));
    assert_eq!(signed["passkey"]["id"], added["id"]);
    let back = signed["wrapped_key"].as_str().unwrap();
    assert_eq!(
        udc_agent::seal::unwrap_account_key(&prf_key, Some(back)).unwrap(),
        account.account_key
    );
    let session_token = signed["tokens"]["access_token"].as_str().unwrap();
    let devices = account
        .raw(Method::GET, "/devices", Some(session_token), None)
        .await;
    assert_eq!(
        devices.status,
        StatusCode::OK,
        "the session works: {}",
        devices.body
    );

    // The same answer again: its challenge is spent.
    let (status, again) = post(&account, "/auth/webauthn/login", None, &answer).await;
    assert_eq!(
        (status, code_of(&again)),
        (StatusCode::UNAUTHORIZED, "passkey_refused"),
        "{again}"
    );

    let activity = account
        .raw(Method::GET, "/account/activity", Some(&token), None)
        .await;
    let kinds: Vec<(&str, &str)> = activity.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["detail"]["method"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(kinds.contains(&("passkey_added", "")), "{kinds:?}");
    assert!(kinds.contains(&("signed_in", "passkey")), "{kinds:?}");

    // Removed, it signs in no more.
    let id = added["id"].as_str().unwrap();
    let removed = remove(&account, &token, id).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let (status, gone) = sign_in(&account, &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{gone}");

    // A new password removes every passkey: one made by whoever knew the old password would
    // still unwrap the same account key.
    let second = SoftPasskey::new();
    let (status, _) = add(
        &account,
        &token,
        &second,
        &password_proof(&account).await,
        Some(&wrapped),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    account
        .api
        .change_password(
            &token,
            &account.email,
            (PASSWORD, "a new passphrase, long"),
            &account.account_key,
        )
        .await
        .unwrap();
    let listed = account
        .raw(Method::GET, "/account/passkeys", Some(&token), None)
        .await;
    assert_eq!(listed.body["passkeys"], json!([]), "{}", listed.body);
    let (status, gone) = sign_in(&account, &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{gone}");
}

/// A sign-in the server refuses (401 `passkey_refused`): its message.
async fn refused(account: &Account, body: Value) -> String {
    let (status, answer) = post(account, "/auth/webauthn/login", None, &body).await;
    assert_eq!(
        (status, code_of(&answer)),
        (StatusCode::UNAUTHORIZED, "passkey_refused"),
        "{answer}"
    );
    answer["error"]["message"].as_str().unwrap().to_owned()
}

fn code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn passkey_ceremonies_that_do_not_hold_are_refused() {
    let account = Account::create().await;
    let token = account.login().await.tokens.access_token;
    let proof = password_proof(&account).await;

    // Adding one takes the password.
    let (status, body) = add(
        &account,
        &token,
        &SoftPasskey::new(),
        "d3JvbmctYXV0aC1rZXktdGhhdC1pcy0zMi1ieXRlcyE=",
        None,
    )
    .await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::FORBIDDEN, "wrong_password"),
        "{body}"
    );
    // Made on another site than it says, or without the person verified: refused.
    for (tweak, why) in [
        (
            Box::new(|k: &mut SoftPasskey| k.origin = "https://evil.example".into())
                as Box<dyn Fn(&mut SoftPasskey)>,
            "another site",
        ),
        (
            Box::new(|k: &mut SoftPasskey| k.origin = "http://udc.example".into()),
            "https",
        ),
        (
            Box::new(|k: &mut SoftPasskey| k.flags = 0x01),
            "verify the person",
        ),
    ] {
        let mut key = SoftPasskey::new();
        tweak(&mut key);
        let (status, body) = add(&account, &token, &key, &proof, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    // A sign-in challenge does not register.
    let key = SoftPasskey::new();
    let (client_data_json, attestation_object) = key.register(&sign_in_challenge(&account).await);
    let (status, body) = post(&account, "/auth/webauthn/register", Some(&token), &json!({
        "auth_key": proof, "name": "Key", "client_data_json": client_data_json, "attestation_object": attestation_object,
    })).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_refused"),
        "{body}"
    );

    let (status, added) = add(&account, &token, &key, &proof, None).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["unlocks"], json!(false));
    // The same credential twice: 409.
    let (status, body) = add(&account, &token, &key, &proof, None).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::CONFLICT, "passkey_not_added"),
        "{body}"
    );

    // Signed by another key.
    let impostor = SoftPasskey::new();
    let why = refused(
        &account,
        key.assert_with(
            &sign_in_challenge(&account).await,
            &impostor,
            &account.user_id,
        ),
    )
    .await;
    assert!(why.contains("signature"), "{why}");
    // For another account.
    let why = refused(
        &account,
        key.assert(
            &sign_in_challenge(&account).await,
            &uuid::Uuid::new_v4().to_string(),
        ),
    )
    .await;
    // Where each account's data is apart (Workers: its own object), the handle picks the
    // account, which has no such passkey.
    assert!(
        why.contains("another account") || why.contains("not registered with an account"),
        "{why}"
    );
    // From another site's page, or signed for another site.
    let mut elsewhere = key.impostor_of();
    elsewhere.origin = "https://evil.example".into();
    let forged = elsewhere.assert_with(&sign_in_challenge(&account).await, &key, &account.user_id);
    assert!(refused(&account, forged).await.contains("belongs to"));
    // A challenge the server did not make, or one that expired.
    let why = refused(
        &account,
        key.assert("bm90LWEtY2hhbGxlbmdl", &account.user_id),
    )
    .await;
    assert!(why.contains("challenge"), "{why}");
    let old = sign_in_challenge(&account).await;
    let late = account
        .api
        .raw(
            Method::POST,
            "/auth/webauthn/login",
            None,
            Some(&key.assert(&old, &account.user_id)),
            &[(CLOCK_HEADER, "600000")],
        )
        .await
        .unwrap();
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", late.body);
    // Not registered here.
    let why = refused(
        &account,
        SoftPasskey::new().assert(&sign_in_challenge(&account).await, &account.user_id),
    )
    .await;
    assert!(why.contains("not registered"), "{why}");

    // A counter that goes back says a copy signed.
    let mut key = key;
    key.sign_count = 5;
    let (status, ok) = post(
        &account,
        "/auth/webauthn/login",
        None,
        &key.assert(&sign_in_challenge(&account).await, &account.user_id),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert!(
        ok["wrapped_key"].is_null() && ok["tokens"].is_null(),
        "this passkey unlocks nothing, so it starts no session: {ok}"
    );
    key.sign_count = 4;
    let why = refused(
        &account,
        key.assert(&sign_in_challenge(&account).await, &account.user_id),
    )
    .await;
    assert!(why.contains("counter"), "{why}");

    // Guesses at the password do not lock the owner out of the passkey.
    key.sign_count = 6;
    for _ in 0..6 {
        let guess = account
            .api
            .raw(
                Method::POST,
                "/auth/login",
                None,
                Some(&json!({
                    "email": account.email,
                    "auth_key": "d3JvbmctYXV0aC1rZXktdGhhdC1pcy0zMi1ieXRlcyE=",
                })),
                &[],
            )
            .await
            .unwrap();
        assert_ne!(guess.status, StatusCode::OK);
    }
    let (status, body) = sign_in(&account, &key).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a passkey is no password to guess: {body}"
    );

    // Another account cannot see or remove it.
    let other = Account::create().await;
    let other_token = other.login().await.tokens.access_token;
    let id = added["id"].as_str().unwrap();
    let removed = remove(&other, &other_token, id).await;
    assert_eq!(removed.status, StatusCode::NOT_FOUND, "{}", removed.body);
    let listed = other
        .raw(Method::GET, "/account/passkeys", Some(&other_token), None)
        .await;
    assert_eq!(listed.body["passkeys"], json!([]));
}
