//! Moving file bytes straight between this device and object storage through presigned URLs,
//! sealed end to end (`udc_client::file_seal`): the server and the store see sizes and times.
//!
//! Sending hashes the file, asks the server for an upload with its description sealed, seals
//! and PUTs the parts in parallel and records each one, so a dropped network or a killed agent
//! resumes with only the missing parts (the state of unfinished uploads is kept in a small file
//! per upload; a part sealed again is byte-identical). Receiving opens each part as it arrives,
//! keeps the sealed bytes in a `.part` file to resume with a `Range` request, and confirms only
//! when the whole file's SHA-256 matches the sealed description. Files stored in the clear (sent
//! before sealing) are still received as they were. Memory stays at `parallel` parts in
//! flight, whatever the file's size.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use udc_client::file_seal::{Description, FileKeys, PartSealer, Plan, Resume, PART_OVERHEAD};

use crate::client::Client;
use crate::files::{FileInfo, NewUpload, PartUrl};
use crate::store::{Session, Store};

/// Part URLs asked for at once: a few rounds of parallel work, well inside their expiry.
const URL_BATCH: usize = 16;
/// Re-ask for URLs older than this (the server signs them for 15 minutes).
const URL_FRESH_FOR: Duration = Duration::from_secs(10 * 60);
const PUT_ATTEMPTS: u32 = 3;
const READ_CHUNK: usize = 1024 * 1024;

/// Where a fresh access token comes from: the signed-in session (refreshed when due), or a
/// fixed token in tests.
#[allow(async_fn_in_trait)]
pub trait Tokens {
    async fn token(&mut self) -> Result<String>;
}

impl Tokens for String {
    async fn token(&mut self) -> Result<String> {
        Ok(self.clone())
    }
}

pub struct SessionTokens<'a> {
    pub client: &'a Client,
    pub session: &'a mut Session,
    pub store: &'a Store,
}

impl Tokens for SessionTokens<'_> {
    async fn token(&mut self) -> Result<String> {
        self.session.access_token(self.client, self.store).await
    }
}

/// What a transfer reports as it goes (printed as JSON lines with `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Hashing {
        size: u64,
    },
    Uploading {
        file_id: String,
        size: u64,
        part_count: u64,
        parts_to_send: u64,
        resumed: bool,
    },
    PartSent {
        file_id: String,
        part_number: u64,
        bytes_done: u64,
        size: u64,
    },
    Downloading {
        file_id: String,
        size: u64,
        resumed_at: u64,
    },
    Received {
        file_id: String,
        bytes_done: u64,
        size: u64,
    },
}

#[derive(Debug, Clone)]
pub struct SendOptions {
    pub target_device_id: Option<String>,
    pub mime: Option<String>,
    /// Parts in flight at once.
    pub parallel: usize,
    /// Average bytes per second, if limited.
    pub limit_rate: Option<u64>,
    pub part_size: Option<u64>,
    /// Where the state of unfinished uploads is kept.
    pub state_dir: PathBuf,
    /// The account's file keys: every file is sealed with them.
    pub keys: Arc<FileKeys>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub file: FileInfo,
    /// The account already stored these bytes: nothing was uploaded.
    pub deduplicated: bool,
    /// An earlier attempt had started this upload.
    pub resumed: bool,
    pub parts_sent: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub file: FileInfo,
    pub path: PathBuf,
    pub resumed_at: u64,
}

/// An unfinished upload, saved before each step that changes the server's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadState {
    idempotency_key: String,
    file_id: Option<String>,
    upload_id: Option<String>,
}

fn random_key() -> Result<String> {
    crate::client::fresh_key().ok_or_else(|| anyhow!("the system gave no randomness"))
}

/// The whole file's SHA-256, read on a blocking thread.
pub async fn sha256_file(path: &Path) -> Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<String> {
        let mut f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex(&hasher.finalize()))
    })
    .await?
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn state_path(dir: &Path, sha256: &str, size: u64, target: Option<&str>) -> PathBuf {
    dir.join("uploads")
        .join(format!("{sha256}-{size}-{}.json", target.unwrap_or("any")))
}

