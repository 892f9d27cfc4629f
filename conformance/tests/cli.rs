//! The `udc-agent` binary, driven as a user would, against the host at `UDC_BASE_URL`.
//! `UDC_AGENT_BIN` names the binary (scripts/test.sh builds it).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use udc_conformance::cli_agent::Agent;
use udc_conformance::{agent_bin, agent_command, unique_email, PASSWORD};

#[test]
fn register_list_rename_trust_and_sign_out_from_the_command_line() {
    let email = unique_email();
    let laptop = Agent::new();
    let password = format!("{PASSWORD}\n");
    let reg = laptop.ok(
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "CLI Laptop",
        ],
        &password,
    );
    assert_eq!(reg["device"]["name"], "CLI Laptop");
    let laptop_id = reg["device"]["id"].as_str().unwrap().to_owned();

    // The session is kept in a 0600 file when no keyring is asked for.
    let session = laptop.config.join("session.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&session).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        !std::fs::read_to_string(&session)
            .unwrap()
            .contains(PASSWORD),
        "never store the password"
    );

    let phone = Agent::new();
    phone.ok(
        &[
            "login",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "CLI Phone",
        ],
        &password,
    );
    let list = laptop.ok(&["devices", "list"], "");
    let names: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["CLI Laptop", "CLI Phone"]);

    laptop.ok(&["devices", "trust", "cli phone"], "");
    laptop.ok(&["devices", "rename", "CLI Phone", "Pocket"], "");
    let me = phone.this_device();
    assert_eq!(me["name"], "Pocket");
    assert_eq!(me["trusted_by"], serde_json::json!([laptop_id]));

    // A wrong password fails with the server's error code and leaves no session behind.
    let stranger = Agent::new();
    let (ok, _, err) = stranger.run(&["login", "--email", &email, "--password-stdin"], "wrong\n");
    assert!(!ok);
    assert!(err.contains("invalid_credentials"), "{err}");
    assert!(!stranger.config.join("session.json").exists());

    laptop.ok(&["logout"], "");
    assert!(!session.exists());
    let (ok, _, err) = laptop.run(&["devices"], "");
    assert!(!ok && err.contains("not signed in"), "{err}");

    // The phone removes the laptop; it is gone from the list.
    phone.ok(&["devices", "remove", "CLI Laptop"], "");
    let list = phone.ok(&["devices"], "");
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);

    // Where the account is signed in: the phone alone now, named by the agent.
    let sessions = phone.ok(&["account", "sessions"], "");
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["device_name"], "Pocket");
    assert_eq!(sessions[0]["is_current"], true);
    assert!(sessions[0]["client"]
        .as_str()
        .is_some_and(|c| c.starts_with("udc-agent/")));
    // The phone has no standing over others: the laptop that vouched for it is gone, and it
    // was not the account's first device.
    let (ok, _, err) = phone.run(&["account", "sessions", "end-others"], "");
    assert!(!ok && err.contains("device_not_trusted"), "{err}");
    // Signing its own session out signs the agent out.
    let own = sessions[0]["id"].as_str().unwrap();
    phone.ok(&["account", "sessions", "end", own], "");
    let (ok, _, err) = phone.run(&["devices"], "");
    assert!(!ok && err.contains("not signed in"), "{err}");
}

/// `udc-agent watch --json` as a child process, its stdout lines on a channel.
struct Watcher {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watcher {
    fn start(agent: &Agent) -> Watcher {
        let mut child = agent_command(&agent.config)
            .arg("watch")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next printed event named `name`; panics if none comes (a hang guard, not a timing).
    fn event(&self, name: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("watch printed no {name}"));
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["event"] == name {
                return event;
            }
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_prints_events_and_resumes_where_it_stopped() {
    let email = unique_email();
    let password = format!("{PASSWORD}\n");
    let laptop = Agent::new();
    laptop.ok(
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Watcher",
        ],
        &password,
    );
    let phone = Agent::new();
    phone.ok(
        &[
            "login",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Phone",
        ],
        &password,
    );

    let watcher = Watcher::start(&laptop);
    // A device new to the hub starts with live events: wait until the watcher is connected
    // (it prints its own device.online) before causing one.
    watcher.event("device.online");
    phone.ok(&["devices", "rename", "Phone", "W1"], "");
    let first = watcher.event("device.updated");
    assert_eq!(first["data"]["device"]["name"], "W1");
    // Printing comes before saving the cursor (at-least-once): stop only once it is saved.
    let cursor = laptop.config.join("cursor.json");
    let first_seq = first["seq"].as_u64().unwrap();
    let saved = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["seq"].as_u64())
    };
    for _ in 0..200 {
        if saved(&cursor).is_some_and(|s| s >= first_seq) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        saved(&cursor).is_some_and(|s| s >= first_seq),
        "watch saved no cursor"
    );
    watcher.stop();

