//! `udc-agent clipboard`: the shared clipboard on this device. Local copies are sealed and
//! posted; `clipboard.sync` events from the account's other devices are opened and put on the
//! local clipboard. What this device just applied is never sent back (no echo loop): both
//! directions go through one fingerprint of the content, taken on the decoded form (pixels,
//! not PNG bytes), so re-reading an applied item matches it.
//!
//! On X11 the agent learns of a new clipboard owner from XFixes at once, on Windows from
//! `WM_CLIPBOARDUPDATE` (`win32.rs`); elsewhere it polls.
//! It keeps one `arboard::Clipboard` for its whole life: on X11 the content it applied is served
//! by this process, so pasting keeps working after the copying device moved on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use udc_client::events::ClipboardSync;
use udc_hub::names;
use udc_hub::{ClientFrame, HubFrame};

use crate::client::Client;
use crate::context::Context;
use crate::realtime::Incoming;
use crate::seal;
use crate::store::{Session, Store};
use crate::sync::{self, ClipboardItem};
use crate::transfer::{self, SendOptions, SessionTokens, Tokens};
use crate::watch::{self, PING_EVERY};
use udc_client::file_seal::FileKeys;

#[cfg(windows)]
mod win32;

/// Largest item sent inline (the server's limit); bigger copies travel as an encrypted file.
pub const INLINE_MAX: usize = 256 * 1024;
/// Largest copy shared at all: a screenshot, not a disk image.
pub const SHARE_MAX: usize = 64 * 1024 * 1024;
/// How often to look for a change where there are no change events.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Clipboard content in the form both directions compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Html(String),
    Image {
        width: usize,
        height: usize,
        rgba: Vec<u8>,
    },
}

impl Content {
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        match self {
            Content::Text(t) => h.update([b"t\0".as_slice(), t.as_bytes()].concat()),
            Content::Html(t) => h.update([b"h\0".as_slice(), t.as_bytes()].concat()),
            Content::Image {
                width,
                height,
                rgba,
            } => {
                h.update(b"i\0");
                h.update((*width as u64).to_le_bytes());
                h.update((*height as u64).to_le_bytes());
                h.update(rgba);
            }
        }
        h.finalize().into()
    }

    /// The wire form: content type and bytes (images as PNG).
    pub fn encode(&self) -> Result<(&'static str, Vec<u8>)> {
        Ok(match self {
            Content::Text(t) => ("text/plain", t.as_bytes().to_vec()),
            Content::Html(t) => ("text/html", t.as_bytes().to_vec()),
            Content::Image {
                width,
                height,
                rgba,
            } => ("image/png", png_encode(*width, *height, rgba)?),
        })
    }

    pub fn decode(content_type: &str, bytes: Vec<u8>) -> Result<Content> {
        let text =
            |b: Vec<u8>| String::from_utf8(b).map_err(|_| anyhow!("clipboard text is not UTF-8"));
        Ok(match content_type {
            "text/plain" => Content::Text(text(bytes)?),
            "text/html" => Content::Html(text(bytes)?),
            "image/png" => png_decode(&bytes)?,
            other => bail!("unknown clipboard content type {other}"),
        })
    }
}

pub fn png_encode(width: usize, height: usize, rgba: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgba)?;
    writer.finish()?;
    Ok(out)
}

/// Any PNG (palette, grey, 16-bit) to 8-bit RGBA.
pub fn png_decode(bytes: &[u8]) -> Result<Content> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(
        png::Transformations::normalize_to_color8() | png::Transformations::ALPHA,
    );
    let mut reader = dec.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    let (width, height) = (info.width as usize, info.height as usize);
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        other => bail!("unexpected PNG colour type {other:?} after normalising"),
    };
    Ok(Content::Image {
        width,
        height,
        rgba,
    })
}

/// The local clipboard, one instance for the agent's life.
#[derive(Clone)]
pub struct Local(Arc<Mutex<arboard::Clipboard>>);

