// The page's side of the crypto Worker: each call a promise, progress through a callback.
import type { SealedFile, WorkerReply, WorkerRequest } from "./worker-protocol";

type Pending = { resolve: (r: WorkerReply) => void; reject: (e: Error) => void; progress?: (n: number) => void };

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function get(): Worker {
  if (worker) return worker;
  worker = new Worker(new URL("./crypto.worker.ts", import.meta.url), { type: "module" });
  worker.onmessage = (e: MessageEvent<WorkerReply>) => {
    const r = e.data;
    const p = pending.get(r.id);
    if (!p) return;
    if (r.progress !== undefined) {
      p.progress?.(r.progress);
      return;
    }
    pending.delete(r.id);
    if (r.error) p.reject(new Error(r.error));
    else p.resolve(r);
  };
  // A Worker that cannot start (an old tab after a deploy) or dies (out of memory) must not
  // leave a sign-in or a transfer waiting forever.
  worker.onerror = (e) => {
    e.preventDefault();
    const failed = [...pending.values()];
    pending.clear();
    worker?.terminate();
    worker = null;
    for (const p of failed) p.reject(new Error("The page's background worker stopped. Reload the page and try again."));
  };
  return worker;
}

type Call =
  | { op: "derive"; password: string; kdf: string }
  | { op: "hash"; file: Blob }
  | { op: "download"; url: string; sealed?: SealedFile }
  | { op: "seal"; key: Uint8Array; description: string; n: number; part: Blob };

function call(req: Call, progress?: (n: number) => void, signal?: AbortSignal): Promise<WorkerReply> {
  const id = nextId++;
  const w = get();
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, progress });
    signal?.addEventListener("abort", () => {
      w.postMessage({ op: "cancel", target: id } satisfies WorkerRequest);
      pending.delete(id);
      reject(new DOMException("cancelled", "AbortError"));
    });
    w.postMessage({ ...req, id } as WorkerRequest);
  });
}

/** auth_key (32 bytes) and enc_key (32 bytes) from the password and the account's KDF. */
export async function deriveKeys(password: string, kdf: unknown): Promise<{ authKey: Uint8Array; encKey: Uint8Array }> {
  const started = performance.now();
  const r = await call({ op: "derive", password, kdf: JSON.stringify(kdf) });
  // What the benchmark reads (scripts/bench.sh): the KDF's time as the page sees it.
  performance.measure("udc-kdf", { start: started, end: performance.now() });
  const keys = r.keys!;
  return { authKey: keys.slice(0, 32), encKey: keys.slice(32, 64) };
}

/** The file's SHA-256 (lower-case hex), read a chunk at a time. */
export async function hashFile(file: Blob, progress?: (n: number) => void, signal?: AbortSignal): Promise<string> {
  return (await call({ op: "hash", file }, progress, signal)).digest!;
}

/**
 * Downloads a presigned URL in the Worker, hashing as it goes; a sealed file is opened there
 * too, and its plain bytes hashed and returned.
 */
export async function download(
  url: string,
  progress?: (n: number) => void,
  signal?: AbortSignal,
  sealed?: SealedFile,
): Promise<{ blob: Blob; sha256: string; bytes: number }> {
  const r = await call({ op: "download", url, sealed }, progress, signal);
  return { blob: r.blob!, sha256: r.digest!, bytes: r.bytes! };
}

/** Part `n` of a file sealed in the Worker (the same bytes every time). */
export async function sealPart(key: Uint8Array, description: string, n: number, part: Blob, signal?: AbortSignal): Promise<Uint8Array> {
  return (await call({ op: "seal", key, description, n, part }, undefined, signal)).sealed!;
}
