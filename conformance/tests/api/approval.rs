//! Signing in with another device's approval: requested by a new device, answered by a trusted
//! one, collected once; denied, expired and wrongly polled requests; who may answer.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use udc_agent::seal;
use udc_agent::sync::{ApprovalState, PendingLogin};
use udc_conformance::*;

/// A new device's request for `account`, from its own client (not signed in).
async fn ask(
    account: &Account,
    name: &str,
) -> (
    udc_agent::sync::ApprovalTicket,
    seal::DeviceKeyPair,
    udc_agent::Client,
) {
    let keys = seal::DeviceKeyPair::generate();
    let newcomer = client();
    let ticket = newcomer
        .request_approval(&account.email, name, &keys.public_b64())
        .await
        .unwrap();
    (ticket, keys, newcomer)
}

async fn pending(account: &Account, device: &TestDevice, id: &str) -> PendingLogin {
    account
        .api
        .pending_approvals(device.token())
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id == id)
        .expect("the request is pending")
}

#[tokio::test]
async fn a_trusted_device_approves_a_new_sign_in_which_collects_its_tokens_and_key_once() {
    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let seq = last_seq(&account, &phone).await;
    let (ticket, keys, newcomer) = ask(&account, "New Laptop").await;
    assert_eq!(ticket.expires_in, 120);
    assert_eq!(ticket.fingerprint_phrase.split('-').count(), 5);
    assert_eq!(
        ticket.fingerprint_phrase,
        udc_core::approval::fingerprint_phrase(&B64.decode(keys.public_b64()).unwrap()),
        "the new device can compute the phrase it shows itself"
    );

    // The phone is told, with the same phrase, the name and where the request came from.
    let told = events(&account, &phone, seq).await;
    let request = told
        .iter()
        .find(|e| e.event == "auth.approval.request")
        .expect("auth.approval.request");
    assert_eq!(
        request.data["request"]["fingerprint_phrase"],
        ticket.fingerprint_phrase.as_str()
    );
    assert_eq!(request.data["request"]["device_name"], "New Laptop");
    assert!(request.data["request"]["client_ip"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("2001:db8")));
    let req = pending(&account, &phone, &ticket.request_id).await;

    assert!(matches!(
        newcomer.poll_approval(&ticket).await.unwrap(),
        ApprovalState::Pending { .. }
    ));
    account
        .api
        .respond_approval(phone.token(), &req, true, false, &account.account_key)
        .await
        .unwrap();
    let ApprovalState::Approved(approved) = newcomer.poll_approval(&ticket).await.unwrap() else {
        panic!("approved")
    };
    assert_eq!(approved.user.id, account.user_id);
    assert_eq!(
        approved.approver_device_id.as_deref(),
        Some(phone.id.as_str())
    );
    let key = keys.open_account_key(&approved.sealed_key).unwrap();
    assert_eq!(
        key, account.account_key,
        "the new device holds the account key without the password"
    );

    // Its tokens work: it registers itself and reads a clipboard item the phone sealed.
    let reg = newcomer
        .register_device(&approved.tokens.access_token, &device_info("New Laptop"))
        .await
        .unwrap();
    let item = account
        .api
        .post_clipboard(
            phone.token(),
            &account.account_key,
            "text/plain",
            b"from the phone",
        )
        .await
        .unwrap();
    let read = newcomer
        .clipboard_item(&reg.tokens.access_token, &item.id)
        .await
        .unwrap();
    // The account's activity has the approval, by the phone, and the sign-in it let in.
    let activity = account
        .api
        .account_activity(phone.token(), 4)
        .await
        .unwrap();
    let kinds: Vec<&str> = activity.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "device_added",
            "signed_in",
            "approval_approved",
            "device_added"
        ]
    );
    assert_eq!(activity[1].detail["method"], "approval");
    assert_eq!(activity[2].device_id.as_deref(), Some(phone.id.as_str()));
    assert_eq!(activity[2].detail["device_name"], "New Laptop");
    assert_eq!(
        udc_agent::sync::open_item(&read, &key).unwrap().unwrap(),
        b"from the phone"
    );

    // Exactly once.
    let again = newcomer.poll_approval(&ticket).await.unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(410), Some("approval_used"))
    );
    let r = account
        .raw(
            Method::POST,
            "/auth/biometric/respond",
            Some(phone.token()),
            Some(&json!({ "request_id": ticket.request_id, "approved": false })),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (409, "approval_already_answered")
    );
}

