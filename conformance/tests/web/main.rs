//! The web app in a real browser (headless Chromium over WebDriver) against the host under test,
//! with real agents beside it: what a person does in the page, and what the agents see of it.
//! Every test saves screenshots at 390×844 and 1280×800 (`$UDC_RUN_DIR/screenshots`).

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use udc_conformance::browser::{Browser, PAGE_PATIENCE};
use udc_conformance::desktop::{Display, DisplayAgent};
use udc_conformance::{sha256_hex, unique_email};

mod remote;

/// The presence the page shows for the device named `name`.
async fn wait_presence(b: &Browser, name: &str, presence: &str) {
    b.until(
        &format!("{name} {presence}"),
        "return [...document.querySelectorAll('.device')].some(d => \
           d.querySelector('.device-name')?.textContent === arguments[0] && d.dataset.presence === arguments[1])",
        json!([name, presence]),
    )
    .await;
}

/// Clicks `button` (a CSS class) in the device row of `name`.
async fn device_action(b: &Browser, name: &str, button: &str) {
    b.until(
        &format!("{button} for {name}"),
        "const row = [...document.querySelectorAll('.device')].find(d => \
           d.querySelector('.device-name')?.textContent === arguments[0]); \
         const btn = row?.querySelector(arguments[1]); if (btn) { btn.click(); return true; } return false",
        json!([name, format!(".{button}")]),
    )
    .await;
}

fn devices(agent: &DisplayAgent) -> Vec<Value> {
    agent.run(&["devices"])["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn device_named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device {name:?} in {list:?}"))
}

fn wait_agent(what: &str, ok: impl Fn() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < PAGE_PATIENCE,
            "the agent never saw {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A file of `len` pseudo-random bytes in a fresh directory.
fn test_file(name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("udc-web-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = uuid::Uuid::new_v4().as_u128() as u64 | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_account_sees_its_agents_live_renames_trusts_and_is_signed_out_when_removed() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Test").await;
    b.screenshots("devices-alone").await;

    let display = Display::start();
    let desk = DisplayAgent::login_as(&email, "Desk").spawn(&display, &["clipboard"], "clipboard");
    wait_presence(&b, "Desk", "online").await;
    b.screenshots("devices-online").await;

    // Rename and trust from the page; the agent sees both.
    device_action(&b, "Desk", "rename-button").await;
    b.fill(".rename-input", "Desk at home").await;
    b.click(".rename button[type=submit]").await;
    wait_agent("the new name", || {
        devices(&desk).iter().any(|d| d["name"] == "Desk at home")
    });
    device_action(&b, "Desk at home", "trust-button").await;
    b.click("#confirm-trust").await;
    wait_agent("the page's trust", || {
        let list = devices(&desk);
        let page = device_named(&list, "Web Test")["id"].clone();
        device_named(&list, "Desk at home")["trusted_by"]
            .as_array()
            .is_some_and(|t| t.contains(&page))
    });
    b.wait_text("You trust it").await;

    // The agent stops: the page shows it offline.
    let mut desk = desk;
    desk.kill();
    wait_presence(&b, "Desk at home", "offline").await;

    // Removing the page's device from the agent signs the page out at once.
    desk.run(&["devices", "remove", "Web Test"]);
    b.until(
        "the sign-in form with why",
        "return document.querySelector('#submit') && document.body.innerText.includes('removed')",
        json!([]),
    )
    .await;
    b.screenshots("signed-out-removed").await;
}

/// The Account page lists where the account is signed in (this browser, an agent on a desk,
/// named by their clients) and signs every other session out: the agent must sign in again.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_where_the_account_is_signed_in_and_signs_the_others_out() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Test").await;
    let desk = DisplayAgent::login_as(&email, "Desk");
    b.click("a[href='#/account']").await;
    b.until(
        "the desk's session, named by its client",
        "const rows = [...document.querySelectorAll('.session')]; \
         return rows.length === 2 && rows.some(r => r.innerText.includes('Desk') && r.innerText.includes('udc-agent')) \
           && rows.some(r => r.innerText.includes('this browser'))",
        json!([]),
    )
    .await;
    b.screenshots("account-sessions").await;

    click_when_enabled(&b, "#end-others").await;
    click_when_enabled(&b, "#confirm-end").await;
    b.until(
        "only this browser's session",
        "const rows = [...document.querySelectorAll('.session')]; \
         return rows.length === 1 && rows[0].innerText.includes('this browser')",
        json!([]),
    )
    .await;
    b.screenshots("account-signed-out-elsewhere").await;
    desk.assert_signed_out();
    // The page itself is still signed in: after a reload it lists its own session again.
    b.reload().await;
    b.signed_in().await;
    b.until(
        "this browser's session after a reload",
        "const rows = [...document.querySelectorAll('.session')]; \
         return rows.length === 1 && rows[0].innerText.includes('this browser')",
        json!([]),
    )
    .await;
}

