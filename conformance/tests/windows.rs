//! The Windows agent (`udc-agent.exe`, cross-built with mingw-w64) under Wine, against the host
//! at `UDC_BASE_URL`, beside the Linux agent: signing in, its place for settings and its
//! session, and files both ways (into Downloads by default). scripts/test.sh builds it, makes
//! the Wine prefix and runs this against udc-server.

use std::path::PathBuf;

use serde_json::Value;
use udc_conformance::cli_agent::Agent;
use udc_conformance::{unique_email, PASSWORD};

/// Bytes that are not all alike, so a part out of place shows.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// This user's folder (`%USERPROFILE%`) in the test's Wine prefix: Wine names the user as Unix
/// does. Its Downloads is a link to the home directory Wine was set up with (scripts/test.sh
/// gives it one of the run's own).
fn user_dir() -> PathBuf {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    PathBuf::from(std::env::var_os("WINEPREFIX").unwrap())
        .join("drive_c/users")
        .join(user)
}

/// Removes what the agent kept in the prefix's own places, however the test ends.
struct Kept(PathBuf);

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_windows_agent_signs_in_keeps_its_session_the_windows_way_and_says_what_it_cannot_serve() {
    let agent = Agent::windows();
    let email = unique_email();
    let password = format!("{PASSWORD}\n");
    // As a person runs it: no config directory given, the session in the system's store.
    let own_way = || {
        let mut command = agent.command();
        command
            .env_remove("UDC_CONFIG_DIR")
            .env_remove("UDC_TOKEN_STORE");
        command
    };
    let (ok, reg, err) = agent.run_command(
        own_way(),
        &[
            "register",
            "--email",
            &email,
            "--password-stdin",
            "--device-name",
            "Win Desk",
        ],
        &password,
    );
    assert!(ok, "register under Wine: {err}");
    assert_eq!(reg["device"]["platform"], "windows");
    let settings = Kept(user_dir().join("AppData/Local/udc"));
    assert!(
        settings.0.join("device-cookies.json").is_file(),
        "the agent keeps its settings in %LOCALAPPDATA%\\udc"
    );
    assert!(
        !settings.0.join("session.json").exists(),
        "the session is in Windows' Credential Manager, not in a file"
    );

    let (ok, listed, err) = agent.run_command(own_way(), &["devices"], "");
    assert!(
        ok,
        "devices with the session from Credential Manager: {err}"
    );
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        (
            &devices[0]["name"],
            &devices[0]["platform"],
            &devices[0]["is_current"]
        ),
        (
            &Value::from("Win Desk"),
            &Value::from("windows"),
            &Value::from(true)
        )
    );

    // Serving this screen is built for X11 only: said, and nothing is offered to viewers.
    let (ok, _, err) = agent.run_command(own_way(), &["remote", "serve"], "");
    assert!(!ok && err.contains("not built for windows"), "{err}");
    let (_, listed, _) = agent.run_command(own_way(), &["devices"], "");
    assert!(
        !listed["devices"][0]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&Value::from("remote_control")),
        "{listed}"
    );
    let (ok, _, err) = agent.run_command(own_way(), &["logout"], "");
    assert!(ok, "{err}");
}

#[test]
fn files_travel_both_ways_between_a_windows_and_a_linux_agent() {
    let email = unique_email();
    let password = format!("{PASSWORD}\n");
    let linux = Agent::new();
    let windows = Agent::windows();
    let sign_in = |agent: &Agent, verb: &str, name: &str| {
        agent.ok(
            &[
                verb,
                "--email",
                &email,
                "--password-stdin",
                "--device-name",
                name,
            ],
            &password,
        );
    };
    sign_in(&linux, "register", "Linux Desk");
    sign_in(&windows, "login", "Windows Laptop");
    linux.ok(&["devices", "trust", "Windows Laptop"], "");
    windows.ok(&["devices", "trust", "Linux Desk"], "");

    // Windows to Linux: a name Windows spells in UTF-16, in two parts.
    let outbox = windows.config.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let report = bytes(9 * 1024 * 1024 + 17, 1);
    std::fs::write(outbox.join("Résumé 2026.pdf"), &report).unwrap();
    let sent = windows.ok(
        &[
            "send",
            &windows.path(&outbox.join("Résumé 2026.pdf")),
            "--to",
            "Linux Desk",
        ],
        "",
    );
    assert_eq!(sent["parts_sent"], 2, "{sent}");
    let inbox = linux.config.join("inbox");
    let got = linux.ok(&["receive", "--dir", inbox.to_str().unwrap()], "");
    assert_eq!(got["received"].as_array().map(Vec::len), Some(1), "{got}");
    assert!(
        std::fs::read(inbox.join("Résumé 2026.pdf")).unwrap() == report,
        "the bytes the Windows agent sent differ"
    );

    // Linux to Windows, into the user's Downloads folder (no folder given).
    let photo = bytes(300 * 1024, 2);
    std::fs::write(linux.config.join("photo.jpg"), &photo).unwrap();
    linux.ok(
        &[
            "send",
            linux.config.join("photo.jpg").to_str().unwrap(),
            "--to",
            "Windows Laptop",
        ],
        "",
    );
    let got = windows.ok(&["receive"], "");
    assert_eq!(got["received"].as_array().map(Vec::len), Some(1), "{got}");
    let landed = Kept(user_dir().join("Downloads/photo.jpg"));
    assert!(
        std::fs::read(&landed.0).ok() == Some(photo),
        "the Windows agent did not save the photo, as sent, in {}",
        landed.0.display()
    );
}