fn save_state(path: &Path, state: &UploadState) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(state)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn is_not_found(e: &crate::Error) -> bool {
    e.status() == Some(404)
}

/// Sends `path`: resumes an unfinished upload of the same bytes to the same target, or starts one.
pub async fn send(
    client: &Client,
    tokens: &mut impl Tokens,
    path: &Path,
    opts: &SendOptions,
    on: &mut dyn FnMut(Progress),
) -> Result<Sent> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no usable file name", path.display()))?
        .to_owned();
    if name.chars().count() > 255 {
        bail!("{}: a file name is at most 255 characters", path.display());
    }
    let mime = opts
        .mime
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if mime.len() > 127 || !mime.contains('/') || mime.chars().any(char::is_whitespace) {
        bail!("--mime {mime}: a media type is type/subtype");
    }
    on(Progress::Hashing { size });
    let described = Description {
        name,
        mime,
        size,
        sha256: sha256_file(path).await?,
        part_size: opts
            .part_size
            .unwrap_or_else(|| Plan::for_size(size).part_size),
    };
    let plan = described.plan();
    if plan.part_count > Plan::MAX_PARTS {
        bail!(
            "{} would need {} parts of {} bytes; at most {} are allowed",
            path.display(),
            plan.part_count,
            plan.part_size,
            Plan::MAX_PARTS
        );
    }
    let content_id = opts.keys.content_id(&described)?;
    let sealer = Arc::new(opts.keys.parts(&described)?);
    let state_file = state_path(
        &opts.state_dir,
        &content_id,
        plan.sealed_size,
        opts.target_device_id.as_deref(),
    );
    let mut state: Option<UploadState> = std::fs::read(&state_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());

    // An earlier attempt: ask the server what it has.
    let mut resumed = None;
    if let Some(UploadState {
        file_id: Some(id), ..
    }) = &state
    {
        match client.upload_status(&tokens.token().await?, id).await {
            Ok(status) => resumed = Some(status),
            Err(e) if is_not_found(&e) => state = None,
            Err(e) => return Err(e.into()),
        }
    }
    let (file_id, upload_id, part_size, part_count, missing, was_resumed) = match resumed {
        Some(status) if status.state == "available" => {
            let file = client.file(&tokens.token().await?, &status.file_id).await?;
            let _ = std::fs::remove_file(&state_file);
            return Ok(Sent {
                file: file.opened(&opts.keys),
                deduplicated: false,
                resumed: true,
                parts_sent: 0,
            });
        }
        Some(status) => (
            status.file_id,
            status
                .upload_id
                .ok_or_else(|| anyhow!("the server lost the upload id"))?,
            status.part_size,
            status.part_count,
            status.missing,
            true,
        ),
        None => {
            // The key is saved first: if we die before the answer arrives, the retry gets
            // the same upload instead of starting a second one.
            let mut st = match state.take() {
                Some(s) => s,
                None => UploadState {
                    idempotency_key: random_key()?,
                    file_id: None,
                    upload_id: None,
                },
            };
            save_state(&state_file, &st)?;
            let initiated = client
                .initiate_upload(
                    &tokens.token().await?,
                    &NewUpload {
                        name: None,
                        sealed: Some(&opts.keys.seal_description(&described)?),
                        size: plan.sealed_size,
                        sha256: &content_id,
                        mime: None,
                        target_device_id: opts.target_device_id.as_deref(),
                        part_size: Some(plan.sealed_part_size),
                    },
                    &st.idempotency_key,
                )
                .await?;
            let Some(plan) = initiated
                .upload
                .filter(|_| initiated.status == "upload_required")
            else {
                let _ = std::fs::remove_file(&state_file);
                return Ok(Sent {
                    file: initiated.file.opened(&opts.keys),
                    deduplicated: true,
                    resumed: false,
                    parts_sent: 0,
                });
            };
            st.file_id = Some(initiated.file.id.clone());
            st.upload_id = Some(plan.upload_id.clone());
            save_state(&state_file, &st)?;
            (
                initiated.file.id,
                plan.upload_id,
                plan.part_size,
                plan.part_count,
                (1..=plan.part_count).collect(),
                false,
            )
        }
    };
    // The parts were sealed for this cut: another would not open.
    if (part_size, part_count) != (plan.sealed_part_size, plan.part_count) {
        bail!(
            "the server planned {part_count} parts of {part_size} bytes for file {file_id}; \
             this device sealed {} of {}",
            plan.part_count,
            plan.sealed_part_size
        );
    }
    on(Progress::Uploading {
        file_id: file_id.clone(),
        size: plan.sealed_size,
        part_count,
        parts_to_send: missing.len() as u64,
        resumed: was_resumed,
    });
    let job = PartsJob {
        client,
        file_id: &file_id,
        upload_id: &upload_id,
        path,
        plan,
        sealer,
    };
    let parts_sent = job.run(tokens, missing, opts, on).await?;
    let file = client
        .complete_upload(
            &tokens.token().await?,
            &upload_id,
            &format!("complete-{file_id}"),
        )
        .await?;
    let _ = std::fs::remove_file(&state_file);
    Ok(Sent {
        file: file.opened(&opts.keys),
        deduplicated: false,
        resumed: was_resumed,
        parts_sent,
    })
}