/// Clicks `css` once the page has enabled it (it renders after the input that enables it).
async fn click_when_enabled(b: &Browser, css: &str) {
    b.until(
        &format!("{css} enabled"),
        "const el = document.querySelector(arguments[0]); return el && !el.disabled",
        json!([css]),
    )
    .await;
    b.click(css).await;
}

/// Deleting the account from the page: a wrong password says so and deletes nothing; the
/// right one, confirmed, deletes it — the page is back at sign-in saying why, and the agent on
/// the desk is signed out.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_deletes_the_account_with_its_password() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Test").await;
    let desk = DisplayAgent::login_as(&email, "Desk");
    b.click("a[href='#/account']").await;
    b.fill("#delete-password", "not the password").await;
    b.click("#delete-confirm").await;
    click_when_enabled(&b, "#delete-account").await;
    b.until(
        "the wrong password said",
        "return document.querySelector('#delete-error')?.textContent.includes('Nothing was deleted')",
        json!([]),
    )
    .await;
    b.screenshots("account-delete-wrong-password").await;
    desk.run(&["devices"]);

    b.fill("#delete-password", udc_conformance::PASSWORD).await;
    click_when_enabled(&b, "#delete-account").await;
    b.until(
        "the sign-in form with why",
        "return document.querySelector('#submit') && document.body.innerText.includes('deleted')",
        json!([]),
    )
    .await;
    b.screenshots("account-deleted").await;
    let out = udc_conformance::agent_command(&desk.config)
        .args(["devices"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The Account page changes the password: a wrong current one changes nothing; the right one
/// signs the desk's agent out, and the agent signing in with the new password gets the same
/// account key the page made (the page wrapped that key, not a new one).
#[tokio::test(flavor = "multi_thread")]
async fn the_page_changes_the_password_and_the_account_key_stays() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Test").await;
    let desk = DisplayAgent::login_as(&email, "Desk");
    let account_key = desk.account_key();
    b.click("a[href='#/account']").await;
    // Opened at an IP address, the page says where passkeys work rather than offering to fail.
    b.wait_text("Passkeys need this page opened by a name")
        .await;
    let new_password = "the page's new passphrase";
    let change = |current: &'static str| {
        let b = &b;
        async move {
            b.fill("#password-current", current).await;
            b.fill("#password-new", new_password).await;
            b.fill("#password-again", new_password).await;
            click_when_enabled(b, "#password-change").await;
        }
    };
    change("not the password").await;
    b.until(
        "the wrong password said",
        "return document.querySelector('#password-error')?.textContent.includes('Nothing was changed')",
        json!([]),
    )
    .await;
    desk.run(&["devices"]);

    change(udc_conformance::PASSWORD).await;
    b.until(
        "the change and the session it signed out",
        "return document.querySelector('#password-done')?.textContent.includes('1 other session was signed out') \
           && document.querySelectorAll('.session').length === 1",
        json!([]),
    )
    .await;
    b.until(
        "the change first in the account's activity",
        "const e = document.querySelector('.activity-entry'); \
         return e?.dataset.kind === 'password_changed' && e.innerText.includes('Password changed')",
        json!([]),
    )
    .await;
    b.screenshots("account-password-changed").await;
    desk.assert_signed_out();
    let again = DisplayAgent::login_with(&email, "Desk again", new_password);
    assert_eq!(again.account_key(), account_key, "the same account key");
}

