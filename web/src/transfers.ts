// Files moving between this browser and the object store. Bytes go straight to the store through
// presigned URLs (six parts at a time), never through the API; the API only records them. Every
// part is sealed in the Worker before it leaves (sealed-files.ts), the same bytes every time, so
// an upload's state kept in IndexedDB lets a reload or a lost network resume it, re-sending only
// the parts the server has not recorded. Downloads are opened and hashed in the Worker and
// offered only when the whole file's SHA-256 matches what the sender hashed.
import { api, ApiError, onSignedOut } from "./api";
import { describe, opened, sealedFile } from "./sealed-files";
import { accountKey } from "./session";
import { del, list, put } from "./store";
import type { FileInfo } from "./types";
import { download, hashFile, sealPart } from "./worker";
import { PART_OVERHEAD } from "./worker-protocol";

export type Phase =
  | "hashing"
  | "uploading"
  | "completing"
  | "downloading"
  | "done"
  | "failed"
  | "cancelled"
  | "needs-file";

export type Transfer = {
  key: string;
  direction: "up" | "down";
  name: string;
  size: number;
  done: number;
  phase: Phase;
  /** bytes per second, over the last few seconds */
  speed: number;
  error?: string;
  fileId?: string;
  to?: string;
  sha256?: string;
  saveUrl?: string;
  /** bytes the server had recorded when this upload resumed */
  resumedFrom?: number;
  /** bytes of the parts the server has recorded so far (an upload resumes from here) */
  recorded?: number;
  /** the device an upload goes to (null: none in particular) */
  target?: string | null;
};

/** What resuming an upload needs, kept per file id. */
type UploadRecord = {
  fileId: string;
  uploadId: string;
  name: string;
  /** sealed bytes, as the store holds them */
  size: number;
  lastModified: number;
  sha256: string;
  /** sealed bytes per part (every part but the last) */
  partSize: number;
  partCount: number;
  /** the file as chosen: its bytes, its bytes per part, its description (JSON) */
  plainSize: number;
  plainPartSize: number;
  description: string;
  target: string | null;
  to?: string;
};

const PARALLEL = 6;
const URL_BATCH = 16;
/** Presigned URLs live 15 minutes; ask again for any older than this. */
const URL_FRESH_MS = 10 * 60_000;
const PART_TRIES = 3;

const transfers = new Map<string, Transfer>();
const aborts = new Map<string, AbortController>();
const files = new Map<string, File>();
const listeners = new Set<() => void>();

/** Signing out stops every transfer and forgets them, with the downloads' bytes. */
onSignedOut(() => {
  for (const a of aborts.values()) a.abort();
  for (const t of transfers.values()) if (t.saveUrl) URL.revokeObjectURL(t.saveUrl);
  transfers.clear();
  aborts.clear();
  files.clear();
  for (const f of listeners) f();
});

export function subscribe(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

export function all(): Transfer[] {
  return [...transfers.values()];
}

function set(key: string, change: Partial<Transfer>) {
  const t = transfers.get(key);
  if (!t) return;
  transfers.set(key, { ...t, ...change });
  for (const f of listeners) f();
}

function add(t: Omit<Transfer, "key" | "done" | "speed">): string {
  const key = crypto.randomUUID();
  transfers.set(key, { ...t, key, done: 0, speed: 0 });
  for (const f of listeners) f();
  return key;
}

export function dismiss(key: string) {
  const t = transfers.get(key);
  if (t?.saveUrl) URL.revokeObjectURL(t.saveUrl);
  transfers.delete(key);
  for (const f of listeners) f();
}

/** Bytes per second over a moving window, updated as progress arrives. */
function meter(key: string) {
  let last = { at: performance.now(), bytes: 0 };
  return (bytes: number) => {
    const now = performance.now();
    const change: Partial<Transfer> = { done: bytes };
    if (now - last.at >= 500) {
      const rate = ((bytes - last.bytes) * 1000) / (now - last.at);
      const prev = transfers.get(key)?.speed ?? 0;
      change.speed = prev ? prev * 0.5 + rate * 0.5 : rate;
      last = { at: now, bytes };
    }
    set(key, change);
  };
}

function message(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof DOMException && e.name === "AbortError") return "Cancelled.";
  return e instanceof Error ? e.message : String(e);
}