    phone.ok(&["devices", "rename", "W1", "W2"], "");
    phone.ok(&["devices", "rename", "W2", "W3"], "");
    let watcher = Watcher::start(&laptop);
    let second = watcher.event("device.updated");
    let third = watcher.event("device.updated");
    assert_eq!(
        (
            second["data"]["device"]["name"].as_str(),
            third["data"]["device"]["name"].as_str()
        ),
        (Some("W2"), Some("W3"))
    );
    assert!(
        second["seq"].as_u64() > first["seq"].as_u64(),
        "nothing already seen is printed again"
    );
    watcher.stop();
}

/// A send killed part-way (SIGKILL, nothing saved on the way out) resumes with only the parts
/// the server has not recorded; the receiver gets the exact bytes.
#[test]
fn a_killed_send_resumes_with_only_the_missing_parts() {
    let email = unique_email();
    let password = format!("{PASSWORD}\n");
    let laptop = Agent::new();
    let desktop = Agent::new();
    let args = |name: &'static str| {
        ["--email", &email, "--password-stdin", "--device-name", name].map(str::to_owned)
    };
    laptop.ok(
        &[&["register".to_owned()][..], &args("Laptop")]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &password,
    );
    desktop.ok(
        &[&["login".to_owned()][..], &args("Desktop")]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &password,
    );
    laptop.ok(&["devices", "trust", "Desktop"], "");

    // 6 parts of 8 MiB (the last smaller), sent one at a time at 8 MiB/s: slow enough to kill.
    let file = laptop.config.join("video.mp4");
    let data: Vec<u8> = (0..45 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::create_dir_all(&laptop.config).unwrap();
    std::fs::write(&file, &data).unwrap();
    let mut child = agent_command(&laptop.config)
        .arg("send")
        .arg(&file)
        .args(["--to", "Desktop", "--parallel", "1", "--limit-rate", "8M"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let progress = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut file_id = String::new();
    let mut parts_before_kill = 0;
    use std::io::BufRead;
    for line in progress.lines().map_while(Result::ok) {
        let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if event["event"] == "part_sent" {
            file_id = event["file_id"].as_str().unwrap().to_owned();
            parts_before_kill += 1;
            if parts_before_kill == 2 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(
        parts_before_kill, 2,
        "the send finished before it could be killed"
    );

    let (ok, sent, err) = laptop.run(&["send", file.to_str().unwrap(), "--to", "Desktop"], "");
    assert!(ok, "{err}");
    assert_eq!(
        sent["file"]["id"],
        file_id.as_str(),
        "the same upload, resumed"
    );
    assert_eq!(sent["resumed"], true);
    let resent = sent["parts_sent"].as_u64().unwrap();
    // At most the part in flight at the kill is sent again.
    assert!(
        (4..=5).contains(&resent),
        "sent {resent} of 6 parts after 2 were recorded: {err}"
    );
    let started = err.lines().find(|l| l.contains("\"uploading\"")).unwrap();
    let started: Value = serde_json::from_str(started).unwrap();
    assert_eq!(
        (
            started["resumed"].as_bool(),
            started["parts_to_send"].as_u64()
        ),
        (Some(true), Some(resent))
    );

    let into = desktop.config.join("inbox");
    let received = desktop.ok(&["receive", "--dir", into.to_str().unwrap()], "");
    assert_eq!(received["received"][0]["file"]["id"], file_id.as_str());
    assert!(
        std::fs::read(into.join("video.mp4")).unwrap() == data,
        "the received bytes differ"
    );
    let again = desktop.ok(&["receive", "--dir", into.to_str().unwrap()], "");
    assert_eq!(
        again["received"],
        serde_json::json!([]),
        "confirmed files are not fetched twice"
    );
}

/// Spawns `udc-agent login --approve-with-device` and returns it with its first JSON line.
fn ask_to_sign_in(agent: &Agent, email: &str) -> (std::process::Child, Value) {
    use std::io::BufRead;
    let mut child = agent_command(&agent.config)
        .args([
            "login",
            "--email",
            email,
            "--approve-with-device",
            "--device-name",
            "New Laptop",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let asked: Value = serde_json::from_str(&first).expect("the request line");
    (child, asked)
}

#[test]
fn a_new_device_signs_in_with_an_approval_from_the_command_line() {
    let email = unique_email();
    let phone = Agent::new();
    phone.ok(
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Phone",
        ],
        &format!("{PASSWORD}\n"),
    );

    // A denied request ends the new device's wait with the reason.
    let denied = Agent::new();
    let (child, asked) = ask_to_sign_in(&denied, &email);
    let answer = phone.ok(&["approve", "--deny", "--wait", "10"], "");
    assert_eq!(answer["state"], "denied");
    assert_eq!(answer["request_id"], asked["request_id"]);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("approval_denied"));

    // An approved one: both screens show the same phrase; the new device gets the account key.
    let laptop = Agent::new();
    let (child, asked) = ask_to_sign_in(&laptop, &email);
    assert_eq!(asked["approval"], "requested");
    let answer = phone.ok(&["approve", "--yes", "--wait", "10"], "");
    assert_eq!(answer["state"], "approved");
    assert_eq!(answer["fingerprint_phrase"], asked["fingerprint_phrase"]);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = |a: &Agent| -> Value {
        serde_json::from_str(&std::fs::read_to_string(a.config.join("session.json")).unwrap())
            .unwrap()
    };
    assert_eq!(session(&laptop)["enc_key"], session(&phone)["enc_key"]);
    let listed = laptop.ok(&["devices"], "");
    let names: Vec<&str> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Phone", "New Laptop"]);

    // Nothing left to answer.
    let (ok, _, err) = phone.run(&["approve", "--yes"], "");
    assert!(!ok && err.contains("no sign-in request"), "{err}");
}

/// A server that answers every request with `body` (200, JSON), then closes the connection;
/// the paths it was asked for come back on the channel.
fn stub_server(body: Value) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let mut length = 0usize;
            let mut first = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if first.is_empty() {
                    first = line.clone();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let mut request_body = vec![0u8; length];
            let _ = reader.read_exact(&mut request_body);
            let _ = tx.send(first.split(' ').nth(1).unwrap_or_default().to_owned());
            let text = body.to_string();
            let _ = reader.get_mut().write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            );
        }
    });
    (url, rx)
}