/// The recovery code the page showed at sign-up sets a new password from the sign-in page
/// (a mistyped word is named first, nothing sent), with the same account key; the Account page
/// makes a new code, shown once, and the agent's `recover` takes it.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_recovers_a_lost_password_with_its_code_and_makes_a_new_one() {
    let email = unique_email();
    let b = Browser::start().await;
    let words = b.sign_up_to_code(&email, "Web Test").await;
    assert_eq!(words.split(' ').count(), 12, "{words}");
    b.screenshots("signup-recovery-code").await;
    b.click("#recovery-done").await;
    b.signed_in().await;
    let desk = DisplayAgent::login_as(&email, "Desk");
    let account_key = desk.account_key();

    b.click("#sign-out").await;
    b.click("#forgot").await;
    b.fill("#email", &email).await;
    let mut typo: Vec<&str> = words.split(' ').collect();
    typo[4] = "notaword";
    b.fill("#recovery-code", &typo.join(" ")).await;
    let new_password = "set again from the page";
    b.fill("#password", new_password).await;
    b.fill("#confirm", new_password).await;
    b.click("#submit").await;
    b.until(
        "the mistyped word named",
        "return document.querySelector('#signin-error')?.textContent.includes('word 5')",
        json!([]),
    )
    .await;
    b.screenshots("recover-typo").await;
    desk.run(&["devices"]);
    b.fill("#recovery-code", &words.replace(' ', "\n")).await;
    b.click("#submit").await;
    // The code used is spent: the page shows the new one before it opens the account.
    let renewed = b.recovery_words().await;
    assert_ne!(renewed, words);
    b.click("#recovery-done").await;
    b.signed_in().await;
    desk.assert_signed_out();
    let again = DisplayAgent::login_with(&email, "Desk again", new_password);
    assert_eq!(again.account_key(), account_key, "the same account key");

    b.click("a[href='#/account']").await;
    b.wait_text("You made your recovery code").await;
    b.fill("#recovery-password", new_password).await;
    click_when_enabled(&b, "#recovery-new").await;
    let fresh = b.recovery_words().await;
    assert_ne!(fresh, words);
    b.screenshots("account-recovery-code").await;
    b.click("#recovery-done").await;
    b.wait_text("You made your recovery code").await;
    let recovered = DisplayAgent::new();
    let mut recover = udc_conformance::agent_command(&recovered.config)
        .args(["recover", "--email", &email, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    recover
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{fresh}\nthe agent's new password\n").as_bytes())
        .unwrap();
    assert!(
        recover.wait().unwrap().success(),
        "the agent recovers with the page's new code"
    );
    assert_eq!(recovered.account_key(), account_key);
}

/// Waits for the page's transfer of `name` to reach `phase`; its data attributes.
async fn wait_transfer(b: &Browser, name: &str, phase: &str) -> Value {
    b.until(
        &format!("{name} {phase}"),
        "const t = [...document.querySelectorAll('.transfer')].find(t => \
           t.querySelector('.file-name')?.textContent.includes(arguments[0])); \
         if (t?.dataset.phase === 'failed') return { failed: t.innerText }; \
         return t?.dataset.phase === arguments[1] && { ...t.dataset }",
        json!([name, phase]),
    )
    .await
}

/// A file Chromium finished saving into its download directory.
fn wait_download(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let started = Instant::now();
    loop {
        let partial = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "crdownload"))
            })
            .unwrap_or(false);
        if path.exists() && !partial {
            return std::fs::read(&path).unwrap();
        }
        assert!(started.elapsed() < PAGE_PATIENCE, "{name} was never saved");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The page's account with one agent, "Desk", that trusts the page and is trusted by it (so