const MIME = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}$/;

/** Sends `file` to the device `target` (or to none in particular); its file id once stored. */
export async function send(file: File, target: string | null, to?: string): Promise<string | null> {
  const key = add({ direction: "up", name: file.name, size: file.size, phase: "hashing", to, target });
  const abort = new AbortController();
  aborts.set(key, abort);
  files.set(key, file);
  try {
    // The server cannot check a sealed name: this browser does (the agent's limit too).
    if ([...file.name].length > 255) throw new Error("A file name is at most 255 characters: rename it and send it again.");
    const sha256 = await hashFile(file, (n) => set(key, { done: n }), abort.signal);
    const d = await describe(file.name, MIME.test(file.type) ? file.type.toLowerCase() : "application/octet-stream", file.size, sha256);
    set(key, { phase: "uploading", done: 0, sha256, size: d.plan.sealed_size });
    const idempotency = crypto.randomUUID();
    const body: Record<string, unknown> = {
      sealed: d.sealed,
      size: d.plan.sealed_size,
      sha256: d.content_id,
      part_size: d.plan.sealed_part_size,
    };
    if (target) body.target_device_id = target;
    const r = await api<{ status: string; file: FileInfo; upload?: { upload_id: string; part_size: number; part_count: number } }>(
      "POST",
      "/files/upload/initiate",
      body,
      { headers: { "idempotency-key": idempotency } },
    );
    set(key, { fileId: r.file.id });
    if (r.status === "already_present" || !r.upload) {
      set(key, { phase: "done", done: d.plan.sealed_size });
      return r.file.id;
    }
    // The parts are sealed for this cut: another would not open.
    if (r.upload.part_size !== d.plan.sealed_part_size || r.upload.part_count !== d.plan.part_count) {
      throw new Error("The server planned other parts than this browser sealed: nothing was sent.");
    }
    const rec: UploadRecord = {
      fileId: r.file.id,
      uploadId: r.upload.upload_id,
      name: file.name,
      size: d.plan.sealed_size,
      lastModified: file.lastModified,
      sha256,
      partSize: r.upload.part_size,
      partCount: r.upload.part_count,
      plainSize: file.size,
      plainPartSize: d.plan.part_size,
      description: d.description,
      target,
      to,
    };
    await put(`upload:${rec.fileId}`, rec);
    const all = Array.from({ length: rec.partCount }, (_, i) => i + 1);
    await finish(key, rec, file, all, abort.signal);
    return rec.fileId;
  } catch (e) {
    fail(key, e);
    return null;
  }
}

function fail(key: string, e: unknown) {
  const cancelled = e instanceof DOMException && e.name === "AbortError";
  set(key, { phase: cancelled ? "cancelled" : "failed", error: message(e), speed: 0 });
}

async function finish(key: string, rec: UploadRecord, file: Blob, parts: number[], signal: AbortSignal) {
  set(key, { phase: "uploading", error: undefined });
  await sendParts(key, rec, file, parts, signal);
  set(key, { phase: "completing" });
  await api("POST", "/files/upload/complete", { upload_id: rec.uploadId }, { headers: { "idempotency-key": `complete-${rec.fileId}` } });
  await del(`upload:${rec.fileId}`);
  set(key, { phase: "done", done: rec.size, speed: 0 });
}

/** The size of part `n` (every part but the last is `partSize`). */
function partBytes(rec: UploadRecord, n: number): number {
  return n < rec.partCount ? rec.partSize : rec.size - rec.partSize * (rec.partCount - 1);
}

