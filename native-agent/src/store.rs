//! Where the agent keeps its session: the OS keyring where one answers (macOS Keychain,
//! Windows Credential Manager, the Secret Service on Linux desktops), otherwise a file in the
//! config directory (`%LOCALAPPDATA%\udc` on Windows, the XDG one elsewhere; mode 0600 on Unix).
//! `UDC_TOKEN_STORE=file|keyring|auto` chooses (default auto).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::client::{Client, TokenPair};

/// Everything a signed-in agent remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub server: String,
    pub email: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub access_token: String,
    /// Unix seconds.
    pub access_expires_at: i64,
    pub refresh_token: String,
    /// The account key (base64) that seals end to end; it never leaves the device. (Named for
    /// what sessions kept before account keys were wrapped; kept so saved sessions still load.)
    pub enc_key: String,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Session {
    /// This session's device: every session made by signing in has one.
    pub fn device(&self) -> Result<String> {
        self.device_id
            .clone()
            .ok_or_else(|| anyhow!("this session has no device: sign in again"))
    }

    /// The keys this account's files are sealed with.
    pub fn file_keys(&self) -> Result<std::sync::Arc<udc_client::file_seal::FileKeys>> {
        let key = udc_client::seal::account_key(&self.enc_key)?;
        Ok(std::sync::Arc::new(udc_client::file_seal::FileKeys::new(
            &key,
        )?))
    }

    pub fn apply(&mut self, tokens: TokenPair) {
        self.access_expires_at = now_secs() + tokens.expires_in;
        self.access_token = tokens.access_token;
        self.refresh_token = tokens.refresh_token;
        self.user_id = tokens.user_id;
        self.device_id = tokens.device_id;
    }

    /// Whether the access token has more than a minute left.
    fn fresh(&self) -> bool {
        self.access_expires_at - now_secs() >= 60
    }

    /// A current access token, refreshing (and saving the rotated pair) when it is about to end.
    /// A refresh token is good for one use (a second use ends the session: it looks stolen), and
    /// several agents of this device may hold the same one — `clipboard`, `remote serve`, a
    /// `devices` typed meanwhile. So they take turns, and whoever comes after a refresh takes the
    /// pair it saved instead of sending the old token again.
    pub async fn access_token(&mut self, client: &Client, store: &Store) -> Result<String> {
        if self.fresh() {
            return Ok(self.access_token.clone());
        }
        let _turn = store.refresh_turn().await?;
        if let Some(saved) = store.load()? {
            if saved.refresh_token != self.refresh_token
                && saved.user_id == self.user_id
                && saved.device_id == self.device_id
            {
                *self = saved;
            }
        }
        if !self.fresh() {
            let tokens = client.refresh(&self.refresh_token).await?;
            self.apply(tokens);
            store.save(self)?;
        }
        Ok(self.access_token.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Auto,
    Keyring,
    File,
}

/// How long an agent waits for another one's refresh (a refresh is one request).
const REFRESH_TURN_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Store {
    dir: PathBuf,
    backend: Backend,
}

/// A directory named by the environment (an empty value names none).
pub(crate) fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where this device's settings go on Windows: the local application data, not the roaming one,
/// since what is kept here belongs to this device (its id, and its session when Credential
/// Manager refuses it) and must not follow a roaming profile to another machine. XDG and HOME
/// are Unix habits there, and a value inherited from a Unix shell, as under Wine, is no
/// Windows path.
#[cfg(windows)]
fn default_dir() -> Option<PathBuf> {
    env_dir("LOCALAPPDATA")
}

#[cfg(not(windows))]
fn default_dir() -> Option<PathBuf> {
    env_dir("XDG_CONFIG_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".config")))
}

/// Where received files go unless the owner says otherwise: the user's Downloads folder
/// (`%USERPROFILE%\Downloads` on Windows; `$XDG_DOWNLOAD_DIR`, else `~/Downloads`, elsewhere),
/// or the current directory when there is no home to find it in.
pub fn downloads_dir() -> PathBuf {
    let found = if cfg!(windows) {
        env_dir("USERPROFILE").map(|h| h.join("Downloads"))
    } else {
        env_dir("XDG_DOWNLOAD_DIR").or_else(|| env_dir("HOME").map(|h| h.join("Downloads")))
    };
    found.unwrap_or_else(|| PathBuf::from("."))
}

impl Store {
    /// The directory settings and state live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `UDC_CONFIG_DIR`, else the system's place for a user's settings: `%LOCALAPPDATA%\udc`
    /// on Windows, `$XDG_CONFIG_HOME/udc` or `~/.config/udc` elsewhere.
    pub fn from_env() -> Result<Store> {
        let dir = match env_dir("UDC_CONFIG_DIR") {
            Some(d) => d,
            None => default_dir()
                .ok_or_else(|| anyhow!("cannot find a config directory: set UDC_CONFIG_DIR"))?
                .join("udc"),
        };
        let backend = match std::env::var("UDC_TOKEN_STORE").as_deref() {
            Ok("file") => Backend::File,
            Ok("keyring") => Backend::Keyring,
            Ok("auto") | Err(_) => Backend::Auto,
            Ok(other) => {
                return Err(anyhow!(
                    "UDC_TOKEN_STORE={other}: use file, keyring or auto"
                ))
            }
        };
        Ok(Store { dir, backend })
    }

    pub fn at(dir: &Path) -> Store {
        Store {
            dir: dir.to_owned(),
            backend: Backend::File,
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    fn keyring_entry(&self) -> Result<keyring::Entry> {
        // One entry per config directory, so separate profiles do not collide.
        keyring::Entry::new("udc", &format!("session:{}", self.dir.display()))
            .map_err(|e| anyhow!("keyring: {e}"))
    }

    /// This device's turn to refresh its session: an exclusive lock on a file beside it, held
    /// until the value is dropped (the system lets go of it if the process dies).
    async fn refresh_turn(&self) -> Result<fs::File> {
        fs::create_dir_all(&self.dir)?;
        let path = self.dir.join("session.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // Tried, not waited for in a blocking call: a thread blocked on the lock could not be
        // stopped when this gives up, and would hold the process's exit.
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
            if started.elapsed() >= REFRESH_TURN_WITHIN {
                return Err(anyhow!(
                    "another udc-agent of this device has been refreshing its session for {} s: \
                     is one stuck?",
                    REFRESH_TURN_WITHIN.as_secs()
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn load(&self) -> Result<Option<Session>> {
        if self.backend != Backend::File {
            match self
                .keyring_entry()
                .and_then(|e| e.get_password().map_err(|e| anyhow!(e)))
            {
                Ok(text) => return Ok(Some(serde_json::from_str(&text)?)),
                Err(e) if self.backend == Backend::Keyring => {
                    if e.downcast_ref::<keyring::Error>()
                        .is_some_and(|k| matches!(k, keyring::Error::NoEntry))
                    {
                        return Ok(None);
                    }
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        match fs::read_to_string(self.file()) {
            Ok(text) => {
                Ok(Some(serde_json::from_str(&text).with_context(|| {
                    format!("reading {}", self.file().display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.file().display())),
        }
    }

    pub fn save(&self, session: &Session) -> Result<()> {
        let text = serde_json::to_string_pretty(session)?;
        if self.backend != Backend::File {
            match self
                .keyring_entry()
                .and_then(|e| e.set_password(&text).map_err(|e| anyhow!(e)))
            {
                Ok(()) => {
                    // Never leave a stale plaintext copy beside the keyring one.
                    let _ = fs::remove_file(self.file());
                    return Ok(());
                }
                Err(e) if self.backend == Backend::Keyring => return Err(e),
                Err(_) => {}
            }
        }
        write_private(&self.file(), text.as_bytes())
    }

    /// The last event seq this device processed (`watch` resumes from it).
    pub fn cursor(&self, device_id: &str) -> Option<u64> {
        let text = fs::read_to_string(self.dir.join("cursor.json")).ok()?;
        let saved: serde_json::Value = serde_json::from_str(&text).ok()?;
        (saved["device_id"] == device_id)
            .then(|| saved["seq"].as_u64())
            .flatten()
    }

    pub fn save_cursor(&self, device_id: &str, seq: u64) -> Result<()> {
        let text = serde_json::json!({ "device_id": device_id, "seq": seq }).to_string();
        write_private(&self.dir.join("cursor.json"), text.as_bytes())
    }

    /// Files whose bytes this device refused (their SHA-256 did not match): `receive` skips
    /// them, since the server would hand over the same bytes again.
    pub fn refused_files(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("refused-files.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save_refused_files(&self, ids: &[String]) -> Result<()> {
        let text = serde_json::to_string(ids)?;
        write_private(&self.dir.join("refused-files.json"), text.as_bytes())
    }

    /// The device cookie this client got at its last sign-in to `email`'s account. Kept across
    /// logouts: it only ever spares this client others' failed sign-ins.
    pub fn device_cookie(&self, email: &str) -> Option<String> {
        let text = fs::read_to_string(self.dir.join("device-cookies.json")).ok()?;
        let saved: serde_json::Value = serde_json::from_str(&text).ok()?;
        saved[email.to_lowercase()].as_str().map(str::to_owned)
    }

    pub fn save_device_cookie(&self, email: &str, cookie: &str) -> Result<()> {
        let path = self.dir.join("device-cookies.json");
        let mut saved: serde_json::Value = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        saved[email.to_lowercase()] = serde_json::json!(cookie);
        write_private(&path, saved.to_string().as_bytes())
    }

    pub fn clear(&self) -> Result<()> {
        let _ = fs::remove_file(self.dir.join("cursor.json"));
        if self.backend != Backend::File {
            if let Ok(entry) = self.keyring_entry() {
                let _ = entry.delete_credential();
            }
        }
        match fs::remove_file(self.file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Writes a file only its owner can read, replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_with_owner_only_permissions() {
        let dir = std::env::temp_dir().join(format!("udc-store-test-{}", std::process::id()));
        let store = Store::at(&dir);
        assert!(store.load().unwrap().is_none());
        let session = Session {
            server: "http://127.0.0.1:1".into(),
            email: "a@example.com".into(),
            user_id: "u".into(),
            device_id: Some("d".into()),
            access_token: "at".into(),
            access_expires_at: 1,
            refresh_token: "rt".into(),
            enc_key: "k".into(),
        };
        store.save(&session).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("session.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(store.load().unwrap().unwrap().refresh_token, "rt");
        store.clear().unwrap();
        assert!(store.load().unwrap().is_none());
        fs::remove_dir_all(dir).unwrap();
    }
}