#[tokio::test]
async fn denied_expired_and_wrongly_polled_requests_get_clear_answers() {
    let account = Account::create().await;
    let phone = account.device("Phone").await;

    let (ticket, _, newcomer) = ask(&account, "Denied").await;
    let req = pending(&account, &phone, &ticket.request_id).await;
    account
        .api
        .respond_approval(phone.token(), &req, false, false, &account.account_key)
        .await
        .unwrap();
    let e = newcomer.poll_approval(&ticket).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("approval_denied")));

    // Nobody answers within two minutes.
    let (ticket, _, newcomer) = ask(&account, "Late").await;
    let later = [(CLOCK_HEADER, "121000")];
    let r = newcomer
        .raw(
            Method::GET,
            &format!("/auth/approval/{}", ticket.request_id),
            None,
            None,
            &[later[0], ("x-udc-approval-secret", &ticket.poll_secret)],
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), code(&r)), (410, "approval_expired"));
    let r = account
        .api
        .raw(
            Method::POST,
            "/auth/biometric/respond",
            Some(phone.token()),
            Some(&json!({ "request_id": ticket.request_id, "approved": true, "sealed_key": B64.encode([0u8; 80]) })),
            &later,
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), code(&r)), (410, "approval_expired"));

    // A wrong or missing poll secret.
    for secret in ["wrong", ""] {
        let r = newcomer
            .raw(
                Method::GET,
                &format!("/auth/approval/{}", ticket.request_id),
                None,
                None,
                &[("x-udc-approval-secret", secret)],
            )
            .await
            .unwrap();
        assert_eq!((r.status.as_u16(), code(&r)), (403, "invalid_poll_secret"));
    }

    // An email without an account gets the same answer, and nothing ever approves it.
    let nobody = client();
    let keys = seal::DeviceKeyPair::generate();
    let t = nobody
        .request_approval(&unique_email(), "Ghost", &keys.public_b64())
        .await
        .unwrap();
    assert!(matches!(
        nobody.poll_approval(&t).await.unwrap(),
        ApprovalState::Pending { .. }
    ));

    // Bad requests.
    let r = nobody
        .raw(
            Method::POST,
            "/auth/approval/request",
            None,
            Some(&json!({ "email": account.email, "device_name": "X", "public_key": "c2hvcnQ=" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn only_a_trusted_device_of_the_account_may_approve() {
    let account = Account::create().await;
    let phone = account.device("Phone").await;
    let tablet = account.device("Tablet").await;
    let (ticket, _, newcomer) = ask(&account, "New").await;
    let req = pending(&account, &phone, &ticket.request_id).await;

    // Two devices, neither trusting the other: neither may approve.
    let e = account
        .api
        .respond_approval(tablet.token(), &req, true, false, &account.account_key)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("device_not_trusted"), "{e}");

    // A device of another account does not even find it.
    let other = Account::create().await;
    let stranger = other.device("Stranger").await;
    let r = other
        .raw(
            Method::POST,
            "/auth/biometric/respond",
            Some(stranger.token()),
            Some(&json!({ "request_id": ticket.request_id, "approved": true, "sealed_key": B64.encode([0u8; 80]) })),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(other
        .api
        .pending_approvals(stranger.token())
        .await
        .unwrap()
        .is_empty());

    // Once the phone trusts the tablet, the tablet may — after the owner's biometric check if it has one.
    account
        .api
        .trust(phone.token(), &phone.id, &tablet.id)
        .await
        .unwrap();
    let r = account
        .raw(
            Method::PUT,
            &format!("/devices/{}", tablet.id),
            Some(tablet.token()),
            Some(&json!({ "capabilities": ["clipboard", "biometric"] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e = account
        .api
        .respond_approval(tablet.token(), &req, true, false, &account.account_key)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("biometric_required"), "{e}");
    account
        .api
        .respond_approval(tablet.token(), &req, true, true, &account.account_key)
        .await
        .unwrap();
    assert!(matches!(
        newcomer.poll_approval(&ticket).await.unwrap(),
        ApprovalState::Approved(_)
    ));
}