async function sendParts(key: string, rec: UploadRecord, file: Blob, missing: number[], outer: AbortSignal) {
  // A part that fails for good stops the others: a Retry then starts from what was recorded.
  const stop = new AbortController();
  outer.addEventListener("abort", () => stop.abort(), { once: true });
  const signal = stop.signal;
  const queue = [...missing];
  let finished = rec.size - missing.reduce((sum, n) => sum + partBytes(rec, n), 0);
  const inFlight = new Map<number, number>();
  const progress = meter(key);
  const report = () => progress(finished + [...inFlight.values()].reduce((a, b) => a + b, 0));
  const urls = new Map<number, { url: string; at: number }>();

  const urlFor = async (n: number): Promise<string> => {
    const known = urls.get(n);
    if (known && Date.now() - known.at < URL_FRESH_MS) return known.url;
    const batch = [n, ...queue.slice(0, URL_BATCH - 1)];
    const r = await api<{ parts: { part_number: number; url: string }[] }>("POST", `/files/${rec.fileId}/parts`, { part_numbers: batch });
    for (const p of r.parts) urls.set(p.part_number, { url: p.url, at: Date.now() });
    const url = urls.get(n)?.url;
    if (!url) throw new ApiError(200, "bad_answer", "The server gave no address for a part.");
    return url;
  };

  const worker = async () => {
    for (let n = queue.shift(); n !== undefined && !signal.aborted; n = queue.shift()) {
      const start = (n - 1) * rec.plainPartSize;
      const slice = file.slice(start, start + partBytes(rec, n) - PART_OVERHEAD);
      const sealed = new Blob([(await sealPart(accountKey(), rec.description, n, slice, signal)) as BlobPart]);
      for (let attempt = 1; ; attempt++) {
        try {
          const url = await urlFor(n);
          const part = n;
          const etag = await putPart(url, sealed, signal, (loaded) => {
            inFlight.set(part, loaded);
            report();
          });
          await api("POST", "/files/upload/part", { upload_id: rec.uploadId, part_number: n, etag });
          break;
        } catch (e) {
          inFlight.delete(n);
          urls.delete(n);
          if (signal.aborted || attempt >= PART_TRIES) throw e;
          await new Promise((ok) => setTimeout(ok, 500 * attempt));
        }
      }
      inFlight.delete(n);
      finished += partBytes(rec, n);
      set(key, { recorded: finished });
      report();
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL, missing.length) }, () =>
      worker().catch((e) => {
        stop.abort();
        throw e;
      }),
    ),
  );
}

/** PUTs one part to its presigned URL; resolves to the store's ETag. XHR: fetch reports no upload progress. */
function putPart(url: string, body: Blob, signal: AbortSignal, progress: (loaded: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => progress(e.loaded);
    xhr.onload = () => {
      const etag = xhr.getResponseHeader("etag");
      if (xhr.status >= 200 && xhr.status < 300 && etag) resolve(etag);
      else if (xhr.status < 300) reject(new Error("The store did not tell the part's ETag (its CORS rule must expose ETag: see the README)."));
      else reject(new Error(`The store refused a part (HTTP ${xhr.status}).`));
    };
    xhr.onerror = () => reject(new Error("The connection to the store was lost."));
    const abort = () => {
      xhr.abort();
      reject(new DOMException("cancelled", "AbortError"));
    };
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    xhr.send(body);
  });
}

/** Stops a transfer; an unfinished upload is abandoned on the server too. */
export async function cancel(key: string) {
  aborts.get(key)?.abort();
  const t = transfers.get(key);
  if (t?.direction === "up" && t.fileId && t.phase !== "done") {
    await api("DELETE", `/files/${t.fileId}`).catch(() => undefined);
    await del(`upload:${t.fileId}`);
  }
  set(key, { phase: "cancelled", speed: 0 });
}