struct PartsJob<'a> {
    client: &'a Client,
    file_id: &'a str,
    upload_id: &'a str,
    path: &'a Path,
    plan: Plan,
    sealer: Arc<PartSealer>,
}

impl PartsJob<'_> {
    /// Sealed bytes of part `n`, as the store holds them.
    fn part_len(&self, n: u64) -> u64 {
        self.plan.plain_part(n).1 + PART_OVERHEAD
    }

    /// Uploads `missing` parts, `parallel` at a time; each task records its part as soon as
    /// the store took it, so a restart re-sends at most the parts that were in flight.
    async fn run(
        &self,
        tokens: &mut impl Tokens,
        missing: Vec<u64>,
        opts: &SendOptions,
        on: &mut dyn FnMut(Progress),
    ) -> Result<u64> {
        let storage = reqwest::Client::new();
        let mut queue: VecDeque<u64> = missing.into();
        let mut urls: VecDeque<(PartUrl, Instant)> = VecDeque::new();
        let mut in_flight = JoinSet::new();
        let mut bytes_done = self
            .plan
            .sealed_size
            .saturating_sub(queue.iter().map(|n| self.part_len(*n)).sum::<u64>());
        let started = Instant::now();
        let mut sent_bytes = 0u64;
        let mut sent = 0;
        loop {
            while in_flight.len() < opts.parallel.max(1) {
                if urls
                    .front()
                    .is_some_and(|(_, at)| at.elapsed() > URL_FRESH_FOR)
                {
                    queue.extend(urls.drain(..).map(|(u, _)| u.part_number));
                }
                let token = tokens.token().await?;
                if urls.is_empty() && !queue.is_empty() {
                    let batch: Vec<u64> = queue.drain(..queue.len().min(URL_BATCH)).collect();
                    let signed = self.client.part_urls(&token, self.file_id, &batch).await?;
                    if let Some(u) = signed.iter().find(|u| !batch.contains(&u.part_number)) {
                        bail!(
                            "the server signed part {}, which was not asked for",
                            u.part_number
                        );
                    }
                    urls.extend(signed.into_iter().map(|u| (u, Instant::now())));
                }
                let Some((url, _)) = urls.pop_front() else {
                    break;
                };
                let part = Part {
                    storage: storage.clone(),
                    client: self.client.clone(),
                    token,
                    upload_id: self.upload_id.to_owned(),
                    path: self.path.to_owned(),
                    plain: self.plan.plain_part(url.part_number),
                    sealer: self.sealer.clone(),
                    url,
                };
                in_flight.spawn(part.send());
            }
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            let (part_number, len) = done??;
            sent += 1;
            sent_bytes += len;
            bytes_done += len;
            on(Progress::PartSent {
                file_id: self.file_id.to_owned(),
                part_number,
                bytes_done,
                size: self.plan.sealed_size,
            });
            if let Some(rate) = opts.limit_rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(sent_bytes as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(sent)
    }
}

/// One part on its way: read, sealed, PUT to its presigned URL, recorded with the server.
struct Part {
    storage: reqwest::Client,
    client: Client,
    token: String,
    upload_id: String,
    path: PathBuf,
    /// Where the part's plain bytes are in the file, and how many.
    plain: (u64, u64),
    sealer: Arc<PartSealer>,
    url: PartUrl,
}

impl Part {
    /// Returns (part, bytes) once the server has recorded it.
    async fn send(self) -> Result<(u64, u64)> {
        let (path, (offset, len), n) = (self.path, self.plain, self.url.part_number);
        let sealer = self.sealer;
        let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; usize::try_from(len)?];
            f.read_exact(&mut buf)
                .context("the file changed while it was being sent")?;
            sealer.seal(n, &buf)
        })
        .await??;
        if sealed.len() as u64 != self.url.size {
            bail!(
                "part {n} sealed is {} bytes; the server expects {}",
                sealed.len(),
                self.url.size
            );
        }
        let (etag, len) = put_part(self.storage, sealed, &self.url).await?;
        self.client
            .record_part(&self.token, &self.upload_id, self.url.part_number, &etag)
            .await?;
        Ok((self.url.part_number, len))
    }
}

