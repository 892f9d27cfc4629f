//! Files: bytes go device → object store → device through presigned URLs; the API signs,
//! records and decides who may read.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use udc_agent::client::RawResponse;
use udc_agent::transfer::{self, SendOptions};
use udc_conformance::*;

const MIB: usize = 1024 * 1024;

/// Deterministic, incompressible-looking bytes, different per `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

use udc_conformance::sha256_hex as sha256;

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "udc-files-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The account's two devices, `from` trusting `to`.
async fn pair(account: &Account) -> (TestDevice, TestDevice) {
    let from = account.device("Sender").await;
    let to = account.device("Receiver").await;
    account
        .api
        .trust(from.token(), &from.id, &to.id)
        .await
        .unwrap();
    (from, to)
}

/// `to` receives file `id` into `dir` with the account's keys, as its agent would.
async fn receive(
    account: &Account,
    to: &TestDevice,
    id: &str,
    dir: &std::path::Path,
) -> anyhow::Result<transfer::Received> {
    transfer::receive(
        &account.api,
        &mut to.token().to_owned(),
        &account.file_keys(),
        id,
        dir,
        &mut |_| {},
    )
    .await
}

async fn get(account: &Account, device: &TestDevice, path: &str) -> RawResponse {
    account
        .raw(Method::GET, path, Some(device.token()), None)
        .await
}

async fn post(
    account: &Account,
    device: &TestDevice,
    path: &str,
    body: Option<&Value>,
) -> RawResponse {
    account
        .raw(Method::POST, path, Some(device.token()), body)
        .await
}

async fn delete(account: &Account, device: &TestDevice, path: &str) -> RawResponse {
    account
        .raw(Method::DELETE, path, Some(device.token()), None)
        .await
}

async fn initiate(
    account: &Account,
    device: &TestDevice,
    data: &[u8],
    target: Option<&str>,
) -> RawResponse {
    let mut body = json!({ "name": "notes.txt", "size": data.len(), "sha256": sha256(data), "mime": "text/plain" });
    if let Some(t) = target {
        body["target_device_id"] = json!(t);
    }
    post(account, device, "/files/upload/initiate", Some(&body)).await
}

async fn part_urls(
    account: &Account,
    device: &TestDevice,
    file_id: &str,
    parts: &[u64],
    clock_ms: i64,
) -> RawResponse {
    account
        .api
        .raw(
            Method::POST,
            &format!("/files/{file_id}/parts"),
            Some(device.token()),
            Some(&json!({ "part_numbers": parts })),
            &[(CLOCK_HEADER, &clock_ms.to_string())],
        )
        .await
        .unwrap()
}