/** Uploads left unfinished by an earlier visit: they resume when their file is chosen again. */
export async function restoreUnfinished(): Promise<void> {
  for (const [, rec] of await list<UploadRecord>("upload:")) {
    if ([...transfers.values()].some((t) => t.fileId === rec.fileId)) continue;
    const key = add({ direction: "up", name: rec.name, size: rec.size, phase: "needs-file", fileId: rec.fileId, to: rec.to, target: rec.target, sha256: rec.sha256 });
    set(key, { error: "Choose the file again to finish sending it." });
    // How far it got: the parts the server recorded (what choosing the file again will skip).
    void api<{ missing: number[] }>("GET", `/files/${rec.fileId}/upload`)
      .then((status) => {
        const recorded = rec.size - status.missing.reduce((sum, n) => sum + partBytes(rec, n), 0);
        set(key, { done: recorded, recorded });
      })
      .catch(() => undefined);
  }
}

/** Continues an upload: after a reload (the same file chosen again) or a lost connection. */
export async function resume(key: string, picked?: File): Promise<void> {
  const t = transfers.get(key);
  if (!t) return;
  if (!t.fileId) {
    const file = picked ?? files.get(key);
    if (!file) return;
    dismiss(key);
    await send(file, t.target ?? null, t.to);
    return;
  }
  const rec = (await list<UploadRecord>(`upload:${t.fileId}`))[0]?.[1];
  const file = picked ?? files.get(key);
  if (!file) {
    set(key, { error: "Choose the file again to send it." });
    return;
  }
  if (!rec || !rec.description) {
    // Nothing to resume (it failed before the upload began, or it finished; or it was started
    // in the clear by an older version of this page): send it anew, sealed.
    if (rec) {
      // Its record said where it was; the old upload (its name in the clear) goes too.
      await api("DELETE", `/files/${rec.fileId}`).catch(() => undefined);
      await del(`upload:${rec.fileId}`);
    }
    dismiss(key);
    await send(file, t.target ?? null, t.to);
    return;
  }
  if (file.name !== rec.name || file.size !== rec.plainSize || file.lastModified !== rec.lastModified) {
    set(key, { error: `That is not the file being sent: choose "${rec.name}" (${rec.plainSize} bytes) again.` });
    return;
  }
  files.set(key, file);
  const abort = new AbortController();
  aborts.set(key, abort);
  try {
    set(key, { phase: "uploading", error: undefined });
    const status = await api<{ state: string; missing: number[] }>("GET", `/files/${rec.fileId}/upload`);
    if (status.state === "available") {
      await del(`upload:${rec.fileId}`);
      set(key, { phase: "done", done: rec.size });
      return;
    }
    set(key, { resumedFrom: rec.size - status.missing.reduce((sum, n) => sum + partBytes(rec, n), 0) });
    await finish(key, rec, file, status.missing, abort.signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      await del(`upload:${rec.fileId}`);
      set(key, { phase: "failed", error: "The server no longer has this upload: send the file again." });
      return;
    }
    fail(key, e);
  }
}

/**
 * Downloads a file, checks its SHA-256 and saves it; `confirm`: it was sent to this browser,
 * so tell the sender it arrived (it leaves the inbox).
 */
export async function receive(listed: FileInfo, confirm = true): Promise<boolean> {
  const file = await opened(listed);
  const key = add({ direction: "down", name: file.name, size: file.size, phase: "downloading", fileId: file.id });
  const abort = new AbortController();
  aborts.set(key, abort);
  try {
    const { url } = await api<{ url: string }>("GET", `/files/${file.id}/download`);
    const got = await download(url, meter(key), abort.signal, sealedFile(file));
    if (got.bytes !== file.size || got.sha256 !== file.sha256) {
      throw new Error("The downloaded bytes do not match what was sent (SHA-256 differs): nothing was saved.");
    }
    // A sealed file is confirmed with its content id (what the server holds as its sha256).
    if (confirm) await api("POST", `/files/${file.id}/confirm-download`, { sha256: file.stored?.content_id ?? got.sha256 });
    const saveUrl = URL.createObjectURL(got.blob);
    set(key, { phase: "done", done: file.size, sha256: got.sha256, saveUrl, speed: 0 });
    save(saveUrl, file.name);
    return true;
  } catch (e) {
    fail(key, e);
    return false;
  }
}

export function save(url: string, name: string) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
}
