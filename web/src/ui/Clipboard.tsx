import { useEffect, useState } from "preact/hooks";
import { api, onSignedOut } from "../api";
import { ago, bytes } from "../format";
import { accountKey } from "../session";
import { opened, sealedFile } from "../sealed-files";
import type { ClipItem, ClipPrefs, FileInfo } from "../types";
import { b64, unb64, wasm } from "../wasm";
import { download } from "../worker";
import * as transfers from "../transfers";
import { explain } from "./action";
import type { Account } from "./Home";

type Props = { account: Account; update: (f: (a: Account) => Account) => void };

/** An item opened in this page: text, or an image as a blob URL. */
type Opened = { text?: string; image?: string; error?: string };

/** Largest item sent inline (the API's limit); bigger ones go as sealed files, as the agent's do. */
const INLINE_MAX = 256 * 1024;
/** The largest item the page sends at all (the agent's limit too). */
const ITEM_MAX = 64 * 1024 * 1024;

async function sealed(item: ClipItem): Promise<Uint8Array> {
  if (item.ciphertext) return unb64(item.ciphertext);
  if (item.file_id) {
    const r = await api<{ url: string; file: FileInfo }>("GET", `/files/${item.file_id}/download`);
    const got = await download(r.url, undefined, undefined, sealedFile(await opened(r.file)));
    return new Uint8Array(await got.blob.arrayBuffer());
  }
  const { item: full } = await api<{ item: ClipItem }>("GET", `/sync/clipboard/items/${item.id}`);
  if (!full.ciphertext) throw new Error("The item has no content.");
  return unb64(full.ciphertext);
}

async function open(item: ClipItem): Promise<Opened> {
  try {
    const udc = await wasm();
    const plain = udc.openClipboard(accountKey(), item.content_type, await sealed(item));
    if (item.content_type === "image/png") {
      return { image: URL.createObjectURL(new Blob([plain as BlobPart], { type: "image/png" })) };
    }
    const text = new TextDecoder().decode(plain);
    if (item.content_type === "text/html") {
      // Shown as its text: parsed inert (DOMParser runs no script), never inserted as HTML.
      return { text: new DOMParser().parseFromString(text, "text/html").body.textContent ?? "" };
    }
    return { text };
  } catch (e) {
    return { error: `Cannot open this item: ${explain(e)}` };
  }
}

/** Items opened in this page, kept while signed in: the tab does not decrypt them again. */
const openedItems = new Map<string, Opened>();
onSignedOut(() => {
  for (const o of openedItems.values()) if (o.image) URL.revokeObjectURL(o.image);
  openedItems.clear();
});