#[test]
fn a_new_device_shows_the_phrase_of_its_own_key_and_refuses_a_server_that_swaps_it() {
    // The server answers the sign-in request with a phrase of its choosing: the one of a key it
    // would have put in place of the device's, to collect the account key.
    let swapped = "abandon-ability-able-about-above";
    let (url, asked) = stub_server(serde_json::json!({
        "request_id": "0b9d7c9e-6f00-4c8e-9b1a-1f2e3d4c5b6a",
        "poll_secret": "secret",
        "fingerprint_phrase": swapped,
        "expires_in": 120,
    }));
    let agent = Agent::new();
    let out = std::process::Command::new(agent_bin())
        .args([
            "--server",
            &url,
            "--json",
            "login",
            "--email",
            &unique_email(),
            "--approve-with-device",
        ])
        .env("UDC_CONFIG_DIR", &agent.config)
        .env("UDC_TOKEN_STORE", "file")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must refuse: {stdout} {stderr}");
    assert!(
        !stdout.contains(swapped),
        "it showed the server's phrase: {stdout}"
    );
    assert!(stderr.contains("refusing"), "{stderr}");
    assert_eq!(asked.recv().unwrap(), "/auth/approval/request");
    assert!(
        asked.try_recv().is_err(),
        "it went on to wait for an approval"
    );
}