impl Local {
    pub fn open() -> Result<Local> {
        let cb =
            arboard::Clipboard::new().map_err(|e| anyhow!("cannot open the clipboard: {e}"))?;
        Ok(Local(Arc::new(Mutex::new(cb))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut arboard::Clipboard) -> T) -> Result<T> {
        let mut cb = self
            .0
            .lock()
            .map_err(|_| anyhow!("clipboard lock poisoned"))?;
        Ok(f(&mut cb))
    }

    /// What is on the clipboard: an image first (a copied image often comes with HTML), then
    /// plain text, then HTML alone. `None` when it is empty or holds something else.
    pub fn read(&self) -> Result<Option<Content>> {
        self.with(|cb| {
            if let Ok(img) = cb.get_image() {
                return Some(Content::Image {
                    width: img.width,
                    height: img.height,
                    rgba: img.bytes.into_owned(),
                });
            }
            if let Ok(t) = cb.get_text() {
                return Some(Content::Text(t));
            }
            cb.get().html().ok().map(Content::Html)
        })
    }

    pub fn write(&self, content: &Content) -> Result<()> {
        self.with(|cb| match content {
            Content::Text(t) => cb.set_text(t.as_str()),
            Content::Html(h) => cb.set_html(h.as_str(), None::<&str>),
            Content::Image {
                width,
                height,
                rgba,
            } => cb.set_image(arboard::ImageData {
                width: *width,
                height: *height,
                bytes: rgba.as_slice().into(),
            }),
        })?
        .map_err(|e| anyhow!("cannot set the clipboard: {e}"))
    }
}

/// Signals "the clipboard may have changed": XFixes owner changes on X11 (`display`, or
/// `$DISPLAY`), `WM_CLIPBOARDUPDATE` on Windows, a timer elsewhere.
pub fn change_signals(display: Option<String>) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(16);
    #[cfg(target_os = "linux")]
    {
        let events = tx.clone();
        std::thread::spawn(move || {
            if let Err(e) = x11_owner_changes(display.as_deref(), &events) {
                eprintln!("udc-agent: no X11 clipboard events ({e}); polling instead");
                poll(&events);
            }
        });
    }
    #[cfg(windows)]
    {
        let _ = display;
        std::thread::spawn(move || {
            if let Err(e) = win32::clipboard_changes(&tx) {
                eprintln!("udc-agent: no Windows clipboard events ({e}); polling instead");
                poll(&tx);
            }
        });
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = display;
        std::thread::spawn(move || poll(&tx));
    }
    rx
}

fn poll(tx: &mpsc::Sender<()>) {
    while tx.blocking_send(()).is_ok() {
        std::thread::sleep(POLL_EVERY);
    }
}

#[cfg(target_os = "linux")]
fn x11_owner_changes(display: Option<&str>, tx: &mpsc::Sender<()>) -> Result<()> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, WindowClass};
    use x11rb::protocol::Event;

    let (conn, screen) = x11rb::connect(display)?;
    let root = conn.setup().roots[screen].root;
    conn.xfixes_query_version(5, 0)?.reply()?;
    let window = conn.generate_id()?;
    conn.create_window(
        0,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_ONLY,
        0,
        &CreateWindowAux::new(),
    )?;
    let clipboard = conn.intern_atom(false, b"CLIPBOARD")?.reply()?.atom;
    conn.xfixes_select_selection_input(
        window,
        clipboard,
        SelectionEventMask::SET_SELECTION_OWNER
            | SelectionEventMask::SELECTION_WINDOW_DESTROY
            | SelectionEventMask::SELECTION_CLIENT_CLOSE,
    )?;
    conn.flush()?;
    loop {
        if let Event::XfixesSelectionNotify(_) = conn.wait_for_event()? {
            if tx.blocking_send(()).is_err() {
                return Ok(());
            }
        }
    }
}

/// One line of what the daemon did, for `--json` scripts and for people.
fn report(json: bool, what: &str, item: &ClipboardItem) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "clipboard": what, "id": item.id, "content_type": item.content_type, "size": item.size, "device_id": item.device_id })
        );
    } else {
        println!(
            "{what} {} ({} bytes) {}",
            item.content_type, item.size, item.id
        );
    }
}

/// The plaintext of a relayed item: from the event, fetched when the event left the
/// ciphertext out, or downloaded when the item is an encrypted file.
async fn open_item(
    client: &Client,
    store: &Store,
    session: &mut Session,
    key: &[u8; 32],
    item: ClipboardItem,
) -> Result<Content> {
    let mut tokens = SessionTokens {
        client,
        session,
        store,
    };
    let item = if item.ciphertext.is_none() && item.file_id.is_none() {
        client
            .clipboard_item(&tokens.token().await?, &item.id)
            .await?
    } else {
        item
    };
    if let Some(bytes) = sync::open_item(&item, key)? {
        return Content::decode(&item.content_type, bytes);
    }
    let file_id = item
        .file_id
        .as_deref()
        .ok_or_else(|| anyhow!("item {} has no content", item.id))?;
    let dir = store.dir().join("clipboard-in");
    let keys = FileKeys::new(key)?;
    let got = transfer::receive(client, &mut tokens, &keys, file_id, &dir, &mut |_| {}).await?;
    let sealed = std::fs::read(&got.path);
    let _ = std::fs::remove_file(&got.path);
    let plain = seal::open(key, &seal::clipboard_aad(&item.content_type), &sealed?)?;
    Content::decode(&item.content_type, plain)
}