export function Clipboard({ account, update }: Props) {
  const [opened, setOpened] = useState<Record<string, Opened>>(Object.fromEntries(openedItems));
  const [draft, setDraft] = useState("");
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const me = account.session.deviceId;
  const nameOf = (id: string) => (id === me ? "this browser" : (account.devices.find((d) => d.id === id)?.name ?? "a removed device"));

  useEffect(() => {
    for (const item of account.clip) {
      if (opened[item.id]) continue;
      setOpened((o) => ({ ...o, [item.id]: {} }));
      void open(item).then((r) => {
        openedItems.set(item.id, r);
        setOpened((o) => ({ ...o, [item.id]: r }));
      });
    }
  }, [account.clip]);

  const send = async (contentType: ClipItem["content_type"], plain: Uint8Array) => {
    setError(null);
    setStatus(null);
    try {
      if (plain.length > ITEM_MAX) throw new Error(`This item is ${bytes(plain.length)}; udc sends up to ${bytes(ITEM_MAX)}.`);
      const udc = await wasm();
      const sealed = udc.sealClipboard(accountKey(), contentType, plain);
      let content: { ciphertext: string } | { file_id: string };
      if (plain.length <= INLINE_MAX) {
        content = { ciphertext: b64(sealed) };
      } else {
        // Sealed first, so the store only ever holds ciphertext; sent to no device in particular.
        const file = new File([sealed as BlobPart], "clipboard item", { type: "application/octet-stream" });
        const id = await transfers.send(file, null, "your clipboards");
        if (!id) throw new Error("The item could not be stored (see Files).");
        content = { file_id: id };
      }
      const { item } = await api<{ item: ClipItem }>("POST", "/sync/clipboard", { content_type: contentType, size: plain.length, ...content }, {
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      update((a) => ({ ...a, clip: [item, ...a.clip.filter((x) => x.id !== item.id)] }));
      setStatus(
        "file_id" in content
          ? "Sent. It is larger than 256 KB, so it went as a sealed file: devices this browser trusts receive it."
          : "Sent to your devices.",
      );
      setDraft("");
    } catch (e) {
      setError(explain(e));
    }
  };

  const pasteAndSend = async () => {
    setError(null);
    try {
      const items = await navigator.clipboard.read();
      for (const it of items) {
        if (it.types.includes("image/png")) {
          return void (await send("image/png", new Uint8Array(await (await it.getType("image/png")).arrayBuffer())));
        }
        if (it.types.includes("text/plain")) {
          return void (await send("text/plain", new TextEncoder().encode(await (await it.getType("text/plain")).text())));
        }
      }
      setError("The clipboard holds nothing udc can send (text or a PNG image).");
    } catch (e) {
      setError(`This browser did not let the page read the clipboard: ${explain(e)}. Paste into the box instead.`);
    }
  };

  const copy = async (item: ClipItem) => {
    setError(null);
    const o = opened[item.id];
    try {
      if (o?.image) {
        const blob = await (await fetch(o.image)).blob();
        await navigator.clipboard.write([new ClipboardItem({ "image/png": blob })]);
      } else if (o?.text !== undefined) {
        await navigator.clipboard.writeText(o.text);
      }
      setStatus("Copied to this device's clipboard.");
    } catch (e) {
      setError(`Could not copy: ${explain(e)}`);
    }
  };

  const setPrefs = async (change: Partial<ClipPrefs>) => {
    setError(null);
    try {
      const prefs = await api<ClipPrefs>("PUT", "/sync/clipboard/preferences", change);
      update((a) => ({ ...a, prefs }));
    } catch (e) {
      setError(explain(e));
      // The checkbox shows what is stored, not what was asked for.
      update((a) => ({ ...a }));
    }
  };

  return (
    <section aria-labelledby="clip-title">
      <h2 id="clip-title">Clipboard</h2>
      <form
        class="clip-send"
        onSubmit={(e) => {
          e.preventDefault();
          if (draft) void send("text/plain", new TextEncoder().encode(draft));
        }}
      >
        <label for="clip-text">Send to your devices' clipboards</label>
        <textarea
          id="clip-text"
          rows={3}
          value={draft}
          placeholder="Type or paste here"
          onInput={(e) => setDraft(e.currentTarget.value)}
          onPaste={(e) => {
            const file = Array.from(e.clipboardData?.files ?? []).find((f) => f.type === "image/png");
            if (file) {
              e.preventDefault();
              void file.arrayBuffer().then((buf) => send("image/png", new Uint8Array(buf)));
            }
          }}
        />
        <div class="row wrap">
          <button type="submit" class="primary" id="clip-send" disabled={!draft}>
            Send
          </button>
          <button type="button" onClick={() => void pasteAndSend()}>
            Paste from clipboard and send
          </button>
        </div>
      </form>
      {status && (
        <p class="notice" role="status">
          {status}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {account.prefs && (
        <fieldset class="prefs">
          <legend>This browser</legend>
          <label class="inline">
            <input type="checkbox" id="clip-pref-send" checked={account.prefs.send} onChange={(e) => void setPrefs({ send: e.currentTarget.checked })} /> sends
            to other devices
          </label>
          <label class="inline">
            <input type="checkbox" id="clip-pref-receive" checked={account.prefs.receive} onChange={(e) => void setPrefs({ receive: e.currentTarget.checked })} />{" "}
            receives from other devices
          </label>
        </fieldset>
      )}
      <h3>History</h3>
      {account.clip.length === 0 && <p class="muted">Nothing yet. What you copy on a device running udc appears here.</p>}
      <ul class="clips">
        {account.clip.map((item) => {
          const o = opened[item.id];
          return (
            <li class="clip" data-clip-id={item.id}>
              <div class="muted small">
                From {nameOf(item.device_id)} · {ago(item.created_at)} · {bytes(item.size)}
              </div>
              {o?.error ? (
                <p class="error small">{o.error}</p>
              ) : o?.image ? (
                <img class="clip-image" src={o.image} alt={`Image from ${nameOf(item.device_id)}`} />
              ) : o?.text !== undefined ? (
                <pre class="clip-text">{o.text}</pre>
              ) : (
                <p class="muted small">Opening…</p>
              )}
              <button class="quiet" disabled={!o || !!o.error || (o.text === undefined && !o.image)} onClick={() => void copy(item)}>
                Copy
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