/// PUTs one part, retrying transport failures; returns (ETag, bytes).
async fn put_part(
    storage: reqwest::Client,
    bytes: Vec<u8>,
    url: &PartUrl,
) -> Result<(String, u64)> {
    // Bytes: a retry resends the same buffer instead of copying 8 MiB.
    let body = bytes::Bytes::from(bytes);
    let len = body.len() as u64;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match storage.put(&url.url).body(body.clone()).send().await {
            Ok(resp) if resp.status().is_success() => {
                let etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| anyhow!("the store sent no ETag for part {}", url.part_number))?
                    .to_owned();
                return Ok((etag, len));
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                bail!(
                    "the store refused part {} ({status}): {}",
                    url.part_number,
                    text.chars().take(300).collect::<String>()
                );
            }
            Err(e) if attempt < PUT_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                let _ = e;
            }
            Err(e) => bail!("sending part {}: {e}", url.part_number),
        }
    }
}

/// A name in `dir` that does not clobber another file: `name`, `name (1)`, ...
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
        _ => (name.to_owned(), String::new()),
    };
    (1..)
        .map(|i| dir.join(format!("{stem} ({i}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(candidate)
}

/// The downloaded bytes are not the ones the sender declared (or were damaged on the way).
#[derive(Debug)]
pub struct BytesRefused(String);

impl std::fmt::Display for BytesRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the downloaded bytes are not what was sent ({}); removed them",
            self.0
        )
    }
}

fn mismatch(what: &str, got: &str, expected: &str) -> anyhow::Error {
    BytesRefused(format!("{what} {got}, expected {expected}")).into()
}

/// Opens a sealed file as its bytes arrive, part by part: each part's tag checked in its place,
/// the plain bytes handed to a `Lander`, then every part's arrival and the whole file's SHA-256
/// checked against its description. Starts at the part after those a resumed download kept.
struct Opener {
    sealer: PartSealer,
    plan: Plan,
    /// The part being filled (its number) and its bytes so far.
    n: u64,
    part: Vec<u8>,
    lander: Lander,
}

impl Opener {
    fn new(d: &Description, sealer: PartSealer, resume: Resume, lander: Lander) -> Result<Opener> {
        let mut opener = Opener {
            sealer,
            plan: d.plan(),
            n: resume.parts + 1,
            part: Vec::new(),
            lander,
        };
        opener.part.reserve(opener.part_len()?);
        Ok(opener)
    }

