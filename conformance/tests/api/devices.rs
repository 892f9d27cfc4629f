use reqwest::{Method, StatusCode};
use serde_json::json;
use udc_conformance::*;

#[tokio::test]
async fn registering_a_device_binds_new_tokens_and_ends_the_device_less_session() {
    let account = Account::create().await;
    let signed = account.login().await;
    let reg = account
        .api
        .register_device(&signed.tokens.access_token, &device_info("MacBook Pro"))
        .await
        .unwrap();
    assert_eq!(reg.device.name, "MacBook Pro");
    assert_eq!(reg.device.platform, "linux");
    assert_eq!(reg.device.capabilities, vec!["clipboard", "files"]);
    assert!(reg.device.is_current);
    assert_eq!(
        reg.tokens.device_id.as_deref(),
        Some(reg.device.id.as_str())
    );

    let old = account
        .api
        .devices(&signed.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(
        (old.status(), old.code()),
        (Some(401), Some("session_revoked"))
    );
    let listed = account.api.devices(&reg.tokens.access_token).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], reg.device);

    // A device-bound session cannot register another device.
    let again = account
        .api
        .register_device(&reg.tokens.access_token, &device_info("Second"))
        .await
        .unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("device_already_registered"))
    );
}

#[tokio::test]
async fn list_get_and_update_devices() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;

    let listed = account.api.devices(laptop.token()).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![laptop.id.as_str(), phone.id.as_str()],
        "oldest first"
    );
    assert!(listed[0].is_current && !listed[1].is_current);

    let got = account.api.device(laptop.token(), &phone.id).await.unwrap();
    assert_eq!(got.name, "Phone");
    assert!(!got.is_current);

    let renamed = account
        .api
        .update_device(
            laptop.token(),
            &phone.id,
            &json!({ "name": "  Pixel 9  ", "capabilities": ["clipboard", "biometric", "clipboard"], "app_version": "0.2.0" }),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Pixel 9");
    assert_eq!(renamed.capabilities, vec!["clipboard", "biometric"]);
    assert_eq!(renamed.app_version, "0.2.0");
    assert_eq!(renamed.os_version, "Debian 12", "fields not sent are kept");
    assert_eq!(
        account.api.device(phone.token(), &phone.id).await.unwrap(),
        {
            let mut mine = renamed.clone();
            mine.is_current = true;
            mine
        }
    );

    let empty = account
        .raw(
            Method::PUT,
            &format!("/devices/{}", phone.id),
            Some(laptop.token()),
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        (empty.status, code(&empty)),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );
}