/// files move both ways).
async fn page_and_desk(b: &Browser, page_name: &str) -> DisplayAgent {
    let email = unique_email();
    b.sign_up(&email, page_name).await;
    let desk = DisplayAgent::login_as(&email, "Desk");
    desk.run(&["devices", "trust", page_name]);
    b.wait_text("it trusts this browser").await;
    device_action(b, "Desk", "trust-button").await;
    b.click("#confirm-trust").await;
    b.wait_text("You trust it").await;
    desk
}

#[tokio::test(flavor = "multi_thread")]
async fn files_go_from_the_page_to_an_agent_and_back_verified() {
    let b = Browser::start().await;
    let desk = page_and_desk(&b, "Web Files").await;
    b.open("/#/files").await;

    let (path, bytes) = test_file("from the page.bin", 9 * 1024 * 1024 + 123);
    b.choose_file("#file-input", &path).await;
    let sent = wait_transfer(&b, "from the page.bin", "done").await;
    assert!(sent.get("failed").is_none(), "{sent}");
    assert_eq!(
        sent["sha256"],
        sha256_hex(&bytes),
        "the page hashed the file"
    );
    b.screenshots("files-sent").await;
    // Sealed in the page: the server holds a sealed description, the desk opens it.
    let listed = desk.run(&["files"]);
    let file = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "from the page.bin")
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(file["sealed"].is_string(), "{file}");
    assert_eq!(file["size"], json!(bytes.len()), "{file}");
    let into = std::env::temp_dir().join(format!("udc-web-in-{}", uuid::Uuid::new_v4().simple()));
    desk.run(&["receive", "--dir", into.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(into.join("from the page.bin")).unwrap(),
        bytes,
        "the agent received the page's bytes"
    );

    let _ = std::fs::remove_dir_all(path.parent().unwrap());

    let (path, bytes) = test_file("from the desk.bin", 5 * 1024 * 1024 + 7);
    desk.run(&["send", path.to_str().unwrap(), "--to", "Web Files"]);
    b.until(
        "the desk's file in the inbox",
        "const f = [...document.querySelectorAll('.inbox .file')].find(f => \
           f.querySelector('.file-name')?.textContent === 'from the desk.bin'); \
         f?.querySelector('.download-button')?.click(); return !!f",
        json!([]),
    )
    .await;
    let got = wait_transfer(&b, "from the desk.bin", "done").await;
    assert!(got.get("failed").is_none(), "{got}");
    assert_eq!(
        got["sha256"],
        sha256_hex(&bytes),
        "the page checked the whole file"
    );
    assert_eq!(
        wait_download(&b.downloads, "from the desk.bin"),
        bytes,
        "the saved file"
    );
    b.screenshots("files-received").await;
    let _ = std::fs::remove_dir_all(into);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_cut_by_a_reload_resumes_with_the_parts_not_yet_sent() {
    const MIB: usize = 1024 * 1024;
    let b = Browser::start().await;
    let desk = page_and_desk(&b, "Web Resume").await;
    b.open("/#/files").await;
    // A slow uplink, so the reload lands in the middle of the upload.
    b.cdp(
        "Network.emulateNetworkConditions",
        json!({ "offline": false, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 24 * MIB }),
    )
    .await;
    let (path, bytes) = test_file("big.bin", 72 * MIB);
    b.choose_file("#file-input", &path).await;
    b.until(
        "a part of the upload recorded",
        "return Number(document.querySelector('.transfer')?.dataset.recorded) >= arguments[0]",
        json!([8 * MIB]),
    )
    .await;
    b.screenshots("upload-in-flight").await;
    b.reload().await;
    b.cdp(
        "Network.emulateNetworkConditions",
        json!({ "offline": false, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
    )
    .await;
    b.signed_in().await;
    b.find(".transfer[data-phase=needs-file]").await;
    b.screenshots("upload-paused").await;
    b.choose_file(".resume-input", &path).await;
    let done = wait_transfer(&b, "big.bin", "done").await;
    assert!(done.get("failed").is_none(), "{done}");
    let resumed: usize = done["resumedFrom"].as_str().unwrap().parse().unwrap();
    // Whole sealed parts: 8 MiB with its nonce and tag (40 bytes) each.
    assert!(
        (8 * MIB..72 * MIB).contains(&resumed) && resumed.is_multiple_of(8 * MIB + 40),
        "resumed after whole recorded parts, not from scratch: {resumed}"
    );
    let into = std::env::temp_dir().join(format!("udc-web-in-{}", uuid::Uuid::new_v4().simple()));
    desk.run(&["receive", "--dir", into.to_str().unwrap()]);
    assert!(
        std::fs::read(into.join("big.bin")).unwrap() == bytes,
        "the resumed upload is the file"
    );
    let _ = std::fs::remove_dir_all(into);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clipboard_goes_between_the_page_and_an_agent_on_a_desk() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Clip").await;
    let display = Display::start();
    let desk = DisplayAgent::login_as(&email, "Desk").spawn(&display, &["clipboard"], "clipboard");
    b.open("/#/clipboard").await;
    b.signed_in().await;

    let text = format!("copied on the desk {}", uuid::Uuid::new_v4().simple());
    display.copy("UTF8_STRING", text.as_bytes());
    desk.expect("sent");
    b.wait_text(&text).await;
    b.screenshots("clipboard").await;

    let back = format!("sent from the page ✓ {}", uuid::Uuid::new_v4().simple());
    b.fill("#clip-text", &back).await;
    b.click("#clip-send").await;
    desk.expect("applied");
    display.wait_paste("UTF8_STRING", |p| p == back.as_bytes());

    // Bigger than an inline item (256 KiB): sealed, stored as a file that only devices this
    // browser trusts may fetch, applied the same way. (Pasted: the page's text box takes it as
    // a paste would, not typed key by key.)
    b.open("/#/devices").await;
    device_action(&b, "Desk", "trust-button").await;
    b.click("#confirm-trust").await;
    b.wait_text("You trust it").await;
    b.open("/#/clipboard").await;
    b.signed_in().await;
    let big: String = (0..40_000).map(|i| format!("{i:07} ")).collect();
    b.js(
        "const t = document.querySelector('#clip-text'); t.value = arguments[0]; \
         t.dispatchEvent(new Event('input', { bubbles: true })); return true",
        json!([big]),
    )
    .await;
    b.click("#clip-send").await;
    desk.expect("applied");
    display.wait_paste("UTF8_STRING", |p| p == big.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_approves_an_agents_sign_in_and_signs_in_by_an_agents_approval() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Approver").await;

    // An agent asks; the page shows the same words and approves.
    let mut laptop = DisplayAgent::new().start_without_display(
        &[
            "login",
            "--email",
            &email,
            "--approve-with-device",
            "--device-name",
            "Laptop",
        ],
        "approval",
        "requested",
    );
    let phrase = laptop.first["fingerprint_phrase"]
        .as_str()
        .unwrap()
        .to_owned();
    b.until(
        "the approval dialog with the agent's words among decoys",
        "const c = [...document.querySelectorAll('.choice')]; \
         return c.length === 3 && c.some(b => b.textContent === arguments[0] && !b.disabled)",
        json!([phrase]),
    )
    .await;
    b.screenshots("approve-agent").await;
    // Other words than the new device's approve nothing.
    b.js(
        "[...document.querySelectorAll('.choice')].find(b => b.textContent !== arguments[0]).click(); return true",
        json!([phrase]),
    )
    .await;
    b.wait_text("not the words of this request").await;
    b.js(
        "[...document.querySelectorAll('.choice')].find(b => b.textContent === arguments[0]).click(); return true",
        json!([phrase]),
    )
    .await;
    assert!(laptop.finish(), "the agent signed in");
    assert!(devices(&laptop).iter().any(|d| d["name"] == "Web Approver"));
    // Only a device another one trusts may answer sign-in requests.
    device_action(&b, "Laptop", "trust-button").await;
    b.click("#confirm-trust").await;
    b.wait_text("You trust it").await;

    // A second browser signs in without the password; the agent approves.
    let other = Browser::start().await;
    other.open("/").await;
    other.click("#tab-approval").await;
    other.fill("#email", &email).await;
    other.fill("#device-name", "Web Newcomer").await;
    other.click("#submit").await;
    let shown = other
        .until(
            "the phrase",
            "return document.querySelector('#my-phrase')?.textContent",
            json!([]),
        )
        .await;
    other.screenshots("approval-waiting").await;
    let answer = laptop.run(&["approve", "--yes", "--wait", "20"]);
    assert_eq!(
        answer["fingerprint_phrase"], shown,
        "both screens show the same words"
    );
    other.signed_in().await;
    wait_presence(&other, "Laptop", "offline").await;
    // The account key arrived: what the page seals, the agent's account opens.
    other.open("/#/clipboard").await;
    other
        .fill("#clip-text", "sealed with the approved key")
        .await;
    other.click("#clip-send").await;
    b.open("/#/clipboard").await;
    b.wait_text("sealed with the approved key").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_garbled_server_gets_a_clear_message_not_a_blank_page() {
    let email = unique_email();
    let b = Browser::start().await;
    b.sign_up(&email, "Web Errors").await;
    // From the next load on, the page's requests for its device list get what a broken server
    // or a broken proxy would send.
    for (answer, expect) in [
        ("new Response('<h1>502 Bad Gateway</h1>', { status: 502 })", "had a problem (HTTP 502)"),
        ("new Response('{\"devices\": 7}', { status: 200, headers: { 'content-type': 'application/json' } })", "could not be read"),
        ("new Response('not json', { status: 200 })", "cannot read"),
    ] {
        b.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": format!(
                "const real = window.fetch; window.fetch = (input, init) => \
                   String(input) === '/devices' ? Promise.resolve({answer}) : real(input, init);"
            ) }),
        )
        .await;
        b.reload().await;
        b.wait_text(expect).await;
        b.find("#problem").await;
        b.screenshots(&format!("error-{}", &expect[..8].replace(' ', "-"))).await;
        let id = b.cdp("Page.addScriptToEvaluateOnNewDocument", json!({ "source": "" })).await;
        // Each override replaces the last (identifiers are sequential from 1).
        let last: u64 = id["identifier"].as_str().unwrap().parse().unwrap();
        for n in 1..=last {
            b.cdp("Page.removeScriptToEvaluateOnNewDocument", json!({ "identifier": n.to_string() })).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_installs_works_by_keyboard_and_caches_only_its_shell() {
    let b = Browser::start().await;
    b.open("/").await;
    b.find("#submit").await;
    let errors = b.cdp("Page.getInstallabilityErrors", json!({})).await;
    assert_eq!(errors["installabilityErrors"], json!([]), "installable");

    // The sign-in form in order by keyboard alone.
    let mut order = Vec::new();
    for _ in 0..7 {
        for kind in ["keyDown", "keyUp"] {
            b.cdp(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9 }),
            )
            .await;
        }
        order.push(b.js("return document.activeElement.id", json!([])).await);
    }
    assert_eq!(
        order,
        json!([
            "tab-signin",
            "tab-signup",
            "tab-approval",
            "email",
            "password",
            "device-name",
            "submit"
        ])
        .as_array()
        .unwrap()
        .clone()
    );

    // Signed in and every list loaded: the service worker's cache holds the shell, nothing else.
    b.sign_up(&unique_email(), "Web Shell").await;
    b.open("/#/clipboard").await;
    b.signed_in().await;
    let cached = b
        .until(
            "the service worker's cache",
            "return caches.keys().then(names => Promise.all(names.map(n => caches.open(n) \
               .then(c => c.keys()).then(r => r.map(x => new URL(x.url).pathname))))) \
               .then(all => all.flat()).then(paths => paths.length > 2 && paths)",
            json!([]),
        )
        .await;
    for path in cached.as_array().unwrap() {
        let path = path.as_str().unwrap();
        assert!(
            ["/", "/manifest.webmanifest", "/icon.svg"].contains(&path)
                || path.starts_with("/assets/"),
            "the cache holds {path}"
        );
    }
}

/// A virtual authenticator in this browser (Chromium's, through DevTools): CTAP2, discoverable
/// credentials, a fingerprint that always matches, with or without the PRF extension.
async fn authenticator(b: &Browser, prf: bool) -> String {
    b.cdp("WebAuthn.enable", json!({ "enableUI": false })).await;
    let added = b
        .cdp(
            "WebAuthn.addVirtualAuthenticator",
            json!({ "options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserVerified": true, "hasPrf": prf,
                "automaticPresenceSimulation": true,
            }}),
        )
        .await;
    added["authenticatorId"].as_str().unwrap().to_owned()
}

async fn add_passkey(b: &Browser, name: &str) {
    b.click("a[href='#/account']").await;
    b.fill("#passkey-name", name).await;
    b.fill("#passkey-password", udc_conformance::PASSWORD).await;
    click_when_enabled(b, "#passkey-add").await;
    b.until(
        "the passkey added",
        "return document.querySelector('#passkey-added')?.textContent.includes(arguments[0])",
        json!([name]),
    )
    .await;
}

async fn sign_out_and_use_passkey(b: &Browser, screenshots: Option<&str>) {
    b.click("#sign-out").await;
    b.find("#passkey-signin").await;
    if let Some(name) = screenshots {
        b.screenshots(name).await;
    }
    b.click("#passkey-signin").await;
}

/// Passkeys in the page, with Chromium's virtual authenticator: one added on the Account page
/// (with the password) signs in with nothing typed and opens what another device sealed (its
/// PRF unwraps the account key); one without PRF signs in only as far as approval, the email
/// filled in.
#[tokio::test(flavor = "multi_thread")]
async fn a_passkey_signs_the_page_in_without_the_password_and_opens_the_data() {
    let email = unique_email();
    let b = Browser::start().await.on_localhost();
    b.sign_up(&email, "Passkey Browser").await;
    // Something sealed on another device: only the account key opens it.
    let api = udc_conformance::client();
    let (signed, keys) = api.login(&email, udc_conformance::PASSWORD).await.unwrap();
    let desk = api
        .register_device(
            &signed.tokens.access_token,
            &udc_conformance::device_info("Desk"),
        )
        .await
        .unwrap();
    let text = format!("sealed on the desk {}", uuid::Uuid::new_v4().simple());
    api.post_clipboard(
        &desk.tokens.access_token,
        &keys.account_key,
        "text/plain",
        text.as_bytes(),
    )
    .await
    .unwrap();

    let with_prf = authenticator(&b, true).await;
    add_passkey(&b, "Fingerprint").await;
    b.until(
        "a passkey that unlocks",
        "return document.querySelector('#passkey-added').textContent.includes('unlocks your data') \
           && document.querySelector('.passkey')?.dataset.unlocks === 'true'",
        json!([]),
    )
    .await;
    b.screenshots("passkey-added").await;
    sign_out_and_use_passkey(&b, Some("passkey-sign-in")).await;
    b.signed_in().await;
    b.click("a[href='#/clipboard']").await;
    b.wait_text(&text).await;
    b.click("a[href='#/account']").await;
    b.wait_text("Signed in with the passkey “Fingerprint”")
        .await;

    // An authenticator without PRF: its passkey signs in, and another device approves.
    b.cdp(
        "WebAuthn.removeVirtualAuthenticator",
        json!({ "authenticatorId": with_prf }),
    )
    .await;
    authenticator(&b, false).await;
    add_passkey(&b, "Security key").await;
    b.wait_text("cannot unlock your data").await;
    sign_out_and_use_passkey(&b, None).await;
    b.until(
        "approval asked for, the passkey's account filled in",
        "return document.querySelector('#signin-notice')?.textContent.includes('cannot unlock your data here') \
           && document.querySelector('#email')?.value === arguments[0] \
           && document.querySelector('#tab-approval')?.getAttribute('aria-selected') === 'true'",
        json!([email]),
    )
    .await;
    b.screenshots("passkey-needs-approval").await;
}