/// Names no file system would take as they are, and a file whose bytes are not what its
/// sender declared: each good file arrives under a safe, recognisable name, the bad one is
/// reported and left on the server, and nothing blocks what follows.
#[test]
fn receive_saves_hostile_names_safely_and_one_bad_file_blocks_nothing() {
    use udc_conformance::{upload_as, Account};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let account = runtime.block_on(Account::create());
    let desktop = Agent::new();
    desktop.ok(
        &[
            "login",
            "--email",
            &account.email,
            "--password-stdin",
            "--device-name",
            "Desktop",
        ],
        &format!("{PASSWORD}\n"),
    );
    let desktop_id = desktop.this_device()["id"].as_str().unwrap().to_owned();
    let (bad_id, expected) = runtime.block_on(async {
        let sender = account.device("Sender").await;
        account
            .api
            .trust(sender.token(), &sender.id, &desktop_id)
            .await
            .unwrap();
        let long = format!("{}.txt", "l".repeat(230));
        let mut expected = Vec::new();
        for (i, name) in [
            long.as_str(),
            "photo\u{202E}gpj.exe",
            "CON.txt",
            "...profile",
            "é".repeat(120).as_str(),
        ]
        .into_iter()
        .enumerate()
        {
            let data = format!("file {i} for the desktop").into_bytes();
            upload_as(&account, &sender, name, &data, &data, Some(&desktop_id)).await;
            expected.push((udc_agent::transfer::local_name(name), data));
        }
        // Declares one content, stores another of the same size.
        let declared = b"what the sender said".to_vec();
        let bad = upload_as(
            &account,
            &sender,
            "liar.bin",
            &declared,
            b"what the sender sent",
            Some(&desktop_id),
        )
        .await;
        (bad, expected)
    });

    let into = desktop.config.join("inbox");
    let (ok, out, err) = desktop.run(&["receive", "--dir", into.to_str().unwrap()], "");
    assert!(!ok, "one file failed: the exit status says so");
    assert_eq!(
        out["received"].as_array().unwrap().len(),
        expected.len(),
        "{err}"
    );
    assert_eq!(out["failed"][0]["file_id"], bad_id.as_str(), "{err}");
    for (name, data) in &expected {
        assert!(
            name.len() <= 200 && !name.starts_with('.') && !name.contains('\u{202E}'),
            "{name}"
        );
        assert_eq!(&std::fs::read(into.join(name)).unwrap(), data, "{name}");
    }
    assert!(!name_in(&into, "liar.bin"), "the bad bytes are not kept");
    // The rest are done; the refused file stays on the server, and is not fetched again for
    // nothing (the same bytes would come back) unless asked for by id.
    let again = desktop.ok(&["receive", "--dir", into.to_str().unwrap()], "");
    assert_eq!(again["received"], serde_json::json!([]));
    assert_eq!(again["skipped"], serde_json::json!([bad_id]));
    let (ok, retried, _) = desktop.run(
        &[
            "receive",
            "--dir",
            into.to_str().unwrap(),
            "--file",
            &bad_id,
        ],
        "",
    );
    assert!(!ok);
    assert_eq!(retried["failed"][0]["file_id"], bad_id.as_str());
}

fn name_in(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(name))
}

/// `account delete`: refused without a confirmation, then with the password it deletes the
/// account and signs the agent out; the email no longer signs in.
#[test]
fn an_account_is_deleted_from_the_command_line() {
    let email = unique_email();
    let agent = Agent::new();
    let password = format!("{PASSWORD}\n");
    agent.ok(
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Doomed",
        ],
        &password,
    );
    let (ok, _, err) = agent.run(&["account", "delete", "--password-stdin"], &password);
    assert!(!ok && err.contains("--yes"), "{err}");
    agent.ok(&["devices"], "");

    let (ok, _, err) = agent.run(
        &["account", "delete", "--password-stdin", "--yes"],
        "wrong\n",
    );
    assert!(!ok && err.contains("wrong_password"), "{err}");
    agent.ok(&["devices"], "");

    let deleted = agent.ok(
        &["account", "delete", "--password-stdin", "--yes"],
        &password,
    );
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["remaining"], serde_json::Value::Null);
    let (ok, _, err) = agent.run(&["devices"], "");
    assert!(!ok && err.contains("not signed in"), "{err}");
    let again = Agent::new();
    let (ok, _, err) = again.run(&["login", "--email", &email, "--password-stdin"], &password);
    assert!(!ok && err.contains("invalid_credentials"), "{err}");
}