    fn part_len(&self) -> Result<usize> {
        Ok(usize::try_from(
            self.plan.plain_part(self.n).1 + PART_OVERHEAD,
        )?)
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            if self.n > self.plan.part_count {
                return Err(BytesRefused("there are bytes after the last part".into()).into());
            }
            let take = (self.part_len()? - self.part.len()).min(bytes.len());
            self.part.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.part.len() == self.part_len()? {
                let plain = self
                    .sealer
                    .open_in_place(self.n, &mut self.part)
                    .map_err(|e| BytesRefused(e.to_string()))?;
                self.n += 1;
                let next = Vec::with_capacity(self.part_len()?);
                self.lander
                    .land(std::mem::replace(&mut self.part, next), plain)?;
            }
        }
        Ok(())
    }

    fn finish(self, sha256: &str) -> Result<()> {
        if self.n <= self.plan.part_count {
            return Err(BytesRefused(format!("part {} is cut short", self.n)).into());
        }
        let (hasher, file) = self.lander.finish()?;
        let got = hex(&hasher.finalize());
        if got != sha256 {
            return Err(mismatch("SHA-256", &got, sha256));
        }
        file.sync_all()?;
        Ok(())
    }
}

/// Hashes and writes opened parts on threads of their own (one hashes, one writes), so opening
/// the next part overlaps with hashing and writing the ones before: a sealed download is
/// otherwise bound by one core.
struct Lander {
    tx: Option<std::sync::mpsc::SyncSender<Opened>>,
    thread: Option<std::thread::JoinHandle<Result<(Sha256, std::fs::File)>>>,
}

/// An opened part: its buffer, and the range of it that holds the plain bytes.
type Opened = (Vec<u8>, std::ops::Range<usize>);

impl Lander {
    fn start(mut hasher: Sha256, mut out: std::io::BufWriter<std::fs::File>) -> Lander {
        // One part waiting at each step: five parts in memory at most (filling, waiting,
        // hashing, waiting, writing), since parts grow with the file (100 MiB at 1 TB).
        let (tx, to_hash) = std::sync::mpsc::sync_channel::<Opened>(1);
        let (hashed, to_write) = std::sync::mpsc::sync_channel::<Opened>(1);
        let writer = std::thread::spawn(move || -> Result<std::fs::File> {
            for (part, plain) in to_write {
                for piece in part[plain].chunks(READ_CHUNK) {
                    out.write_all(piece)?;
                }
            }
            out.into_inner().map_err(|e| anyhow!("writing: {e}"))
        });
        let thread = std::thread::spawn(move || {
            for (part, plain) in to_hash {
                hasher.update(&part[plain.clone()]);
                if hashed.send((part, plain)).is_err() {
                    break;
                }
            }
            drop(hashed);
            let file = writer
                .join()
                .map_err(|_| anyhow!("writing the file stopped"))??;
            Ok((hasher, file))
        });
        Lander {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Hands over `part`, whose `plain` range holds the opened bytes.
    fn land(&mut self, part: Vec<u8>, plain: std::ops::Range<usize>) -> Result<()> {
        match &self.tx {
            Some(tx) if tx.send((part, plain)).is_ok() => Ok(()),
            // The thread stopped on an error: that error is the one to report.
            _ => self.join().map(|_| ()),
        }
    }

    fn finish(mut self) -> Result<(Sha256, std::fs::File)> {
        self.join()
    }

    fn join(&mut self) -> Result<(Sha256, std::fs::File)> {
        self.tx = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("writing the file stopped"))?,
            None => bail!("writing the file stopped"),
        }
    }
}

