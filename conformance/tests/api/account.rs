//! The account itself: the owner's list of sessions, signing sessions out (one, or every
//! other), and deleting the account.

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