/// `account password`: a wrong current password changes nothing; the right one changes it, the
/// other device is signed out, and signing in there with the new password brings back the
/// same account key (so everything sealed stays readable); the old password no longer works.
#[test]
fn the_password_is_changed_from_the_command_line() {
    let email = unique_email();
    let (laptop, phone) = (Agent::new(), Agent::new());
    let password = format!("{PASSWORD}\n");
    let new_password = "a new passphrase for the account";
    laptop.ok(
        &["register", "--email", &email, "--password-stdin"],
        &password,
    );
    phone.ok(&["login", "--email", &email, "--password-stdin"], &password);
    let key_of = |agent: &Agent| {
        let session: Value = serde_json::from_str(
            &std::fs::read_to_string(agent.config.join("session.json")).unwrap(),
        )
        .unwrap();
        session["enc_key"].as_str().unwrap().to_owned()
    };
    let account_key = key_of(&laptop);
    assert_eq!(key_of(&phone), account_key);

    let (ok, _, err) = laptop.run(
        &["account", "password", "--password-stdin"],
        &format!("wrong\n{new_password}\n"),
    );
    assert!(!ok && err.contains("wrong_password"), "{err}");
    phone.ok(&["devices"], "");

    let changed = laptop.ok(
        &["account", "password", "--password-stdin"],
        &format!("{PASSWORD}\n{new_password}\n"),
    );
    assert_eq!(changed["changed"], true);
    assert!(changed["ended"].as_u64().unwrap() >= 1, "{changed}");
    let activity = laptop.ok(&["account", "activity", "--limit", "2"], "");
    assert_eq!(
        activity["activity"][0]["kind"], "password_changed",
        "{activity}"
    );
    laptop.ok(&["devices"], "");
    let (ok, _, err) = phone.run(&["devices"], "");
    assert!(!ok && err.contains("session_revoked"), "{err}");

    let (ok, _, err) = phone.run(&["login", "--email", &email, "--password-stdin"], &password);
    assert!(!ok && err.contains("invalid_credentials"), "{err}");
    phone.ok(
        &["login", "--email", &email, "--password-stdin"],
        &format!("{new_password}\n"),
    );
    assert_eq!(key_of(&phone), account_key, "the same account key");
}

/// `register` shows the recovery code once; `recover` with it (a mistyped word is caught
/// before anything is sent) sets a new password and signs in, with the same account key;
/// `account recovery-code` makes a new one, and the last one stops working.
#[test]
fn a_lost_password_is_recovered_with_the_code_from_the_command_line() {
    let email = unique_email();
    let (laptop, phone) = (Agent::new(), Agent::new());
    let reg = laptop.ok(
        &["register", "--email", &email, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let words = reg["recovery_code"].as_str().expect("the code").to_owned();
    assert_eq!(words.split(' ').count(), 12, "{words}");
    let key_of = |agent: &Agent| {
        let session: Value = serde_json::from_str(
            &std::fs::read_to_string(agent.config.join("session.json")).unwrap(),
        )
        .unwrap();
        session["enc_key"].as_str().unwrap().to_owned()
    };

    let mut typo: Vec<&str> = words.split(' ').collect();
    typo[2] = "zebraa";
    let (ok, _, err) = phone.run(
        &["recover", "--email", &email, "--password-stdin"],
        &format!("{}\nnew password here\n", typo.join(" ")),
    );
    assert!(!ok && err.contains("word 3"), "{err}");
    laptop.ok(&["devices"], "");

    let new_password = "recovered passphrase";
    phone.ok(
        &["recover", "--email", &email, "--password-stdin"],
        &format!("{}\n{new_password}\n", words.to_uppercase()),
    );
    assert_eq!(key_of(&phone), key_of(&laptop), "the same account key");
    let (ok, _, err) = laptop.run(&["devices"], "");
    assert!(!ok && err.contains("session_revoked"), "{err}");

    let fresh = phone.ok(
        &["account", "recovery-code", "--password-stdin"],
        &format!("{new_password}\n"),
    );
    let fresh = fresh["recovery_code"].as_str().unwrap();
    assert_ne!(fresh, words);
    let (ok, _, err) = laptop.run(
        &["recover", "--email", &email, "--password-stdin"],
        &format!("{words}\nyet another one\n"),
    );
    assert!(!ok && err.contains("invalid_recovery_code"), "{err}");
}

/// Several agents of one device (`clipboard`, `remote serve` and a `devices` typed meanwhile, or
/// the background `run`) refresh its session when the access token nears its end. The refresh
/// token is used once: had each sent the same one, the server would take it for a stolen copy
/// and end the session. They take turns, and the later ones use the pair the first one saved.
#[tokio::test(flavor = "multi_thread")]
async fn agents_of_one_device_refreshing_at_once_keep_its_session() {
    // Made through the API from an address of its own: sign-ups from one address are limited,
    // and every agent here comes from 127.0.0.1.
    let account = udc_conformance::Account::create().await;
    let agent = Agent::new();
    agent.login(&account.email, "Busy desk");
    let file = agent.config.join("session.json");
    let mut session: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let refresh = session["refresh_token"].clone();
    // Its access token is about to end: every agent started now refreshes first.
    session["access_expires_at"] = Value::from(0);
    std::fs::write(&file, session.to_string()).unwrap();

    let children: Vec<_> = (0..6)
        .map(|_| {
            agent
                .command()
                .arg("devices")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "an agent failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let session: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_ne!(session["refresh_token"], refresh, "nobody refreshed");
    // The session is still alive afterwards.
    agent.ok(&["devices"], "");
}
