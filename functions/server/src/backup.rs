//! `udc-server backup DIR` and `udc-server restore DIR`: a consistent copy of a data directory
//! taken while the server runs and takes writes, and putting one back where no server runs.
//!
//! A backup holds the database (`VACUUM INTO`: one read transaction, so one consistent moment
//! of every table, the hub's event log included), the embedded store's finished objects with
//! their metadata, and `secrets.env` (the pepper and signing keys the database's hashes and
//! tokens need). Objects are copied before and after the database: an object the copied
//! database names was finished before its row was written, so the second pass finds it unless
//! it was deleted in between (only an account deleted during the backup). Unfinished uploads
//! are left out: after a restore, their devices send them again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use serde_json::json;

pub const DATABASE: &str = "udc.sqlite3";
pub const BLOBS: &str = "blobs";
pub const SECRETS: &str = "secrets.env";
/// The embedded store's own keys (`settings.rs`).
pub const STORE_KEYS: &str = "store.env";
const MANIFEST: &str = "udc-backup.json";
const LOCK: &str = "udc.lock";

/// Held by a running server for its data directory: a second server, or a restore, over a
/// live directory is refused instead of corrupting it. The kernel drops it when the process
/// ends, however it ends.
pub struct DataLock {
    _file: fs::File,
}

impl DataLock {
    pub fn take(data_dir: &Path) -> Result<DataLock> {
        let path = data_dir.join(LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => bail!(
                "a udc-server is running on {} (it holds {LOCK}); stop it first",
                data_dir.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// What a backup or restore copied.
#[derive(Debug, Default)]
pub struct Copied {
    pub objects: u64,
    pub object_bytes: u64,
    pub database_bytes: u64,
}

pub fn backup(data_dir: &Path, to: &Path) -> Result<Copied> {
    let database = data_dir.join(DATABASE);
    if !database.is_file() {
        bail!("{} holds no udc database", data_dir.display());
    }
    if to.exists() && fs::read_dir(to)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new directory",
            to.display()
        );
    }
    private_dir(to)?;
    let blobs = data_dir.join(BLOBS);
    let mut copied = Copied::default();
    copy_objects(&blobs, &to.join(BLOBS), &mut copied)?;

    let partial = to.join(format!("{DATABASE}.partial"));
    let copied_db = copy_database(&database, &partial).and_then(|()| check(&partial));
    if let Err(e) = copied_db {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    private_file(&partial)?;
    fs::rename(&partial, to.join(DATABASE))?;
    copied.database_bytes = fs::metadata(to.join(DATABASE))?.len();

    copy_objects(&blobs, &to.join(BLOBS), &mut copied)?;
    let secrets = data_dir.join(SECRETS);
    for name in [SECRETS, STORE_KEYS] {
        if data_dir.join(name).is_file() {
            copy_file(&data_dir.join(name), &to.join(name))?;
        }
    }
    let manifest = json!({
        "udc_server": env!("CARGO_PKG_VERSION"),
        "created_at_ms": udc_core::ports::Clock::now_ms(&udc_core::SystemClock),
        "objects": copied.objects,
        "object_bytes": copied.object_bytes,
        "database_bytes": copied.database_bytes,
        "secrets": secrets.is_file(),
    });
    fs::write(to.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    private_file(&to.join(MANIFEST))?;
    Ok(copied)
}

/// One consistent copy of the live database (`VACUUM INTO`: a single read transaction).
fn copy_database(database: &Path, to: &Path) -> Result<()> {
    let source =
        Connection::open(database).with_context(|| format!("opening {}", database.display()))?;
    // The server's writer holds the lock for a moment at a time: wait for it, as it would.
    source.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to
        .to_str()
        .context("the backup directory's path is not UTF-8")?;
    source
        .execute("VACUUM INTO ?1", [target])
        .context("copying the database")?;
    Ok(())
}

pub fn restore(from: &Path, data_dir: &Path) -> Result<Copied> {
    if !from.join(MANIFEST).is_file() || !from.join(DATABASE).is_file() {
        bail!(
            "{} is not a udc-server backup (no {MANIFEST} and {DATABASE})",
            from.display()
        );
    }
    check(&from.join(DATABASE))?;
    private_dir(data_dir)?;
    let _lock = DataLock::take(data_dir)?;
    // A database's journal left from a crash would be replayed onto the restored file.
    let journals = ["", "-wal", "-shm", "-journal"].map(|end| format!("{DATABASE}{end}"));
    if let Some(found) = journals.iter().find(|name| data_dir.join(name).exists()) {
        bail!(
            "{} already holds a database ({found}): restore into an empty data directory",
            data_dir.display()
        );
    }
    let mut copied = Copied::default();
    copy_objects(&from.join(BLOBS), &data_dir.join(BLOBS), &mut copied)?;
    for name in [SECRETS, STORE_KEYS] {
        if from.join(name).is_file() {
            copy_file(&from.join(name), &data_dir.join(name))?;
        }
    }
    // The database last: a restore cut short leaves none, so it can simply be run again.
    copy_file(&from.join(DATABASE), &data_dir.join(DATABASE))?;
    copied.database_bytes = fs::metadata(data_dir.join(DATABASE))?.len();
    Ok(copied)
}

/// SQLite's own check of a copied database.
fn check(path: &Path) -> Result<()> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = db.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if verdict != "ok" {
        bail!("{} is damaged: {verdict}", path.display());
    }
    Ok(())
}

/// A directory only its owner can read: a backup holds the server's secrets.
fn private_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Files the store writes on the way to an object: a part of an unfinished upload, an object
/// being joined from its parts, or one being written (s3s-fs's `.tmp.N.internal.part`).
fn is_unfinished(name: &str) -> bool {
    [".joining.", ".upload-", ".upload_id-", ".tmp."]
        .iter()
        .any(|start| name.starts_with(start))
}

/// A file only its owner can read: a backup holds the account's data and the server's secrets.
fn private_file(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Copies the store's finished objects and their metadata under `from` to `to`, skipping what
/// an earlier pass already copied (same size: objects never change once finished).
fn copy_objects(from: &Path, to: &Path, copied: &mut Copied) -> Result<()> {
    let entries = match fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    fs::create_dir_all(to)?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if is_unfinished(&name.to_string_lossy()) {
            continue;
        }
        let kind = entry.file_type()?;
        let (source, target) = (entry.path(), to.join(&name));
        if kind.is_dir() {
            copy_objects(&source, &target, copied)?;
        } else if kind.is_file() {
            let len = entry.metadata()?.len();
            if fs::metadata(&target).is_ok_and(|m| m.len() == len) {
                continue;
            }
            match copy_file(&source, &target) {
                Ok(()) => {
                    copied.objects += 1;
                    copied.object_bytes += len;
                }
                // Deleted since it was listed (its file purged, its account deleted).
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// Copies one file through a temporary name, so a copy cut short is never taken for whole.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let mut tmp = PathBuf::from(to);
    tmp.as_mut_os_string().push(".copying");
    fs::copy(from, &tmp)?;
    private_file(&tmp)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, to)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_objects_are_copied() {
        assert!(is_unfinished(".joining.1f2e"));
        assert!(is_unfinished(".upload-0a1b.json"));
        assert!(is_unfinished(".upload_id-0a1b.part-3"));
        assert!(is_unfinished(".tmp.7.internal.part"));
        assert!(!is_unfinished(".bucket-udc-files.object-abc.metadata.json"));
        assert!(!is_unfinished("0d9c3e0e-41d2-4c4f-9a0b-5b8f3c1d2e4f"));
    }
}