/// Seals and posts a local copy: inline, or as an encrypted file above the inline limit.
async fn send_copy(
    client: &Client,
    store: &Store,
    session: &mut Session,
    key: &[u8; 32],
    content: &Content,
) -> Result<ClipboardItem> {
    let (content_type, bytes) = content.encode()?;
    let mut tokens = SessionTokens {
        client,
        session,
        store,
    };
    if bytes.len() <= INLINE_MAX {
        return client
            .post_clipboard(&tokens.token().await?, key, content_type, &bytes)
            .await;
    }
    if bytes.len() > SHARE_MAX {
        bail!(
            "a {content_type} copy of {} bytes is over {SHARE_MAX} bytes; not shared",
            bytes.len()
        );
    }
    let sealed = seal::seal(key, &seal::clipboard_aad(content_type), &bytes)?;
    let dir = store.dir().join("clipboard-out");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.sealed", transfer::hex(&content.fingerprint())));
    std::fs::write(&path, &sealed)?;
    let opts = SendOptions {
        target_device_id: None,
        mime: Some("application/octet-stream".into()),
        parallel: 4,
        limit_rate: None,
        part_size: None,
        state_dir: store.dir().to_owned(),
        keys: std::sync::Arc::new(FileKeys::new(key)?),
    };
    let sent = transfer::send(client, &mut tokens, &path, &opts, &mut |_| {}).await;
    let _ = std::fs::remove_file(&path);
    let file = sent?.file;
    Ok(client
        .post_clipboard_file(&tokens.token().await?, content_type, bytes.len(), &file.id)
        .await?)
}

pub async fn run(cx: Context<'_>) -> Result<()> {
    let Context {
        client,
        store,
        session,
        json,
    } = cx;
    let device_id = session.device()?;
    let key = seal::account_key(&session.enc_key)?;
    let local = Local::open()?;
    let token = session.access_token(client, store).await?;
    let prefs = client.clipboard_prefs(&token, None).await?;
    // What is on the clipboard now was not copied now: only changes from here on are sent.
    let mut last = {
        let l = local.clone();
        tokio::task::spawn_blocking(move || l.read())
            .await??
            .map(|c| c.fingerprint())
    };
    let mut changes = change_signals(None);
    let mut attempt = 0u32;
    loop {
        let mut socket = watch::connect(client, store, session, None, &mut attempt).await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        // During the replay of what was missed only the newest item matters.
        let mut missed: Option<ClipboardItem> = None;
        let mut replaying = true;
        let closed = loop {
            let incoming: Option<ClipboardItem> = tokio::select! {
                _ = ping.tick() => {
                    if socket.send(&ClientFrame::Ping).await.is_err() {
                        break None;
                    }
                    None
                }
                Some(()) = changes.recv() => {
                    while changes.try_recv().is_ok() {}
                    if !prefs.send {
                        continue;
                    }
                    let l = local.clone();
                    let Some(content) = tokio::task::spawn_blocking(move || l.read()).await?? else { continue };
                    let fp = content.fingerprint();
                    if last == Some(fp) {
                        continue;
                    }
                    last = Some(fp);
                    match send_copy(client, store, session, &key, &content).await {
                        Ok(item) => report(json, "sent", &item),
                        Err(e) => eprintln!("udc-agent: clipboard not sent: {e}"),
                    }
                    None
                }
                frame = socket.next() => match frame {
                    Incoming::Frame(HubFrame::Event(event)) => {
                        let _ = socket.send(&ClientFrame::Ack { seq: event.seq }).await;
                        if event.event != names::CLIPBOARD_SYNC {
                            continue;
                        }
                        let item = match serde_json::from_value::<ClipboardSync>(event.data) {
                            Ok(sync) => sync.item,
                            Err(e) => {
                                eprintln!("udc-agent: unreadable clipboard.sync: {e}");
                                continue;
                            }
                        };
                        if item.device_id == device_id {
                            continue;
                        }
                        if replaying {
                            missed = Some(item);
                            continue;
                        }
                        Some(item)
                    }
                    Incoming::Frame(HubFrame::Ready { .. }) => {
                        attempt = 0;
                        replaying = false;
                        if json {
                            println!("{}", serde_json::json!({ "clipboard": "ready" }));
                        } else {
                            println!("Sharing the clipboard");
                        }
                        missed.take()
                    }
                    Incoming::Frame(_) | Incoming::Unreadable(_) => None,
                    Incoming::Closed { code, reason } => break Some((code, reason)),
                },
            };
            let Some(item) = incoming else { continue };
            if !prefs.receive {
                continue;
            }
            match open_item(client, store, session, &key, item.clone()).await {
                Ok(content) => {
                    last = Some(content.fingerprint());
                    let l = local.clone();
                    tokio::task::spawn_blocking(move || l.write(&content)).await??;
                    report(json, "applied", &item);
                }
                Err(e) => eprintln!("udc-agent: clipboard item {} not applied: {e:#}", item.id),
            }
        };
        watch::after_close(closed, &mut attempt).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_compare_by_pixels_not_by_png_bytes() {
        let img = Content::Image {
            width: 2,
            height: 1,
            rgba: vec![255, 0, 0, 255, 0, 0, 255, 128],
        };
        let (ty, png) = img.encode().unwrap();
        assert_eq!(ty, "image/png");
        let back = Content::decode(ty, png).unwrap();
        assert_eq!(back, img);
        assert_eq!(back.fingerprint(), img.fingerprint());
        assert_ne!(
            Content::Text("a".into()).fingerprint(),
            Content::Html("a".into()).fingerprint()
        );
    }
}