async fn put(url: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Uploads `data` (one part) by hand and completes it; returns the file id.
async fn upload_small(
    account: &Account,
    device: &TestDevice,
    data: &[u8],
    target: Option<&str>,
) -> String {
    upload_as(account, device, "notes.txt", data, data, target).await
}

async fn fetch(url: &str) -> (StatusCode, Vec<u8>) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_50_mib_file_travels_end_to_end_with_its_sha256() {
    let account = Account::create().await;
    let (from, to) = pair(&account).await;

    let dir = temp_dir("e2e");
    let data = bytes(50 * MIB, 1);
    let path = dir.join("photo.jpg");
    std::fs::write(&path, &data).unwrap();
    let opts = SendOptions {
        target_device_id: Some(to.id.clone()),
        mime: Some("image/jpeg".into()),
        parallel: 4,
        limit_rate: None,
        part_size: None,
        state_dir: dir.join("state"),
        keys: account.file_keys(),
    };
    let mut events = Vec::new();
    let sent = transfer::send(
        &account.api,
        &mut from.token().to_owned(),
        &path,
        &opts,
        &mut |p| events.push(p),
    )
    .await
    .unwrap();
    assert_eq!(
        (sent.parts_sent, sent.deduplicated, sent.resumed),
        (7, false, false)
    );
    assert_eq!(sent.file.state, "available");
    assert_eq!(sent.file.sha256, sha256(&data));

    // The receiver is told, with the file it can fetch: read from the account's event log, as
    // hosts without sockets (Spin) deliver it; sockets carry the same log (realtime tests).
    let log = get(&account, &to, "/events").await;
    let available = log.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "file.available" && e["data"]["file"]["id"] == json!(sent.file.id))
        .unwrap_or_else(|| panic!("no file.available for the receiver: {:?}", log.body));
    // What the server holds is sealed: seven parts, each 40 bytes longer (nonce and tag).
    assert_eq!(available["data"]["file"]["size"], json!(50 * MIB + 7 * 40));
    assert_eq!(available["data"]["file"]["name"], "");
    let waiting = account.api.shared_files(to.token()).await.unwrap();
    assert_eq!(
        waiting.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        vec![sent.file.id.as_str()]
    );

    let received = receive(&account, &to, &sent.file.id, &dir.join("in"))
        .await
        .unwrap();
    let got = std::fs::read(&received.path).unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
    assert_eq!(received.path.file_name().unwrap(), "photo.jpg");
    // Confirmed: no longer waiting, and the sender hears of it.
    assert!(account
        .api
        .shared_files(to.token())
        .await
        .unwrap()
        .is_empty());
    let page = get(&account, &from, "/events").await;
    assert!(
        page.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "file.downloaded" && e["data"]["device_id"] == json!(to.id)),
        "{:?}",
        page.body
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A file sent by a udc client is sealed before it leaves the device: the server's answers, the
/// receiver's events, the stored object and everything on the host's disk hold neither its
/// name, its type, its SHA-256 nor its bytes. The receiver opens it; keys of another account cannot; a damaged part is refused and
/// nothing confirmed; the same bytes sent again are deduplicated, and only onto a sealed file.
#[tokio::test]
async fn a_sent_file_is_sealed_so_the_server_and_the_store_see_sizes_only() {
    let account = Account::create().await;
    let (from, to) = pair(&account).await;
    let dir = temp_dir("sealed");
    let secret = format!(
        "Meet at the harbour at nine, {}.",
        uuid::Uuid::new_v4().simple()
    );
    let text = format!("{secret} ").repeat(300);
    let path = dir.join("secret-plans.txt");
    std::fs::write(&path, &text).unwrap();
    let opts = SendOptions {
        target_device_id: Some(to.id.clone()),
        mime: Some("text/plain".into()),
        parallel: 2,
        limit_rate: None,
        part_size: None,
        state_dir: dir.join("state"),
        keys: account.file_keys(),
    };
    let send = || async {
        transfer::send(
            &account.api,
            &mut from.token().to_owned(),
            &path,
            &opts,
            &mut |_| {},
        )
        .await
        .unwrap()
    };
    let sent = send().await;
    // The sender sees its file as it is.
    let file = &sent.file;
    assert_eq!(
        (file.name.as_str(), file.mime.as_str(), file.size),
        ("secret-plans.txt", "text/plain", text.len() as u64)
    );
    assert_eq!(file.sha256, sha256(text.as_bytes()));

    // The server and the store do not.
    let id = sent.file.id.clone();
    let download = get(&account, &to, &format!("/files/{id}/download")).await;
    assert_eq!(download.status, StatusCode::OK, "{:?}", download.body);
    let (status, object) = fetch(download.body["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(object.len(), text.len() + 40, "one part: its nonce and tag");
    assert!(!object.windows(7).any(|w| w == b"harbour"));
    assert_eq!(download.body["file"]["name"], "");
    assert_eq!(download.body["file"]["size"], json!(text.len() + 40));
    assert!(download.body["file"]["sealed"].is_string());
    let seen = [
        download.body.to_string(),
        get(&account, &from, "/files").await.body.to_string(),
        get(&account, &to, "/files/shared").await.body.to_string(),
        get(&account, &to, "/events").await.body.to_string(),
        get(&account, &from, &format!("/files/{id}"))
            .await
            .body
            .to_string(),
    ];
    for secret in ["secret-plans", "text/plain", &sha256(text.as_bytes())] {
        for body in &seen {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }

    // On the host's disk (database, store, logs of either): no run of the text, no name, no
    // plain SHA-256; the scan does find what the server holds (the content id).
    if let Some(hits) =
        stored_files_containing(download.body["file"]["sha256"].as_str().unwrap().as_bytes())
    {
        assert!(
            !hits.is_empty(),
            "the scan found not even the content id: wrong directory?"
        );
        for needle in [secret.as_str(), "secret-plans", &sha256(text.as_bytes())] {
            let found = stored_files_containing(needle.as_bytes()).unwrap();
            assert!(found.is_empty(), "{needle} stored in {found:?}");
        }
    }

    // Keys of another account open nothing, and nothing is confirmed.
    let stranger = std::sync::Arc::new(udc_agent::file_seal::FileKeys::new(&[9; 32]).unwrap());
    let refused = transfer::receive(
        &account.api,
        &mut to.token().to_owned(),
        &stranger,
        &id,
        &dir.join("in"),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        format!("{refused:#}").contains("another account"),
        "{refused:#}"
    );
    assert_eq!(account.api.shared_files(to.token()).await.unwrap().len(), 1);
    let got = receive(&account, &to, &id, &dir.join("in")).await.unwrap();
    assert_eq!(std::fs::read_to_string(&got.path).unwrap(), text);
    assert_eq!(got.path.file_name().unwrap(), "secret-plans.txt");
    assert!(account
        .api
        .shared_files(to.token())
        .await
        .unwrap()
        .is_empty());

    // Sent again: the server matched the keyed content id, nothing was uploaded.
    let again = send().await;
    assert!(again.deduplicated && again.parts_sent == 0);
    assert_eq!(again.file.name, "secret-plans.txt");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `sealed` replaces `name` and `mime`, and a sealed upload never dedupes onto a file stored in
/// the clear (whose object holds other bytes), even under the same id and size.
#[tokio::test]
async fn a_sealed_description_is_checked_for_form_and_dedupes_only_onto_sealed_files() {
    let account = Account::create().await;
    let (from, _) = pair(&account).await;
    let data = b"plain bytes of a clear file".to_vec();
    upload_small(&account, &from, &data, None).await;
    let sealed = "c2VhbGVkIGRlc2NyaXB0aW9uIHdpdGggYSBub25jZSBhbmQgYSB0YWcgMTIzNDU2Nzg=";
    let base = json!({ "size": data.len(), "sha256": sha256(&data), "sealed": sealed });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let mut neither = base.clone();
    neither.as_object_mut().unwrap().remove("sealed");
    for (bad, why) in [
        (with(json!({"name": "a.txt"})), "name"),
        (with(json!({"mime": "text/plain"})), "mime"),
        (with(json!({"sealed": "not base64!"})), "sealed"),
        (with(json!({"sealed": "c2hvcnQ="})), "sealed"),
        (neither, "name"),
    ] {
        let r = post(&account, &from, "/files/upload/initiate", Some(&bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(why),
            "{bad}: {:?}",
            r.body
        );
    }
    let r = post(&account, &from, "/files/upload/initiate", Some(&base)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["status"], "upload_required",
        "never the clear file's object"
    );
    assert_eq!(r.body["file"]["sealed"], sealed);
    assert_eq!(r.body["file"]["name"], "");
}

#[tokio::test]
async fn a_tampered_or_expired_presigned_url_is_refused_by_the_store() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(1000, 2);
    let started = initiate(&account, &device, &data, None).await;
    let file_id = started.body["file"]["id"].as_str().unwrap();

    let url = part_urls(&account, &device, file_id, &[1], 0).await.body["parts"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another object, another part, a forged signature: each breaks the signature.
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged = url.clone();
    let flipped = if &url[sig_at..sig_at + 1] == "a" {
        "b"
    } else {
        "a"
    };
    forged.replace_range(sig_at..sig_at + 1, flipped);
    for bad in [
        url.replace(file_id, &uuid::Uuid::new_v4().to_string()),
        url.replace("partNumber=1", "partNumber=2"),
        forged,
    ] {
        let status = put(&bad, data.clone()).await.status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad}");
    }
    // Signed 20 minutes ago for 15: expired.
    let old = part_urls(&account, &device, file_id, &[1], -20 * 60 * 1000).await;
    let status = put(old.body["parts"][0]["url"].as_str().unwrap(), data.clone())
        .await
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The genuine URL works.
    assert!(put(&url, data).await.status().is_success());
}

#[tokio::test]
async fn another_accounts_device_gets_404_for_metadata_download_and_parts() {
    let owner = Account::create().await;
    let device = owner.device("Laptop").await;
    let file_id = upload_small(&owner, &device, &bytes(300, 3), None).await;
    let pending = initiate(&owner, &device, &bytes(400, 4), None).await;
    let pending_id = pending.body["file"]["id"].as_str().unwrap();
    let pending_upload = pending.body["upload"]["upload_id"].as_str().unwrap();

    let stranger = Account::create().await;
    let other = stranger.device("Other").await;
    for (method, path, body) in [
        (Method::GET, format!("/files/{file_id}/metadata"), None),
        (Method::GET, format!("/files/{file_id}/download"), None),
        (Method::GET, format!("/files/{pending_id}/upload"), None),
        (
            Method::POST,
            format!("/files/{pending_id}/parts"),
            Some(json!({ "part_numbers": [1] })),
        ),
        (
            Method::POST,
            format!("/files/{file_id}/share"),
            Some(json!({ "device_id": other.id })),
        ),
        (
            Method::POST,
            format!("/files/{file_id}/confirm-download"),
            Some(json!({ "sha256": sha256(b"x") })),
        ),
        (Method::DELETE, format!("/files/{file_id}"), None),
        (
            Method::POST,
            "/files/upload/part".to_owned(),
            Some(json!({ "upload_id": pending_upload, "part_number": 1, "etag": "\"x\"" })),
        ),
        (
            Method::POST,
            "/files/upload/complete".to_owned(),
            Some(json!({ "upload_id": pending_upload })),
        ),
    ] {
        let resp = stranger
            .raw(method.clone(), &path, Some(other.token()), body.as_ref())
            .await;
        assert_eq!(
            resp.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {:?}",
            resp.body
        );
        assert_eq!(code(&resp), "not_found");
    }
    let listed = get(&stranger, &other, "/files").await;
    assert_eq!(listed.body["files"], json!([]));
    // Nothing changed for the owner.
    let meta = get(&owner, &device, &format!("/files/{file_id}/metadata")).await;
    assert_eq!(
        (meta.status, meta.body["state"].as_str()),
        (StatusCode::OK, Some("available"))
    );
}

#[tokio::test]
async fn only_a_trusted_target_downloads_a_file_sent_to_it() {
    let account = Account::create().await;
    let (from, to) = pair(&account).await;
    let untrusted = account.device("Untrusted").await;
    let bystander = account.device("Bystander").await;
    account
        .api
        .trust(from.token(), &from.id, &bystander.id)
        .await
        .unwrap();
    let data = bytes(2000, 5);
    let file_id = upload_small(&account, &from, &data, Some(&to.id)).await;

    let path = format!("/files/{file_id}/download");
    let download = |d: &TestDevice| {
        let token = d.token().to_owned();
        let path = &path;
        let account = &account;
        async move { account.raw(Method::GET, path, Some(&token), None).await }
    };
    // The target the sender trusts, and the sender itself.
    for d in [&to, &from] {
        let ok = download(d).await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
        let (status, got) = fetch(ok.body["url"].as_str().unwrap()).await;
        assert_eq!((status, sha256(&got)), (StatusCode::OK, sha256(&data)));
    }
    // Same account, but not trusted by the sender; or trusted, but the file went elsewhere.
    for d in [&untrusted, &bystander] {
        let refused = download(d).await;
        assert_eq!(
            (refused.status, code(&refused)),
            (StatusCode::FORBIDDEN, "forbidden")
        );
    }
    // Sharing it to the untrusted device does not open it either; untrusting the target closes it.
    let shared = post(
        &account,
        &from,
        &format!("/files/{file_id}/share"),
        Some(&json!({ "device_id": untrusted.id })),
    )
    .await;
    assert_eq!(shared.status, StatusCode::OK, "{:?}", shared.body);
    assert_eq!(download(&untrusted).await.status, StatusCode::FORBIDDEN);
    account
        .api
        .untrust(from.token(), &from.id, &to.id)
        .await
        .unwrap();
    assert_eq!(download(&to).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_second_identical_upload_is_deduplicated_within_the_account_only() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(5000, 6);
    let first = upload_small(&account, &device, &data, None).await;

    let again = initiate(&account, &device, &data, None).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["status"], "already_present");
    assert_eq!(again.body["file"]["state"], "available");
    assert!(again.body.get("upload").is_none());
    let second = again.body["file"]["id"].as_str().unwrap();
    assert_ne!(second, first);
    let url = get(&account, &device, &format!("/files/{second}/download")).await;
    let (_, got) = fetch(url.body["url"].as_str().unwrap()).await;
    assert_eq!(got, data);

    // Another account with the same bytes must upload them itself.
    let other = Account::create().await;
    let theirs = other.device("Theirs").await;
    let fresh = initiate(&other, &theirs, &data, None).await;
    assert_eq!(fresh.body["status"], "upload_required");
}

#[tokio::test]
async fn dedupe_never_reaches_a_file_the_caller_may_not_read() {
    let account = Account::create().await;
    let owner = account.device("Owner").await;
    let nosy = account.device("Nosy").await;
    let data = bytes(4000, 16);
    let private = upload_small(&account, &owner, &data, None).await;
    // Hash and size are in the listing; they must not be a key to the bytes.
    let listed = get(&account, &nosy, "/files").await;
    assert!(listed.body.to_string().contains(&sha256(&data)));
    let claim = initiate(&account, &nosy, &data, None).await;
    assert_eq!(claim.status, StatusCode::CREATED, "{}", claim.body);
    assert_eq!(claim.body["status"], "upload_required", "{}", claim.body);
    let claimed = claim.body["file"]["id"].as_str().unwrap();
    let url = get(&account, &nosy, &format!("/files/{claimed}/download")).await;
    assert_ne!(
        url.status,
        StatusCode::OK,
        "an unfinished upload has nothing to read"
    );
    let theirs = get(&account, &nosy, &format!("/files/{private}/download")).await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    // The owner's own second copy still deduplicates.
    let again = initiate(&account, &owner, &data, None).await;
    assert_eq!(again.body["status"], "already_present");
}

#[tokio::test]
async fn a_device_that_lies_about_its_bytes_never_serves_them_to_another() {
    let account = Account::create().await;
    let (liar, honest) = pair(&account).await;
    let genuine = bytes(3000, 19);
    // The liar declares the genuine bytes' SHA-256 and stores others of the same size.
    let poisoned = upload_as(&account, &liar, "a.bin", &genuine, &bytes(3000, 20), None).await;
    // The honest device, which may read the liar's files, sends the genuine bytes: they are
    // uploaded, not matched with the liar's, and what it stored is what it sent.
    let started = initiate(&account, &honest, &genuine, None).await;
    assert_eq!(
        started.body["status"], "upload_required",
        "{}",
        started.body
    );
    let own = upload_small(&account, &honest, &genuine, None).await;
    assert_ne!(own, poisoned);
    let url = get(&account, &honest, &format!("/files/{own}/download")).await;
    let (_, got) = fetch(url.body["url"].as_str().unwrap()).await;
    assert_eq!(got, genuine);
}

#[tokio::test]
async fn part_urls_take_exactly_the_bytes_of_their_part() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(1, 17);
    let started = initiate(&account, &device, &data, None).await;
    let file_id = started.body["file"]["id"].as_str().unwrap();
    let urls = part_urls(&account, &device, file_id, &[1], 0).await;
    let url = urls.body["parts"][0]["url"].as_str().unwrap();
    // 30 MB to the URL of a 1-byte upload, or one byte short or over: the store refuses it.
    for wrong in [30_000_000, 0, 2] {
        // Refused with a status, or (a big body) by closing the connection before taking it.
        let stored = reqwest::Client::new()
            .put(url)
            .body(bytes(wrong, 18))
            .send()
            .await;
        if let Ok(stored) = stored {
            let status = stored.status();
            assert!(status.is_client_error(), "{wrong} bytes: {status}");
        }
    }
    assert!(put(url, data).await.status().is_success());
}

#[tokio::test]
async fn repeated_requests_with_one_idempotency_key_change_nothing() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(700, 7);
    let body = json!({ "name": "a.bin", "size": data.len(), "sha256": sha256(&data) });
    let key = uuid::Uuid::new_v4().to_string();
    let send = |path: &'static str, body: Value, key: String| {
        let api = account.api.clone();
        let token = device.token().to_owned();
        async move {
            api.raw(
                Method::POST,
                path,
                Some(&token),
                Some(&body),
                &[("Idempotency-Key", &key)],
            )
            .await
            .unwrap()
        }
    };
    let first = send("/files/upload/initiate", body.clone(), key.clone()).await;
    let repeat = send("/files/upload/initiate", body.clone(), key.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!((repeat.status, &repeat.body), (first.status, &first.body));
    let listed = get(&account, &device, "/files").await;
    assert_eq!(
        listed.body["files"].as_array().unwrap().len(),
        1,
        "one file, not two"
    );
    let other_body = json!({ "name": "b.bin", "size": 1, "sha256": sha256(b"b") });
    let reused = send("/files/upload/initiate", other_body, key).await;
    assert_eq!(
        (reused.status, code(&reused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );

    let file_id = first.body["file"]["id"].as_str().unwrap();
    let upload_id = first.body["upload"]["upload_id"].as_str().unwrap();
    // Completing too early is an error and keeps the key free for the real attempt.
    let complete_key = uuid::Uuid::new_v4().to_string();
    let complete = json!({ "upload_id": upload_id });
    let early = send(
        "/files/upload/complete",
        complete.clone(),
        complete_key.clone(),
    )
    .await;
    assert_eq!(
        (early.status, code(&early)),
        (StatusCode::CONFLICT, "parts_missing")
    );
    let urls = part_urls(&account, &device, file_id, &[1], 0).await;
    let stored = put(urls.body["parts"][0]["url"].as_str().unwrap(), data.clone()).await;
    let etag = stored.headers()["etag"].to_str().unwrap().to_owned();
    post(
        &account,
        &device,
        "/files/upload/part",
        Some(&json!({ "upload_id": upload_id, "part_number": 1, "etag": etag })),
    )
    .await;
    let done = send(
        "/files/upload/complete",
        complete.clone(),
        complete_key.clone(),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let replay = send("/files/upload/complete", complete, complete_key).await;
    assert_eq!((replay.status, &replay.body), (done.status, &done.body));
    let completed = events_named(&account, &device, "file.transfer.completed").await;
    assert_eq!(completed.len(), 1, "the replay published nothing");
}

/// Completing one upload twenty times at once: each answer is the finished file (or, where the
/// store is between the two states, a code that says so), and the file is announced once.
#[tokio::test]
async fn concurrent_completes_answer_the_finished_file_and_announce_it_once() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(12 * MIB, 43);
    let body = json!({ "name": "c.bin", "size": data.len(), "sha256": sha256(&data), "part_size": 5 * MIB });
    let started = post(&account, &device, "/files/upload/initiate", Some(&body)).await;
    let file_id = started.body["file"]["id"].as_str().unwrap().to_owned();
    let upload_id = started.body["upload"]["upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let urls = part_urls(&account, &device, &file_id, &[1, 2, 3], 0).await;
    for (i, chunk) in data.chunks(5 * MIB).enumerate() {
        let stored = put(
            urls.body["parts"][i]["url"].as_str().unwrap(),
            chunk.to_vec(),
        )
        .await;
        let etag = stored.headers()["etag"].to_str().unwrap().to_owned();
        let recorded = post(
            &account,
            &device,
            "/files/upload/part",
            Some(&json!({ "upload_id": upload_id, "part_number": i + 1, "etag": etag })),
        )
        .await;
        assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.body);
    }
    let complete = json!({ "upload_id": upload_id });
    let answers = futures_util::future::join_all(
        (0..20).map(|_| post(&account, &device, "/files/upload/complete", Some(&complete))),
    )
    .await;
    let mut finished = 0;
    for a in &answers {
        match a.status {
            StatusCode::OK => {
                assert_eq!(a.body["file"]["state"], "available", "{}", a.body);
                finished += 1;
            }
            StatusCode::CONFLICT => assert_eq!(code(a), "upload_not_open", "{}", a.body),
            other => panic!("{other}: {}", a.body),
        }
    }
    assert!(finished >= 1, "no complete answered the file");
    let again = post(&account, &device, "/files/upload/complete", Some(&complete)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let url = get(&account, &device, &format!("/files/{file_id}/download")).await;
    let (_, got) = fetch(url.body["url"].as_str().unwrap()).await;
    assert!(got == data, "the stored file is the one sent");
    let announced = events_named(&account, &device, "file.transfer.completed").await;
    assert_eq!(announced.len(), 1, "announced once");
}

#[tokio::test]
async fn a_deleted_file_is_restorable_then_purged_with_its_object() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(900, 8);
    let file_id = upload_small(&account, &device, &data, None).await;
    let url = get(&account, &device, &format!("/files/{file_id}/download"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids = |resp: RawResponse| -> Vec<String> {
        resp.body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (live, trash) = (
        "/files?deleted=false".to_owned(),
        "/files?deleted=true".to_owned(),
    );
    let list = |deleted: bool| {
        account.raw(
            Method::GET,
            if deleted { &trash } else { &live },
            Some(device.token()),
            None,
        )
    };

    let deleted = delete(&account, &device, &format!("/files/{file_id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(ids(list(false).await).is_empty());
    assert_eq!(ids(list(true).await), vec![file_id.clone()]);
    let meta = get(&account, &device, &format!("/files/{file_id}/metadata")).await;
    assert_eq!(meta.status, StatusCode::NOT_FOUND);

    let restored = post(
        &account,
        &device,
        &format!("/files/{file_id}/restore"),
        None,
    )
    .await;
    assert_eq!(
        (restored.status, &restored.body["deleted_at"]),
        (StatusCode::OK, &Value::Null)
    );
    assert_eq!(ids(list(false).await), vec![file_id.clone()]);

    delete(&account, &device, &format!("/files/{file_id}")).await;
    let purge = |days: i64| {
        let api = account.api.clone();
        let token = device.token().to_owned();
        async move {
            let offset = (days * 24 * 3600 * 1000).to_string();
            api.raw(
                Method::POST,
                "/test/purge-files",
                Some(&token),
                None,
                &[(CLOCK_HEADER, &offset)],
            )
            .await
            .unwrap()
        }
    };
    // Within the window nothing goes, and the bytes are still there.
    assert_eq!(purge(29).await.body["files_purged"], 0);
    assert_eq!(fetch(&url).await.0, StatusCode::OK);
    let gone = purge(31).await;
    assert_eq!(gone.body["files_purged"], 1, "{:?}", gone.body);
    assert!(ids(list(true).await).is_empty());
    let late = post(
        &account,
        &device,
        &format!("/files/{file_id}/restore"),
        None,
    )
    .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert_eq!(
        fetch(&url).await.0,
        StatusCode::NOT_FOUND,
        "the object was deleted from the store"
    );
}

#[tokio::test]
async fn an_object_shared_by_a_deduplicated_file_outlives_the_purge_of_the_other() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let data = bytes(1200, 9);
    let first = upload_small(&account, &device, &data, None).await;
    let second = upload_small(&account, &device, &data, None).await;
    delete(&account, &device, &format!("/files/{first}")).await;
    let offset = (31i64 * 24 * 3600 * 1000).to_string();
    let purged = account
        .api
        .raw(
            Method::POST,
            "/test/purge-files",
            Some(device.token()),
            None,
            &[(CLOCK_HEADER, &offset)],
        )
        .await
        .unwrap();
    assert_eq!(purged.body["files_purged"], 1);
    let url = get(&account, &device, &format!("/files/{second}/download")).await;
    assert_eq!(
        fetch(url.body["url"].as_str().unwrap()).await,
        (StatusCode::OK, data)
    );
}

#[tokio::test]
async fn bad_file_requests_get_clear_errors() {
    let account = Account::create().await;
    let device = account.device("Laptop").await;
    let device_less = account.login().await.tokens.access_token;
    let good = json!({ "name": "a.txt", "size": 1, "sha256": sha256(b"a") });
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "name": "a/b.txt", "size": 1, "sha256": sha256(b"a") }),
            "invalid_field",
        ),
        (
            json!({ "name": "a.txt", "size": 1, "sha256": "abc" }),
            "invalid_field",
        ),
        (
            json!({ "name": "a.txt", "size": -1, "sha256": sha256(b"a") }),
            "invalid_field",
        ),
        (
            json!({ "name": "a.txt", "size": 1, "sha256": sha256(b"a"), "mime": "nope" }),
            "invalid_field",
        ),
        (
            json!({ "name": "a.txt", "size": 1, "sha256": sha256(b"a"), "target_device_id": "x" }),
            "invalid_field",
        ),
        (
            json!({ "name": "a.txt", "size": 1, "sha256": sha256(b"a"), "part_size": 1024 }),
            "invalid_field",
        ),
    ];
    for (body, expected) in cases {
        let resp = post(&account, &device, "/files/upload/initiate", Some(&body)).await;
        assert_eq!(
            (resp.status, code(&resp)),
            (StatusCode::BAD_REQUEST, expected),
            "{body}"
        );
    }
    let huge =
        json!({ "name": "a.txt", "size": 6u64 * 1024 * 1024 * 1024, "sha256": sha256(b"a") });
    let resp = post(&account, &device, "/files/upload/initiate", Some(&huge)).await;
    assert_eq!(
        (resp.status, code(&resp)),
        (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large")
    );
    let to_self = json!({ "name": "a.txt", "size": 1, "sha256": sha256(b"a"), "target_device_id": device.id });
    let resp = post(&account, &device, "/files/upload/initiate", Some(&to_self)).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let nowhere = json!({ "name": "a.txt", "size": 1, "sha256": sha256(b"a"), "target_device_id": uuid::Uuid::new_v4().to_string() });
    let resp = post(&account, &device, "/files/upload/initiate", Some(&nowhere)).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    let resp = account
        .raw(
            Method::POST,
            "/files/upload/initiate",
            Some(&device_less),
            Some(&good),
        )
        .await;
    assert_eq!(
        (resp.status, code(&resp)),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    let started = initiate(&account, &device, &bytes(6 * MIB, 10), None).await;
    let file_id = started.body["file"]["id"].as_str().unwrap();
    assert_eq!(started.body["upload"]["part_count"], 1);
    let resp = part_urls(&account, &device, file_id, &[2], 0).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let resp = part_urls(&account, &device, file_id, &[], 0).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let early = get(&account, &device, &format!("/files/{file_id}/download")).await;
    assert_eq!(
        (early.status, code(&early)),
        (StatusCode::CONFLICT, "upload_incomplete")
    );
    let status = get(&account, &device, &format!("/files/{file_id}/upload")).await;
    assert_eq!(status.body["missing"], json!([1]));
    // Deleting an unfinished upload aborts it: it is simply gone.
    let aborted = delete(&account, &device, &format!("/files/{file_id}")).await;
    assert_eq!(aborted.status, StatusCode::NO_CONTENT);
    let status = get(&account, &device, &format!("/files/{file_id}/upload")).await;
    assert_eq!(status.status, StatusCode::NOT_FOUND);
    let page = get(&account, &device, "/files?limit=0").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

/// What `faulty_proxy` does to a download from the store.
#[derive(Clone, Copy)]
enum Fault {
    /// The connection is closed after this many bytes.
    CutAt(usize),
    /// The byte at this offset arrives changed.
    FlipAt(usize),
}

/// An HTTP forward proxy on loopback that does `fault` to every download from the store that is
/// not a resume (a presigned GET without `Range`); everything else goes through as it is.
/// Requests keep their `Host`, so presigned signatures still match.
fn faulty_proxy(fault: Fault) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client);
                let mut head = Vec::new();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    head.push(std::mem::take(&mut line));
                }
                let Some(first) = head.first().cloned() else {
                    return;
                };
                let mut words = first.split(' ');
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let Ok(target) = reqwest::Url::parse(target) else {
                    return;
                };
                let header = |name: &str| {
                    head.iter().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix(name)
                            .map(|v| v.trim().to_owned())
                    })
                };
                let length: usize = header("content-length:")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let limit = (method == "GET"
                    && target
                        .query()
                        .is_some_and(|q| q.contains("X-Amz-Signature"))
                    && header("range:").is_none())
                .then_some(fault);
                let Ok(mut upstream) = std::net::TcpStream::connect(format!(
                    "{}:{}",
                    target.host_str().unwrap_or_default(),
                    target.port_or_known_default().unwrap_or(80)
                )) else {
                    return;
                };
                let path = match target.query() {
                    Some(q) => format!("{}?{q}", target.path()),
                    None => target.path().to_owned(),
                };
                let mut request = format!("{method} {path} HTTP/1.1\r\n");
                for l in &head[1..] {
                    let lower = l.to_ascii_lowercase();
                    if !lower.starts_with("proxy-") && !lower.starts_with("connection:") {
                        request.push_str(l);
                    }
                }
                request.push_str("connection: close\r\n\r\n");
                if upstream.write_all(request.as_bytes()).is_err()
                    || upstream.write_all(&body).is_err()
                {
                    return;
                }
                let mut client = reader.into_inner();
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0usize;
                loop {
                    let n = match upstream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = match limit {
                        Some(Fault::CutAt(cut)) => n.min(cut - sent),
                        Some(Fault::FlipAt(at)) if (sent..sent + n).contains(&at) => {
                            buf[at - sent] ^= 0x01;
                            n
                        }
                        _ => n,
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                    if matches!(limit, Some(Fault::CutAt(cut)) if sent >= cut) {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    url
}

/// A sealed download keeps the plain bytes of the parts it opened: a restart keeps the whole
/// parts (each was checked by its tag when it arrived), fetches from the next part's start in
/// the sealed object, and hashes the kept bytes again, so damaged ones are caught.
#[tokio::test]
async fn a_sealed_download_resumes_after_the_whole_parts_it_kept() {
    let account = Account::create().await;
    let (from, to) = pair(&account).await;
    let dir = temp_dir("sealed-resume");
    let data = bytes(10 * MIB + 1000, 21);
    let path = dir.join("film.bin");
    std::fs::write(&path, &data).unwrap();
    let part = 5 * MIB;
    let opts = SendOptions {
        target_device_id: Some(to.id.clone()),
        mime: None,
        parallel: 2,
        limit_rate: None,
        part_size: Some(part as u64),
        state_dir: dir.join("state"),
        keys: account.file_keys(),
    };
    let sent = transfer::send(
        &account.api,
        &mut from.token().to_owned(),
        &path,
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap();
    let id = sent.file.id;
    let inbox = dir.join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let partial = transfer::partial_path(&inbox, &id);
    let receive = || receive(&account, &to, &id, &inbox);
    let sealed_part = part as u64 + udc_agent::file_seal::PART_OVERHEAD;

    // A kept part with a damaged byte: the whole file's SHA-256 catches it, nothing is kept
    // and nothing confirmed.
    let mut damaged = data[..part].to_vec();
    damaged[4321] ^= 0x10;
    std::fs::write(&partial, &damaged).unwrap();
    let err = receive().await.unwrap_err();
    assert!(
        err.downcast_ref::<transfer::BytesRefused>().is_some(),
        "{err:#}"
    );
    assert!(!partial.exists(), "the damaged bytes are removed");
    assert_eq!(account.api.shared_files(to.token()).await.unwrap().len(), 1);

    // A byte of part 1 changed on its way from the store: the part's tag refuses it, nothing
    // is kept and nothing confirmed.
    std::env::set_var("HTTP_PROXY", faulty_proxy(Fault::FlipAt(part / 2)));
    let err = receive().await.unwrap_err();
    std::env::remove_var("HTTP_PROXY");
    assert!(
        err.downcast_ref::<transfer::BytesRefused>().is_some()
            && format!("{err:#}").contains("part 1 of the file is damaged"),
        "{err:#}"
    );
    assert!(!partial.exists(), "nothing of a refused download is kept");
    assert_eq!(account.api.shared_files(to.token()).await.unwrap().len(), 1);

    // The connection is cut half-way through part 2: the receive fails, keeps part 1 (opened,
    // so checked) and none of part 2; a retry at once resumes at part 2.
    std::env::set_var("HTTP_PROXY", faulty_proxy(Fault::CutAt(part + part / 2)));
    let cut = receive().await.unwrap_err();
    std::env::remove_var("HTTP_PROXY");
    assert!(
        cut.downcast_ref::<transfer::BytesRefused>().is_none(),
        "a cut is not refused bytes: {cut:#}"
    );
    assert_eq!(std::fs::read(&partial).unwrap(), &data[..part]);
    let got = receive().await.unwrap();
    assert_eq!(got.resumed_at, sealed_part);
    assert!(std::fs::read(&got.path).unwrap() == data);
    std::fs::remove_file(&got.path).unwrap();

    // One part and a half kept: the half is dropped, the fetch starts at part 2.
    std::fs::write(&partial, &data[..part + part / 2]).unwrap();
    let got = receive().await.unwrap();
    assert_eq!(got.resumed_at, sealed_part);
    assert!(std::fs::read(&got.path).unwrap() == data);
    assert!(!partial.exists());

    // All of it kept (the agent died before it renamed the file): nothing left to fetch.
    std::fs::write(&partial, &data).unwrap();
    let got = receive().await.unwrap();
    assert_eq!(
        got.resumed_at,
        data.len() as u64 + 3 * udc_agent::file_seal::PART_OVERHEAD
    );
    assert!(std::fs::read(&got.path).unwrap() == data);
    assert_eq!(got.path.file_name().unwrap(), "film (1).bin");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_download_resumes_from_its_partial_file_and_refuses_wrong_bytes() {
    let account = Account::create().await;
    let (from, to) = pair(&account).await;
    let data = bytes(3 * MIB + 17, 12);
    let file_id = upload_small(&account, &from, &data, Some(&to.id)).await;
    let dir = temp_dir("resume");
    let partial = transfer::partial_path(&dir, &file_id);
    let receive = || receive(&account, &to, &file_id, &dir);

    // A third arrived before the connection dropped: only the rest is fetched (Range).
    std::fs::write(&partial, &data[..MIB]).unwrap();
    let got = receive().await.unwrap();
    assert_eq!(got.resumed_at, MIB as u64);
    assert_eq!(std::fs::read(&got.path).unwrap(), data);

    // Kept bytes that were damaged are caught by the SHA-256 and thrown away, not confirmed.
    let mut damaged = data[..MIB].to_vec();
    damaged[1000] ^= 0xff;
    std::fs::write(&partial, &damaged).unwrap();
    let err = receive().await.unwrap_err();
    assert!(err.to_string().contains("not what was sent"), "{err}");
    assert!(!partial.exists());
    let again = receive().await.unwrap();
    assert_eq!(
        (
            again.resumed_at,
            std::fs::read(&again.path).unwrap() == data
        ),
        (0, true)
    );
    assert_eq!(
        again.path.file_name().unwrap(),
        "notes (1).txt",
        "an existing file is never overwritten"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The web app PUTs parts and GETs files straight at the store from its own origin: the store
/// answers the browser's preflight and lets the page read a part's ETag.
#[tokio::test]
async fn the_store_lets_a_web_page_put_parts_and_read_their_etag() {
    let account = Account::create().await;
    let (from, _) = pair(&account).await;
    let data = b"bytes from a browser".to_vec();
    let started = initiate(&account, &from, &data, None).await;
    assert_eq!(started.status, 201, "{}", started.body);
    let file_id = started.body["file"]["id"].as_str().unwrap().to_owned();
    let urls = part_urls(&account, &from, &file_id, &[1], 0).await;
    let url = urls.body["parts"][0]["url"].as_str().unwrap().to_owned();
    let origin = "http://app.example.test";
    let http = reqwest::Client::new();
    let preflight = http
        .request(Method::OPTIONS, &url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert!(["*", origin].contains(&allowed(&preflight, "access-control-allow-origin").as_str()));
    assert!(allowed(&preflight, "access-control-allow-methods").contains("put"));
    let stored = http
        .put(&url)
        .header("origin", origin)
        .body(data)
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success(), "{}", stored.status());
    assert!(["*", origin].contains(&allowed(&stored, "access-control-allow-origin").as_str()));
    assert!(
        allowed(&stored, "access-control-expose-headers").contains("etag"),
        "the page can read the ETag it must record"
    );
}

/// A stored file opened in a browser tab must not run as the web app: either the store is
/// another origin than the app's, or (udc-server's embedded store, on the app's own origin)
/// its answers are inert — sandboxed, never sniffed, offered as a download.
#[tokio::test]
async fn a_stored_file_never_runs_on_the_apps_origin() {
    let account = Account::create().await;
    let (from, _) = pair(&account).await;
    let page = b"<script>alert(document.domain)</script>".to_vec();
    let id = upload_small(&account, &from, &page, None).await;
    let download = get(&account, &from, &format!("/files/{id}/download")).await;
    assert_eq!(download.status, 200, "{}", download.body);
    let url = download.body["url"].as_str().unwrap();
    let origin = |u: &str| {
        let u = reqwest::Url::parse(u).unwrap();
        (
            u.scheme().to_owned(),
            u.host_str().unwrap().to_owned(),
            u.port_or_known_default(),
        )
    };
    if origin(url) != origin(&base_url()) {
        return; // another origin: the browser keeps it apart from the app
    }
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        header("content-security-policy").contains("sandbox"),
        "{:?}",
        resp.headers()
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-disposition").starts_with("attachment"));
}