/// A download that fails half-way waits for what was handed over, so no thread writes into a
/// file the caller is about to remove.
impl Drop for Lander {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

impl std::error::Error for BytesRefused {}

/// Longest local name, in bytes: file systems allow 255, and ` (123)` may still be added.
const MAX_LOCAL_NAME: usize = 200;

/// Characters that reorder how a name is shown (`photo\u{202E}gpj.exe` reads "photoexe.jpg").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The name as sent, made safe to create here on any system and still recognisable: no path,
/// no control, reordering or Windows-reserved characters, not hidden, not a device name,
/// short enough for any file system (the extension kept).
pub fn local_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || is_bidi_control(c) || "/\\<>:\"|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    // Leading dots would hide it (or make `..`); trailing dots and spaces Windows drops.
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return "file".to_owned();
    }
    let (stem, ext) = match trimmed.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.len() <= 16 => (s, format!(".{e}")),
        _ => (trimmed, String::new()),
    };
    let mut cut = MAX_LOCAL_NAME.saturating_sub(ext.len()).min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    // Cut short, the stem may now end where Windows would drop characters.
    let stem = if ext.is_empty() {
        stem[..cut].trim_end_matches(['.', ' '])
    } else {
        &stem[..cut]
    };
    // Windows' device names, with the superscript digits it also reads as ports.
    const RESERVED: [&str; 30] = [
        "con", "prn", "aux", "nul", "conin$", "conout$", "com1", "com2", "com3", "com4", "com5",
        "com6", "com7", "com8", "com9", "com¹", "com²", "com³", "lpt1", "lpt2", "lpt3", "lpt4",
        "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", "lpt¹", "lpt²", "lpt³",
    ];
    // Windows drops the spaces and dots that end the part before the extension: `nul .txt`
    // is the device too.
    let device = stem
        .split('.')
        .next()
        .is_some_and(|base| RESERVED.contains(&base.trim_end_matches(' ').to_lowercase().as_str()));
    match (stem.is_empty(), device) {
        (true, _) => format!("file{ext}"),
        (false, true) => format!("_{stem}{ext}"),
        (false, false) => format!("{stem}{ext}"),
    }
}

/// Where a download in progress is kept: named by the file's id only, so no name, however
/// long or odd, can keep it from being created.
pub fn partial_path(dir: &Path, file_id: &str) -> PathBuf {
    // The id comes from the server: only what an id is made of reaches the path.
    let id: String = file_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    dir.join(format!(".udc-{id}.part"))
}