#[tokio::test]
async fn removing_a_device_ends_its_tokens_at_once_and_only_its_own() {
    let account = Account::create().await;
    let keep = account.device("Keep").await;
    let gone = account.device("Gone").await;
    account
        .api
        .trust(keep.token(), &keep.id, &gone.id)
        .await
        .unwrap();

    account
        .api
        .remove_device(keep.token(), &gone.id)
        .await
        .unwrap();
    let access = account.api.devices(gone.token()).await.unwrap_err();
    assert_eq!(
        (access.status(), access.code()),
        (Some(401), Some("session_revoked"))
    );
    let refresh = account
        .api
        .refresh(&gone.tokens.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(
        (refresh.status(), refresh.code()),
        (Some(401), Some("session_revoked"))
    );

    let listed = account.api.devices(keep.token()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].trusts.is_empty(),
        "trust links to a removed device go with it"
    );
    let get = account
        .raw(
            Method::GET,
            &format!("/devices/{}", gone.id),
            Some(keep.token()),
            None,
        )
        .await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    let again = account
        .raw(
            Method::DELETE,
            &format!("/devices/{}", gone.id),
            Some(keep.token()),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // A device may remove itself; that ends its own session.
    account
        .api
        .remove_device(keep.token(), &keep.id)
        .await
        .unwrap();
    assert_eq!(
        account
            .api
            .devices(keep.token())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
}

#[tokio::test]
async fn trust_is_directed_and_only_the_truster_adds_it() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;

    let path = format!("/devices/{}/trust", laptop.id);
    let created = account
        .raw(
            Method::POST,
            &path,
            Some(laptop.token()),
            Some(&json!({ "target_device_id": phone.id })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let repeated = account
        .raw(
            Method::POST,
            &path,
            Some(laptop.token()),
            Some(&json!({ "target_device_id": phone.id })),
        )
        .await;
    assert_eq!(
        repeated.status,
        StatusCode::OK,
        "trusting twice is idempotent"
    );

    let l = account
        .api
        .device(laptop.token(), &laptop.id)
        .await
        .unwrap();
    let p = account.api.device(laptop.token(), &phone.id).await.unwrap();
    assert_eq!((l.trusts, l.trusted_by.len()), (vec![phone.id.clone()], 0));
    assert_eq!((p.trusts.len(), p.trusted_by), (0, vec![laptop.id.clone()]));

    // The phone cannot make the laptop trust it, nor anything else on the laptop's behalf.
    let forged = account
        .raw(
            Method::POST,
            &path,
            Some(phone.token()),
            Some(&json!({ "target_device_id": phone.id })),
        )
        .await;
    assert_eq!(
        (forged.status, code(&forged)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // A fresh password sign-in (no device) may.
    let fresh = account.login().await;
    account
        .api
        .trust(&fresh.tokens.access_token, &phone.id, &laptop.id)
        .await
        .unwrap();

    let own = account
        .raw(
            Method::POST,
            &path,
            Some(laptop.token()),
            Some(&json!({ "target_device_id": laptop.id })),
        )
        .await;
    assert_eq!(
        (own.status, code(&own)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    let unknown = account
        .raw(
            Method::POST,
            &path,
            Some(laptop.token()),
            Some(&json!({ "target_device_id": uuid::Uuid::new_v4().to_string() })),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Any device of the account may revoke; revoking twice is 404.
    account
        .api
        .untrust(phone.token(), &laptop.id, &phone.id)
        .await
        .unwrap();
    let again = account
        .api
        .untrust(phone.token(), &laptop.id, &phone.id)
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(404));
    assert!(account
        .api
        .device(laptop.token(), &laptop.id)
        .await
        .unwrap()
        .trusts
        .is_empty());
}

#[tokio::test]
async fn another_accounts_devices_are_not_found() {
    let alice = Account::create().await;
    let bob = Account::create().await;
    let a1 = alice.device("Alice laptop").await;
    let a2 = alice.device("Alice phone").await;
    let b1 = bob.device("Bob laptop").await;

    let listed = bob.api.devices(b1.token()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, b1.id);

    let a = &a1.id;
    let attempts = [
        (Method::GET, format!("/devices/{a}"), None),
        (
            Method::PUT,
            format!("/devices/{a}"),
            Some(json!({ "name": "mine now" })),
        ),
        (Method::DELETE, format!("/devices/{a}"), None),
        (
            Method::POST,
            format!("/devices/{a}/trust"),
            Some(json!({ "target_device_id": b1.id })),
        ),
        (
            Method::DELETE,
            format!("/devices/{a}/trust/{}", a2.id),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let resp = bob
            .raw(method.clone(), &path, Some(b1.token()), body.as_ref())
            .await;
        assert_eq!(
            resp.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            resp.body
        );
        assert_eq!(code(&resp), "not_found");
    }
    // Bob cannot point his own device's trust at Alice's either.
    let cross = bob
        .raw(
            Method::POST,
            &format!("/devices/{}/trust", b1.id),
            Some(b1.token()),
            Some(&json!({ "target_device_id": a1.id })),
        )
        .await;
    assert_eq!(cross.status, StatusCode::NOT_FOUND);

    // And nothing of Alice's changed.
    let mine = alice.api.devices(a1.token()).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].name, "Alice laptop");
    alice.api.devices(a2.token()).await.unwrap();
}

#[tokio::test]
async fn a_device_nobody_trusts_acts_on_itself_only() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let rogue = account.device("Rogue").await;
    account
        .api
        .trust(phone.token(), &phone.id, &laptop.id)
        .await
        .unwrap();
    let refused = |r: &udc_agent::client::RawResponse| {
        assert_eq!(
            (r.status, code(r)),
            (StatusCode::FORBIDDEN, "device_not_trusted"),
            "{}",
            r.body
        );
    };

    // Removing the devices that vouch for the account (the laptop: first and trusted; the
    // phone) would leave the rogue as the only device: refused.
    for victim in [&laptop, &phone] {
        let r = account
            .raw(
                Method::DELETE,
                &format!("/devices/{}", victim.id),
                Some(rogue.token()),
                None,
            )
            .await;
        refused(&r);
    }
    // Nor may it change another device: its name, or clear or set its biometric check.
    for body in [
        json!({ "capabilities": ["biometric"] }),
        json!({ "name": "Mine now" }),
    ] {
        let r = account
            .raw(
                Method::PUT,
                &format!("/devices/{}", phone.id),
                Some(rogue.token()),
                Some(&body),
            )
            .await;
        refused(&r);
    }
    // Nor strip the trust that vouches for the laptop.
    let r = account
        .raw(
            Method::DELETE,
            &format!("/devices/{}/trust/{}", phone.id, laptop.id),
            Some(rogue.token()),
            None,
        )
        .await;
    refused(&r);
    let listed = account.api.devices(laptop.token()).await.unwrap();
    assert_eq!(listed.len(), 3);
    let phone_now = listed.iter().find(|d| d.id == phone.id).unwrap();
    assert_eq!(
        (phone_now.name.as_str(), phone_now.trusts.clone()),
        ("Phone", vec![laptop.id.clone()])
    );

    // Itself it may rename; the trusted laptop may remove it.
    let r = account
        .raw(
            Method::PUT,
            &format!("/devices/{}", rogue.id),
            Some(rogue.token()),
            Some(&json!({ "name": "Old tablet" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    account
        .api
        .remove_device(laptop.token(), &rogue.id)
        .await
        .unwrap();
    // The phone declines the trust it gave (the trusting device may always withdraw it).
    account
        .api
        .untrust(phone.token(), &phone.id, &laptop.id)
        .await
        .unwrap();
    // The first device's standing is its own: once it is gone, the next oldest (the phone,
    // which nobody trusts) does not inherit it.
    let tablet = account.device("Tablet").await;
    account
        .api
        .remove_device(laptop.token(), &laptop.id)
        .await
        .unwrap();
    let r = account
        .raw(
            Method::DELETE,
            &format!("/devices/{}", tablet.id),
            Some(phone.token()),
            None,
        )
        .await;
    refused(&r);
}

/// Every change takes an Idempotency-Key: a retried rename answers as the first did and is
/// announced once; the key means one request (another body is refused, another path is
/// another request); a retried removal of a trust link answers the same.
#[tokio::test]
async fn a_retried_change_with_its_key_changes_nothing_twice() {
    let account = Account::create().await;
    let laptop = account.device("Laptop").await;
    let phone = account.device("Phone").await;
    let keyed =
        |method: Method, path: String, body: Option<serde_json::Value>, key: &'static str| {
            let api = account.api.clone();
            let token = laptop.token().to_owned();
            async move {
                api.raw(
                    method,
                    &path,
                    Some(&token),
                    body.as_ref(),
                    &[("Idempotency-Key", key)],
                )
                .await
                .unwrap()
            }
        };
    let rename = |id: &str, name: &str| {
        keyed(
            Method::PUT,
            format!("/devices/{id}"),
            Some(json!({ "name": name })),
            "rename-1",
        )
    };
    let first = rename(&laptop.id, "Desk").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = rename(&laptop.id, "Desk").await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    let updated = events_named(&account, &laptop, "device.updated").await;
    let renamed = updated
        .iter()
        .filter(|e| e["data"]["device"]["name"] == "Desk")
        .count();
    assert_eq!(renamed, 1, "announced once: {updated:?}");
    let other_body = rename(&laptop.id, "Other").await;
    assert_eq!(
        (other_body.status, other_body.body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    let other_path = rename(&phone.id, "Desk").await;
    assert_eq!(other_path.status, StatusCode::OK, "{}", other_path.body);
    assert_eq!(other_path.body["id"], phone.id.as_str());

    let trust = account
        .api
        .trust(laptop.token(), &laptop.id, &phone.id)
        .await;
    assert!(trust.is_ok(), "{trust:?}");
    let untrust = || {
        keyed(
            Method::DELETE,
            format!("/devices/{}/trust/{}", laptop.id, phone.id),
            None,
            "untrust-1",
        )
    };
    let first = untrust().await;
    assert!(first.status.is_success(), "{}", first.body);
    let again = untrust().await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
}
