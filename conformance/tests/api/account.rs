//! The account itself: the owner's list of sessions, signing sessions out (one, or every
//! other), the account key and changing the password, and deleting the account.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::json;
use udc_agent::client::AccountSession;
use udc_conformance::hub::*;
use udc_conformance::*;
use udc_hub::protocol::close;
use udc_hub::{ClientFrame, HubFrame};

fn session_of<'a>(all: &'a [AccountSession], device: &TestDevice) -> &'a AccountSession {
    all.iter()
        .find(|s| s.device_id.as_deref() == Some(device.id.as_str()))
        .unwrap_or_else(|| panic!("no session of device {} in {all:?}", device.id))
}

#[tokio::test]
async fn the_owner_sees_every_session_and_signs_one_or_all_others_out() {
    let account = Account::create().await;
    let first = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let tablet = account.device("Tablet").await;

    // The phone refreshes its tokens: its session is the one used last.
    let phone_tokens = account
        .api
        .refresh(&phone.tokens.refresh_token)
        .await
        .unwrap();
    let all = account.api.account_sessions(first.token()).await.unwrap();
    // The registration's own session (no device) and the three devices'; the sessions each
    // device's sign-in was swapped for are over and not listed.
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(all.iter().filter(|s| s.device_id.is_none()).count(), 1);
    assert_eq!(all[0].device_id.as_deref(), Some(phone.id.as_str()));
    assert!(all[0].last_used_at > all[0].created_at, "{:?}", all[0]);
    let current: Vec<_> = all.iter().filter(|s| s.is_current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].device_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(
        session_of(&all, &tablet).device_name.as_deref(),
        Some("Tablet")
    );
    for s in &all {
        assert!(
            s.client
                .as_deref()
                .is_some_and(|c| c.starts_with("udc-agent/")),
            "{s:?}"
        );
        assert!(s.client_ip.is_some(), "{s:?}");
    }
    let phone_session = session_of(&all, &phone).id.clone();
    let tablet_session = session_of(&all, &tablet).id.clone();

    // Another account sees none of these, and cannot end them.
    let stranger = Account::create().await;
    let theirs = stranger
        .api
        .account_sessions(&stranger.signed_in.tokens.access_token)
        .await
        .unwrap();
    assert!(theirs.iter().all(|s| s.id != phone_session));
    let foreign = stranger
        .raw(
            Method::DELETE,
            &format!("/account/sessions/{phone_session}"),
            Some(&stranger.signed_in.tokens.access_token),
            None,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);

    // A device nobody vouches for ends only its own session.
    for path in [
        format!("/account/sessions/{phone_session}"),
        "/account/sessions".into(),
    ] {
        let refused = account
            .raw(Method::DELETE, &path, Some(tablet.token()), None)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert_eq!(code(&refused), "device_not_trusted");
    }

    // The first device signs the phone out: at once, its tokens are dead.
    account
        .api
        .end_account_session(first.token(), &phone_session)
        .await
        .unwrap();
    let dead = account
        .raw(
            Method::GET,
            "/devices",
            Some(&phone_tokens.access_token),
            None,
        )
        .await;
    assert_eq!(dead.status, StatusCode::UNAUTHORIZED, "{}", dead.body);
    let refresh = account
        .raw(
            Method::POST,
            "/auth/token/refresh",
            None,
            Some(&json!({ "refresh_token": phone_tokens.refresh_token })),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED, "{}", refresh.body);
    let again = account
        .raw(
            Method::DELETE,
            &format!("/account/sessions/{phone_session}"),
            Some(first.token()),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);

    // The tablet signs itself out.
    account
        .api
        .end_account_session(tablet.token(), &tablet_session)
        .await
        .unwrap();

    // Everywhere else: the registration's session is the one left to end.
    let mut tablet_gone = account
        .raw(Method::GET, "/devices", Some(tablet.token()), None)
        .await;
    assert_eq!(tablet_gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        account.api.end_other_sessions(first.token()).await.unwrap(),
        1
    );
    tablet_gone = account
        .raw(
            Method::GET,
            "/devices",
            Some(&account.signed_in.tokens.access_token),
            None,
        )
        .await;
    assert_eq!(tablet_gone.status, StatusCode::UNAUTHORIZED);
    let left = account.api.account_sessions(first.token()).await.unwrap();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert!(left[0].is_current);
    // The stranger's own session is untouched.
    assert_eq!(
        stranger
            .api
            .account_sessions(&stranger.signed_in.tokens.access_token)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Signing a session out closes its sockets at once (4001), one or every other; the caller's
/// stays open.
#[tokio::test]
async fn signing_sessions_out_closes_their_sockets() {
    let account = Account::create().await;
    let first = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let tablet = account.device("Tablet").await;
    let mut sockets = Vec::new();
    for d in [&first, &phone, &tablet] {
        let mut s = connect(d, None).await;
        replay(&mut s).await;
        sockets.push(s);
    }
    let all = account.api.account_sessions(first.token()).await.unwrap();
    account
        .api
        .end_account_session(first.token(), &session_of(&all, &phone).id)
        .await
        .unwrap();
    assert_eq!(wait_closed(&mut sockets[1]).await, Some(close::REVOKED));
    account.api.end_other_sessions(first.token()).await.unwrap();
    assert_eq!(wait_closed(&mut sockets[2]).await, Some(close::REVOKED));
    // A password change ends the other sessions the same way.
    let watch = account.device("Watch").await;
    let mut watching = connect(&watch, None).await;
    replay(&mut watching).await;
    account
        .api
        .change_password(
            first.token(),
            &account.email,
            (PASSWORD, "another passphrase"),
            &account.account_key,
        )
        .await
        .unwrap();
    assert_eq!(wait_closed(&mut watching).await, Some(close::REVOKED));
    sockets[0].send(&ClientFrame::Ping).await.unwrap();
    wait_for(&mut sockets[0], "pong", |f| {
        matches!(f, HubFrame::Pong { .. })
    })
    .await;
}

/// Deleting the account, with the password: a wrong one deletes nothing; the right one ends
/// every token at once and erases everything (a stored file with a clipboard item sent as it
/// included: the object is gone from the store, its presigned URL, still signed, finds nothing),
/// the email registers again, and another account is untouched.
#[tokio::test]
async fn a_deleted_account_is_gone_at_once_with_its_files_and_its_email_is_free() {
    let account = Account::create().await;
    let desk = account.device("Desk").await;
    let data = format!("deleted with its account {}", uuid::Uuid::new_v4()).into_bytes();
    let file = upload_as(&account, &desk, "note.txt", &data, &data, None).await;
    let url = account
        .raw(
            Method::GET,
            &format!("/files/{file}/download"),
            Some(desk.token()),
            None,
        )
        .await;
    let url = url.body["url"].as_str().expect("a download URL").to_owned();
    let fetch = || async { reqwest::get(&url).await.expect("reach the store") };
    assert_eq!(
        fetch().await.bytes().await.unwrap().as_ref(),
        data.as_slice()
    );
    // A large clipboard copy travels as that file: its item refers to the file's row.
    let item = account
        .raw(
            Method::POST,
            "/sync/clipboard",
            Some(desk.token()),
            Some(&json!({ "content_type": "text/plain", "size": data.len(), "file_id": file })),
        )
        .await;
    assert_eq!(item.status, StatusCode::CREATED, "{}", item.body);
    let stranger = Account::create().await;
    let theirs = stranger.device("Theirs").await;

    let wrong = account
        .raw(
            Method::DELETE,
            "/account",
            Some(desk.token()),
            Some(&json!({ "auth_key": "d3JvbmctYXV0aC1rZXktdGhhdC1pcy0zMi1ieXRlcyE=" })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    assert_eq!(code(&wrong), "wrong_password");
    assert_eq!(
        account
            .raw(Method::GET, "/devices", Some(desk.token()), None)
            .await
            .status,
        StatusCode::OK
    );

    let remaining = account
        .api
        .delete_account(desk.token(), &account.email, PASSWORD)
        .await
        .unwrap();
    assert_eq!(remaining, None, "everything erased at once");
    for token in [desk.token(), account.signed_in.tokens.access_token.as_str()] {
        let dead = account
            .raw(Method::GET, "/devices", Some(token), None)
            .await;
        assert_eq!(dead.status, StatusCode::UNAUTHORIZED, "{}", dead.body);
    }
    assert_eq!(fetch().await.status(), StatusCode::NOT_FOUND);
    let again = account.api.register(&account.email, PASSWORD).await;
    assert!(
        again.is_ok(),
        "the email registers again: {:?}",
        again.err()
    );
    assert_eq!(
        stranger
            .raw(Method::GET, "/devices", Some(theirs.token()), None)
            .await
            .status,
        StatusCode::OK
    );
}

/// Deleting the account closes every socket it has at once (4001).
#[tokio::test]
async fn deleting_the_account_closes_its_sockets() {
    let account = Account::create().await;
    let a = account.device("A").await;
    let b = account.device("B").await;
    let mut sockets = Vec::new();
    for d in [&a, &b] {
        let mut s = connect(d, None).await;
        replay(&mut s).await;
        sockets.push(s);
    }
    account
        .api
        .delete_account(b.token(), &account.email, PASSWORD)
        .await
        .unwrap();
    for s in &mut sockets {
        assert_eq!(wait_closed(s).await, Some(close::REVOKED));
    }
}

/// A device signed in anew on an account with `password`: its account key.
async fn account_key_by(account: &Account, password: &str) -> Result<[u8; 32], String> {
    past_dev_proxy(|| account.api.login(&account.email, password))
        .await
        .map(|(_, keys)| keys.account_key)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_password_change_keeps_what_was_sealed_and_ends_the_other_sessions() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    // The account key is random and kept wrapped: never the password's own key.
    let signed = account.login().await;
    let wrapped = signed.wrapped_key.as_deref().expect("a wrapped key");
    let kdf = account.api.prelogin(&account.email).await.unwrap();
    let password_keys = udc_agent::kdf::derive(PASSWORD, &kdf).unwrap();
    assert_ne!(account.account_key, password_keys.enc_key);
    assert_eq!(
        udc_agent::seal::unwrap_account_key(&password_keys.enc_key, Some(wrapped)).unwrap(),
        account.account_key
    );
    let item = account
        .api
        .post_clipboard(phone.token(), &account.account_key, "text/plain", b"kept")
        .await
        .unwrap();
    // A file sealed before the change.
    let dir = std::env::temp_dir().join(format!("udc-pw-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("before.txt"), b"sealed before the change").unwrap();
    let opts = udc_agent::transfer::SendOptions {
        target_device_id: None,
        mime: None,
        parallel: 1,
        limit_rate: None,
        part_size: None,
        state_dir: dir.join("state"),
        keys: account.file_keys(),
    };
    let sent = udc_agent::transfer::send(
        &account.api,
        &mut laptop.token().to_owned(),
        &dir.join("before.txt"),
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap();
    let new_password = "a new and longer passphrase";
    let new_kdf = udc_agent::kdf::KdfParams::new_random().unwrap();
    let new_keys = udc_agent::kdf::derive(new_password, &new_kdf).unwrap();
    let new_code = udc_agent::recovery::RecoveryCode::generate().unwrap();
    let recovery = new_code
        .keys()
        .unwrap()
        .for_server(&account.account_key)
        .unwrap();
    let change = |auth_key: String, wrapped_key: String| {
        json!({
            "auth_key": auth_key, "new_auth_key": new_keys.auth_key_b64(), "kdf": new_kdf,
            "wrapped_key": wrapped_key, "recovery": recovery,
        })
    };
    let good_wrap =
        udc_agent::seal::wrap_account_key(&new_keys.enc_key, &account.account_key).unwrap();

    // A wrong current password, or a malformed wrapped key, changes nothing.
    let wrong = udc_agent::kdf::derive("not the password", &kdf).unwrap();
    let refused = account
        .raw(
            Method::POST,
            "/account/password",
            Some(laptop.token()),
            Some(&change(wrong.auth_key_b64(), good_wrap.clone())),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(code(&refused), "wrong_password");
    let malformed = account
        .raw(
            Method::POST,
            "/account/password",
            Some(laptop.token()),
            Some(&change(password_keys.auth_key_b64(), "AAAA".into())),
        )
        .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.body
    );
    assert_eq!(
        account_key_by(&account, PASSWORD).await,
        Ok(account.account_key)
    );

    let changed = account
        .raw(
            Method::POST,
            "/account/password",
            Some(laptop.token()),
            Some(&change(password_keys.auth_key_b64(), good_wrap)),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    // The phone's session, the registration's and the sign-ins of this test: all but the laptop's.
    assert!(
        changed.body["ended"].as_u64().unwrap() >= 2,
        "{}",
        changed.body
    );
    let phone_now = account
        .raw(Method::GET, "/devices", Some(phone.token()), None)
        .await;
    assert_eq!(
        phone_now.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        phone_now.body
    );
    assert_eq!(code(&phone_now), "session_revoked");
    assert_eq!(
        account
            .raw(Method::GET, "/devices", Some(laptop.token()), None)
            .await
            .status,
        StatusCode::OK,
        "the session that changed it goes on"
    );
    assert!(account_key_by(&account, PASSWORD).await.is_err());
    assert_eq!(
        account_key_by(&account, new_password).await,
        Ok(account.account_key),
        "the new password unwraps the same key"
    );
    let fetched = account
        .api
        .clipboard_item(laptop.token(), &item.id)
        .await
        .unwrap();
    assert_eq!(
        udc_agent::sync::open_item(&fetched, &account.account_key)
            .unwrap()
            .unwrap(),
        b"kept"
    );
    // The file opens with the key the new password unwraps.
    let keys =
        udc_agent::file_seal::FileKeys::new(&account_key_by(&account, new_password).await.unwrap())
            .unwrap();
    let got = udc_agent::transfer::receive(
        &account.api,
        &mut laptop.token().to_owned(),
        &keys,
        &sent.file.id,
        &dir.join("in"),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&got.path).unwrap(),
        b"sealed before the change"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // The recovery code changed with the password: the one made at registration is spent.
    let old_code = account.recovery.as_ref().unwrap();
    let spent = account.api.recover(&account.email, old_code, "x y z").await;
    assert_eq!(spent.unwrap_err().code(), Some("invalid_recovery_code"));
    // The same request again is the old password's: refused, nothing changes.
    let stale = account
        .raw(
            Method::POST,
            "/account/password",
            Some(laptop.token()),
            Some(&change(password_keys.auth_key_b64(), "A".repeat(96))),
        )
        .await;
    assert_eq!(code(&stale), "wrong_password", "{}", stale.body);
    assert_eq!(
        account_key_by(&account, new_password).await,
        Ok(account.account_key)
    );
}

#[tokio::test]
async fn an_account_made_before_account_keys_keeps_its_data_through_a_password_change() {
    // Registered as a client before account keys did: no wrapped key, enc_key seals.
    let account = Account::create_unwrapped().await;
    let kdf = account.api.prelogin(&account.email).await.unwrap();
    let keys = udc_agent::kdf::derive(PASSWORD, &kdf).unwrap();
    assert_eq!(account.account_key, keys.enc_key);
    assert_eq!(account.signed_in.wrapped_key, None);
    let desk = account.device("Desk").await;
    let item = account
        .api
        .post_clipboard(desk.token(), &keys.enc_key, "text/plain", b"sealed before")
        .await
        .unwrap();

    // The next sign-in wraps the key it has (enc_key) and keeps it.
    assert_eq!(account_key_by(&account, PASSWORD).await, Ok(keys.enc_key));
    let wrapped = account
        .login()
        .await
        .wrapped_key
        .expect("wrapped at the last sign-in");
    assert_eq!(
        udc_agent::seal::unwrap_account_key(&keys.enc_key, Some(&wrapped)).unwrap(),
        keys.enc_key
    );
    // Kept once: a second wrap is refused, and only with the password at all.
    let again = account
        .raw(
            Method::PUT,
            "/account/key",
            Some(desk.token()),
            Some(&json!({ "auth_key": keys.auth_key_b64(), "wrapped_key": wrapped })),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(code(&again), "key_exists");
    let unproven = account
        .raw(
            Method::PUT,
            "/account/key",
            Some(desk.token()),
            Some(&json!({ "auth_key": B64.encode([7u8; 32]), "wrapped_key": wrapped })),
        )
        .await;
    assert_eq!(code(&unproven), "wrong_password", "{}", unproven.body);

    let (ended, _) = account
        .api
        .change_password(
            desk.token(),
            &account.email,
            (PASSWORD, "the new one, long"),
            &keys.enc_key,
        )
        .await
        .unwrap();
    assert!(ended >= 1);
    assert_eq!(
        account_key_by(&account, "the new one, long").await,
        Ok(keys.enc_key)
    );
    let fetched = account
        .api
        .clipboard_item(desk.token(), &item.id)
        .await
        .unwrap();
    assert_eq!(
        udc_agent::sync::open_item(&fetched, &keys.enc_key)
            .unwrap()
            .unwrap(),
        b"sealed before"
    );
}

#[tokio::test]
async fn the_recovery_code_resets_a_lost_password_and_keeps_the_data() {
    let account = Account::create().await;
    let recovery = account
        .recovery
        .as_ref()
        .expect("a code made at registration");
    let desk = account.device("Desk").await;
    let item = account
        .api
        .post_clipboard(
            desk.token(),
            &account.account_key,
            "text/plain",
            b"recovered",
        )
        .await
        .unwrap();
    // A code needs the key it wraps: refused without one.
    let mut bare = json!({ "email": unique_email(), "auth_key": B64.encode([1u8; 32]) });
    bare["kdf"] = serde_json::to_value(udc_agent::kdf::KdfParams::new_random().unwrap()).unwrap();
    bare["recovery"] =
        serde_json::to_value(recovery.keys().unwrap().for_server(&[2u8; 32]).unwrap()).unwrap();
    let refused = account
        .raw(Method::POST, "/auth/register", None, Some(&bare))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let shown = account
        .raw(Method::GET, "/account", Some(desk.token()), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(shown.body["recovery_set_at"].is_string(), "{}", shown.body);
    assert_eq!(shown.body["user"]["email"], account.email.as_str());

    // A wrong code, or a right one for another email, is refused alike.
    let stranger = Account::create().await;
    let other = udc_agent::recovery::RecoveryCode::generate().unwrap();
    for (email, proof) in [
        (&account.email, other.keys().unwrap().auth_key_b64()),
        (&stranger.email, recovery.keys().unwrap().auth_key_b64()),
        (&unique_email(), recovery.keys().unwrap().auth_key_b64()),
    ] {
        let refused = account
            .raw(
                Method::POST,
                "/auth/recovery",
                None,
                Some(&json!({ "email": email, "recovery_auth_key": proof })),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert_eq!(code(&refused), "invalid_recovery_code");
    }

    let new_password = "found again with the code";
    let next = account
        .api
        .recover(&account.email, recovery, new_password)
        .await
        .unwrap();
    // The code used is spent; the new one made with the reset works.
    let spent = account.api.recover(&account.email, recovery, "again").await;
    assert_eq!(spent.unwrap_err().code(), Some("invalid_recovery_code"));
    let recovered_twice = "found a second time";
    account
        .api
        .recover(&account.email, &next, recovered_twice)
        .await
        .unwrap();
    let new_password = recovered_twice;
    let dead = account
        .raw(Method::GET, "/devices", Some(desk.token()), None)
        .await;
    assert_eq!(code(&dead), "session_revoked", "every session ended");
    assert!(account_key_by(&account, PASSWORD).await.is_err());
    assert_eq!(
        account_key_by(&account, new_password).await,
        Ok(account.account_key),
        "the same account key"
    );
    let (fresh, _) = account
        .api
        .login(&account.email, new_password)
        .await
        .unwrap();
    let fetched = account
        .api
        .clipboard_item(&fresh.tokens.access_token, &item.id)
        .await
        .unwrap();
    assert_eq!(
        udc_agent::sync::open_item(&fetched, &account.account_key)
            .unwrap()
            .unwrap(),
        b"recovered"
    );
    // The server never held the code's words, its proof or the account key in the clear.
    for secret in [
        recovery.words().unwrap().into_bytes(),
        recovery.keys().unwrap().auth_key_b64().into_bytes(),
        B64.encode(account.account_key).into_bytes(),
        account.account_key.to_vec(),
    ] {
        if let Some(found) = stored_files_containing(&secret) {
            assert!(found.is_empty(), "a secret in {found:?}");
        }
    }
}

#[tokio::test]
async fn a_new_recovery_code_replaces_the_last_one_and_needs_the_password() {
    let account = Account::create().await;
    let old = account.recovery.as_ref().unwrap();
    let desk = account.device("Desk").await;
    let refused = account
        .api
        .new_recovery_code(desk.token(), &account.email, "not it", &account.account_key)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("wrong_password"));
    let new = account
        .api
        .new_recovery_code(desk.token(), &account.email, PASSWORD, &account.account_key)
        .await
        .unwrap();
    let stale = account
        .api
        .recover(&account.email, old, "whatever it is")
        .await;
    assert_eq!(
        stale.unwrap_err().code(),
        Some("invalid_recovery_code"),
        "the last code stopped working"
    );
    assert_eq!(
        account_key_by(&account, PASSWORD).await,
        Ok(account.account_key),
        "nothing changed"
    );
    account
        .api
        .recover(&account.email, &new, "set with the new code")
        .await
        .unwrap();
    assert_eq!(
        account_key_by(&account, "set with the new code").await,
        Ok(account.account_key)
    );
}

/// The account's activity lists what happened to it, newest first, each with the device that
/// did it and the one it was done to; nothing of another account, and another account sees
/// none of it.
#[tokio::test]
async fn the_activity_lists_what_happened_to_the_account_in_order() {
    let account = Account::create().await;
    let stranger = Account::create().await;
    let refused = account.api.login(&account.email, "not the password").await;
    assert_eq!(refused.unwrap_err().code(), Some("invalid_credentials"));
    let guessed = udc_agent::recovery::RecoveryCode::generate().unwrap();
    let refused = account.api.recover(&account.email, &guessed, "x").await;
    assert_eq!(refused.unwrap_err().code(), Some("invalid_recovery_code"));
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    account
        .api
        .trust(laptop.token(), &laptop.id, &phone.id)
        .await
        .unwrap();
    let new_password = "a passphrase for the activity test";
    account
        .api
        .change_password(
            laptop.token(),
            &account.email,
            (PASSWORD, new_password),
            &account.account_key,
        )
        .await
        .unwrap();
    account
        .api
        .new_recovery_code(
            laptop.token(),
            &account.email,
            new_password,
            &account.account_key,
        )
        .await
        .unwrap();
    // A wrong password through a session is an attempt too.
    let refused = account
        .api
        .new_recovery_code(
            laptop.token(),
            &account.email,
            "a guess",
            &account.account_key,
        )
        .await;
    assert_eq!(refused.unwrap_err().code(), Some("wrong_password"));
    account
        .api
        .remove_device(laptop.token(), &phone.id)
        .await
        .unwrap();
    let theirs = stranger.device("Theirs").await;

    let activity = account
        .api
        .account_activity(laptop.token(), 200)
        .await
        .unwrap();
    let kinds: Vec<&str> = activity.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "device_removed",
            "sign_in_failed",
            "recovery_code_changed",
            "password_changed",
            "trust_added",
            "device_added",
            "signed_in",
            "device_added",
            "signed_in",
            "sign_in_failed",
            "sign_in_failed",
            "account_created",
        ]
    );
    let methods: Vec<&str> = activity
        .iter()
        .filter(|e| e.kind == "sign_in_failed")
        .map(|e| e.detail["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["session_password", "recovery_code", "password"]);
    assert_eq!(
        activity[1].device_id.as_deref(),
        Some(laptop.id.as_str()),
        "the session's device guessed"
    );
    let by_kind = |k: &str, n: usize| activity.iter().filter(|e| e.kind == k).nth(n).unwrap();
    assert_eq!(
        by_kind("device_removed", 0).device_name.as_deref(),
        Some("Laptop")
    );
    assert_eq!(
        by_kind("device_removed", 0).target_device_name.as_deref(),
        Some("Phone")
    );
    assert_eq!(
        by_kind("trust_added", 0).target_device_id.as_deref(),
        Some(phone.id.as_str())
    );
    assert_eq!(by_kind("signed_in", 0).detail["method"], "password");
    let failed = by_kind("sign_in_failed", 2);
    assert!(
        failed.client_ip.is_some() && failed.device_id.is_none(),
        "{failed:?}"
    );
    assert!(activity
        .windows(2)
        .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at));
    for entry in &activity {
        assert_ne!(entry.target_device_id.as_deref(), Some(theirs.id.as_str()));
    }

    let theirs_seen = stranger
        .api
        .account_activity(theirs.token(), 200)
        .await
        .unwrap();
    let kinds: Vec<&str> = theirs_seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["device_added", "signed_in", "account_created"]);

    // Paging: the newest two, then on from there.
    let page = account
        .raw(
            Method::GET,
            "/account/activity?limit=2",
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(page.body["activity"].as_array().unwrap().len(), 2);
    let before = page.body["next_before"].as_i64().unwrap();
    let next = account
        .raw(
            Method::GET,
            &format!("/account/activity?limit=2&before={before}"),
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(next.body["activity"][0]["kind"], "recovery_code_changed");
    let bad = account
        .raw(
            Method::GET,
            "/account/activity?limit=0",
            Some(laptop.token()),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