/// Downloads file `file_id` into `dir`, opens and verifies it, and confirms it to the server.
pub async fn receive(
    client: &Client,
    tokens: &mut impl Tokens,
    keys: &FileKeys,
    file_id: &str,
    dir: &Path,
    on: &mut dyn FnMut(Progress),
) -> Result<Received> {
    let download = client.download(&tokens.token().await?, file_id).await?;
    let file = download.file;
    let described = file.description(keys)?;
    // The id the server keeps must be this description's, or the confirmation would vouch
    // for another file: checked before a byte is fetched.
    if let Some(d) = &described {
        let id = keys.content_id(d)?;
        if id != file.sha256 {
            return Err(mismatch("content id", &id, &file.sha256));
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // The partial file holds the plain bytes received so far: the file as it will be.
    let partial = partial_path(dir, &file.id);
    let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    // Where to go on, in plain bytes kept and in the stored object's bytes: of a sealed file
    // only whole parts are kept.
    let resume = match &described {
        Some(d) => d.plan().resume(kept),
        None => Resume::clear(kept.min(file.size)),
    };
    let have = resume.sealed;

    let mut req = reqwest::Client::new().get(&download.url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().await.context("reaching the store")?;
    let resumed_at = match resp.status().as_u16() {
        206 => have,
        200 => 0,
        416 if have == file.size => have,
        status => bail!("the store answered {status} for the download"),
    };
    // A store that ignored the range sends everything: nothing is kept then.
    let resume = if resumed_at == 0 {
        Resume::START
    } else {
        resume
    };
    on(Progress::Downloading {
        file_id: file.id.clone(),
        size: file.size,
        resumed_at,
    });

    // Writing and hashing (and opening, with a hashing and a writing thread of its own) run off
    // the network's task, so it never waits for them. A sealed download is opened as it
    // arrives, so only plain bytes reach the disk.
    let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let writer_path = partial.clone();
    let sealed = described
        .as_ref()
        .map(|d| keys.parts(d).map(|sealer| (d.clone(), sealer)))
        .transpose()?;
    let writer = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut hasher = Sha256::new();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&writer_path)?;
        // Bytes kept from the last attempt are hashed again, not trusted.
        let mut buf = vec![0u8; READ_CHUNK];
        let mut left = resume.plain;
        while left > 0 {
            let n = f.read(&mut buf[..left.min(READ_CHUNK as u64) as usize])?;
            if n == 0 {
                bail!("the partial download shrank");
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        f.set_len(resume.plain)?;
        f.seek(SeekFrom::Start(resume.plain))?;
        let mut out = std::io::BufWriter::with_capacity(READ_CHUNK, f);
        if let Some((d, sealer)) = sealed {
            let mut opener = Opener::new(&d, sealer, resume, Lander::start(hasher, out))?;
            for chunk in rx {
                opener.feed(&chunk)?;
            }
            return opener.finish(&d.sha256).map(|()| d.sha256);
        }
        for chunk in rx {
            hasher.update(&chunk);
            out.write_all(&chunk)?;
        }
        let f = out.into_inner().map_err(|e| anyhow!("writing: {e}"))?;
        f.sync_all()?;
        Ok(hex(&hasher.finalize()))
    });
    let mut done = resumed_at;
    let mut reported = done;
    let mut fetched = Ok(());
    if resumed_at < file.size || resp.status().as_u16() == 200 {
        loop {
            let chunk = match resp.chunk().await.context("downloading") {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    fetched = Err(e);
                    break;
                }
            };
            done += chunk.len() as u64;
            if tx.send(chunk).is_err() {
                break;
            }
            if done - reported > file.size / 100 {
                reported = done;
                on(Progress::Received {
                    file_id: file.id.clone(),
                    bytes_done: done,
                    size: file.size,
                });
            }
        }
    }
    drop(tx);
    let written = writer.await?;
    // A cut connection keeps what arrived for the next attempt: the writer has finished with
    // the partial file (so a retry at once never meets it still writing), and its verdict on a
    // file cut short means nothing.
    fetched?;
    let checked = match (&described, written) {
        (_, Err(e)) => Err(e),
        _ if done != file.size => Err(mismatch("size", &done.to_string(), &file.size.to_string())),
        (None, Ok(sha256)) if sha256 != file.sha256 => {
            Err(mismatch("SHA-256", &sha256, &file.sha256))
        }
        (_, Ok(_)) => Ok(()),
    };
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let name = described.as_ref().map_or(&file.name, |d| &d.name);
    let path = free_name(dir, &local_name(name));
    std::fs::rename(&partial, &path)?;
    // A sealed file is confirmed with its content id (what the server holds in `sha256`).
    client
        .confirm_download(&tokens.token().await?, &file.id, &file.sha256)
        .await?;
    on(Progress::Received {
        file_id: file.id.clone(),
        bytes_done: done,
        size: file.size,
    });
    Ok(Received {
        file: file.opened(keys),
        path,
        resumed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_safe_recognisable_local_names() {
        for (sent, local) in [
            ("holiday.jpg", "holiday.jpg"),
            ("..", "file"),
            ("...hidden", "hidden"),
            ("a/../../etc/passwd", "a_.._.._etc_passwd"),
            ("bell\u{7}\n.txt", "bell__.txt"),
            ("photo\u{202E}gpj.exe", "photo_gpj.exe"),
            ("CON", "_CON"),
            ("nul.tar.gz", "_nul.tar.gz"),
            ("nul .txt", "_nul .txt"),
            ("CONOUT$", "_CONOUT$"),
            ("COM¹.log", "_COM¹.log"),
            ("report?.pdf. ", "report_.pdf"),
            ("  ", "file"),
        ] {
            assert_eq!(local_name(sent), local, "{sent:?}");
        }
        let long = format!("{}.mkv", "é".repeat(200));
        let local = local_name(&long);
        assert!(
            local.len() <= MAX_LOCAL_NAME && local.ends_with("éé.mkv"),
            "{local}"
        );
        assert_eq!(
            partial_path(Path::new("/in"), "../x/1f2e"),
            Path::new("/in/.udc-x1f2e.part")
        );
    }
}
