use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::json;
use udc_conformance::*;

const MINUTE_MS: i64 = 60 * 1000;

#[tokio::test]
async fn register_login_and_prelogin_agree_on_the_accounts_kdf() {
    let account = Account::create().await;
    assert_eq!(account.signed_in.user.email, account.email);
    assert!(account.signed_in.tokens.device_id.is_none());

    let kdf = account.api.prelogin(&account.email).await.unwrap();
    assert_eq!(kdf.algorithm, "argon2id");
    assert!(kdf.memory_kib >= 19 * 1024 && kdf.iterations >= 2);
    // The same password derives the same auth key from the stored parameters: login works.
    let again = account.login().await;
    assert_eq!(again.user.id, account.user_id);
    // Emails are case-insensitive.
    let upper = account
        .api
        .login(&account.email.to_uppercase(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(upper.0.user.id, account.user_id);
}

#[tokio::test]
async fn prelogin_for_an_unknown_email_is_a_stable_decoy_of_the_same_shape() {
    let api = client();
    let known = Account::create().await;
    let real = api.prelogin(&known.email).await.unwrap();
    let ghost = unique_email();
    let decoy = api.prelogin(&ghost).await.unwrap();
    assert_eq!(
        decoy,
        api.prelogin(&ghost).await.unwrap(),
        "decoy must be deterministic"
    );
    assert_ne!(
        decoy.salt,
        api.prelogin(&unique_email()).await.unwrap().salt
    );
    assert_eq!(
        (
            decoy.algorithm.as_str(),
            decoy.memory_kib,
            decoy.iterations,
            decoy.parallelism
        ),
        (
            real.algorithm.as_str(),
            real.memory_kib,
            real.iterations,
            real.parallelism
        )
    );
    assert_eq!(decoy.salt.len(), real.salt.len());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_the_same_401() {
    let account = Account::create().await;
    let wrong = account
        .api
        .login(&account.email, "not the password")
        .await
        .unwrap_err();
    let unknown = account
        .api
        .login(&unique_email(), PASSWORD)
        .await
        .unwrap_err();
    for e in [&wrong, &unknown] {
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.code(), Some("invalid_credentials"));
    }
    // Alike in all but the request each names (its id, which tells nothing of the account).
    let said = |e: &udc_agent::client::Error| match e {
        udc_agent::client::Error::Api(a) => (a.status, a.code.clone(), a.message.clone()),
        other => panic!("not the server's answer: {other}"),
    };
    assert_eq!(said(&wrong), said(&unknown));
}

#[tokio::test]
async fn registering_an_email_twice_is_409_and_keeps_the_first_account() {
    let account = Account::create().await;
    let err = account
        .api
        .register(&account.email, "another password")
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("email_taken")));
    assert_eq!(account.login().await.user.id, account.user_id);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_whole_family() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let first = device.tokens.refresh_token.clone();
    let second = account.api.refresh(&first).await.unwrap();
    assert_ne!(second.refresh_token, first);
    assert_eq!(
        second.device_id.as_deref(),
        Some(device.id.as_str()),
        "refreshed tokens stay bound to the device"
    );
    account.api.devices(&second.access_token).await.unwrap();

    // The spent token again: reuse, and the family (including the fresh pair) is revoked.
    let reuse = account.api.refresh(&first).await.unwrap_err();
    assert_eq!(
        (reuse.status(), reuse.code()),
        (Some(401), Some("refresh_token_reused"))
    );
    let after = account
        .api
        .refresh(&second.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(
        (after.status(), after.code()),
        (Some(401), Some("session_revoked"))
    );
    let access = account.api.devices(&second.access_token).await.unwrap_err();
    assert_eq!(
        (access.status(), access.code()),
        (Some(401), Some("session_revoked"))
    );
    // Other sessions of the account are untouched.
    account.login().await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let api = client();
    for token in ["udcr_nope", "", &"x".repeat(500)] {
        let err = api.refresh(token).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some("invalid_refresh_token")),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn access_tokens_last_fifteen_minutes() {
    let account = Account::create().await;
    let device = account.device("Phone").await;
    let at = |offset_ms: i64| {
        let api = account.api.clone();
        let token = device.token().to_owned();
        async move {
            api.raw(
                Method::GET,
                "/devices",
                Some(&token),
                None,
                &[(CLOCK_HEADER, &offset_ms.to_string())],
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(at(14 * MINUTE_MS).await.status, StatusCode::OK);
    let expired = at(15 * MINUTE_MS + 1000).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&expired), "token_expired");
    // The refresh token still works then, and gives a token valid at that time.
    let fresh = account
        .api
        .raw(
            Method::POST,
            "/auth/token/refresh",
            None,
            Some(&json!({ "refresh_token": device.tokens.refresh_token })),
            &[(CLOCK_HEADER, &(15 * MINUTE_MS + 1000).to_string())],
        )
        .await
        .unwrap();
    assert_eq!(fresh.status, StatusCode::OK);
    let token = fresh.body["tokens"]["access_token"].as_str().unwrap();
    let later = account
        .api
        .raw(
            Method::GET,
            "/devices",
            Some(token),
            None,
            &[(CLOCK_HEADER, &(16 * MINUTE_MS).to_string())],
        )
        .await
        .unwrap();
    assert_eq!(later.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_tokens_expire_after_thirty_days() {
    let account = Account::create().await;
    let device = account.device("Tablet").await;
    let resp = account
        .api
        .raw(
            Method::POST,
            "/auth/token/refresh",
            None,
            Some(&json!({ "refresh_token": device.tokens.refresh_token })),
            &[(CLOCK_HEADER, &(30 * 24 * 60 * MINUTE_MS + 1000).to_string())],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&resp), "refresh_token_expired");
}

#[tokio::test]
async fn logout_ends_the_session_and_its_refresh_family() {
    let account = Account::create().await;
    let device = account.device("Desktop").await;
    account.api.logout(device.token()).await.unwrap();
    let access = account.api.devices(device.token()).await.unwrap_err();
    assert_eq!(
        (access.status(), access.code()),
        (Some(401), Some("session_revoked"))
    );
    let refresh = account
        .api
        .refresh(&device.tokens.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(refresh.status(), Some(401));
    // The device itself stays registered.
    let other = account.device("Other").await;
    let listed = account.api.devices(other.token()).await.unwrap();
    assert!(listed.iter().any(|d| d.id == device.id));
}

fn forged(header: serde_json::Value, claims: serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string()),
        B64URL.encode(signature)
    )
}

#[tokio::test]
async fn tokens_with_another_algorithm_key_or_signature_are_refused() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let real = device.token().to_owned();
    let parts: Vec<&str> = real.split('.').collect();
    let claims: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();

    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let candidates = [
        forged(
            json!({"alg": "none", "kid": header["kid"]}),
            claims.clone(),
            b"",
        ),
        forged(
            json!({"alg": "HS256", "kid": header["kid"]}),
            claims.clone(),
            &[7u8; 32],
        ),
        forged(
            json!({"alg": "EdDSA", "kid": "someone-else"}),
            claims.clone(),
            &B64URL.decode(parts[2]).unwrap(),
        ),
        // Real header and signature over different claims.
        format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(tampered_claims.to_string()),
            parts[2]
        ),
        format!("{}.{}", parts[0], parts[1]),
        "garbage".to_owned(),
    ];
    for token in &candidates {
        let resp = account
            .raw(Method::GET, "/devices", Some(token), None)
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(code(&resp), "invalid_token", "{token}");
    }
    let missing = account.raw(Method::GET, "/devices", None, None).await;
    assert_eq!(
        (missing.status, code(&missing)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let basic = account
        .api
        .raw(
            Method::GET,
            "/devices",
            None,
            None,
            &[("authorization", "Basic dTpw")],
        )
        .await
        .unwrap();
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
}

async fn login_attempt(
    api: &udc_agent::Client,
    email: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value, Option<String>) {
    login_with_cookie(api, email, password, None, headers).await
}

async fn login_with_cookie(
    api: &udc_agent::Client,
    email: &str,
    password: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value, Option<String>) {
    let kdf = api.prelogin(email).await.unwrap();
    let keys = udc_agent::kdf::derive(password, &kdf).unwrap();
    let mut body = json!({ "email": email, "auth_key": keys.auth_key_b64() });
    if let Some(c) = cookie {
        body["device_cookie"] = json!(c);
    }
    let resp = api
        .raw(Method::POST, "/auth/login", None, Some(&body), headers)
        .await
        .unwrap();
    let retry = resp
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status, resp.body, retry)
}

#[tokio::test]
async fn repeated_failures_for_one_email_are_throttled_until_the_window_ends() {
    let account = Account::create().await;
    for _ in 0..5 {
        let (status, _, _) = login_attempt(&account.api, &account.email, "wrong", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits.
    let (status, body, retry) = login_attempt(&account.api, &account.email, PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=15 * 60).contains(&secs), "Retry-After {secs}");
    // From another address too: the limit is on the email.
    let elsewhere = client();
    let (status, _, _) = login_attempt(&elsewhere, &account.email, PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Once the window has passed, the right password works.
    let later = (16 * MINUTE_MS).to_string();
    let (status, body, _) = login_attempt(
        &account.api,
        &account.email,
        PASSWORD,
        &[(CLOCK_HEADER, &later)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_successful_sign_in_resets_the_email_count() {
    let account = Account::create().await;
    for _ in 0..4 {
        login_attempt(&account.api, &account.email, "wrong", &[]).await;
    }
    account.login().await;
    for _ in 0..4 {
        let (status, _, _) = login_attempt(&account.api, &account.email, "wrong", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    account.login().await;
}

#[tokio::test]
async fn one_address_guessing_at_many_accounts_is_throttled() {
    let api = client(); // one client address for every attempt
    for _ in 0..20 {
        let (status, _, _) = login_attempt(&api, &unique_email(), "guess", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, retry) = login_attempt(&api, &unique_email(), "guess", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(retry.is_some());
    // Another address is not affected.
    let account = Account::create().await;
    account.login().await;
}

#[tokio::test]
async fn others_failed_guesses_never_lock_out_a_client_that_signed_in_before() {
    let account = Account::create().await;
    let cookie = account
        .signed_in
        .device_cookie
        .clone()
        .expect("a device cookie");
    // Someone else guesses at the email from their own address until it locks.
    let attacker = client();
    for _ in 0..5 {
        let (status, _, _) = login_attempt(&attacker, &account.email, "guess", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A client the account has never seen waits, even with the right password...
    let (status, _, _) = login_attempt(&client(), &account.email, PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...but the owner's own client signs in, even from the attacker's address.
    let (status, body, _) =
        login_with_cookie(&attacker, &account.email, PASSWORD, Some(&cookie), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["device_cookie"]
        .as_str()
        .expect("a new cookie")
        .to_owned();
    assert_ne!(fresh, cookie);
    // The presented cookie was spent; a cookie of another account counts for nothing.
    let (status, _, _) =
        login_with_cookie(&account.api, &account.email, PASSWORD, Some(&cookie), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let other = Account::create().await;
    let theirs = other.signed_in.device_cookie.clone().unwrap();
    let (status, _, _) =
        login_with_cookie(&account.api, &account.email, PASSWORD, Some(&theirs), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A cookie's own failures are counted on it: five, and it waits too.
    for _ in 0..5 {
        let (status, _, _) =
            login_with_cookie(&attacker, &account.email, "typo", Some(&fresh), &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) =
        login_with_cookie(&attacker, &account.email, PASSWORD, Some(&fresh), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sign_ups_from_one_address_are_counted_so_emails_cannot_be_probed_in_bulk() {
    let api = client(); // one client address for every attempt
    let taken = Account::create().await.email;
    for i in 0..10 {
        // Half probe an email that has an account (409), half create one.
        let email = if i % 2 == 0 {
            taken.clone()
        } else {
            unique_email()
        };
        let result = api.register(&email, PASSWORD).await;
        assert!(i % 2 == 1 || result.as_ref().err().and_then(|e| e.code()) == Some("email_taken"));
        assert!(i % 2 == 0 || result.is_ok(), "{:?}", result.err());
    }
    let refused = api.register(&unique_email(), PASSWORD).await.unwrap_err();
    assert_eq!(refused.status(), Some(429), "{refused}");
    assert_eq!(refused.code(), Some("rate_limited"));
    // Another address is not affected.
    Account::create().await;
}
