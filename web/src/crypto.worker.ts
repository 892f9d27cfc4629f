// Work that would freeze the page: Argon2id (about 19 MiB, two passes), hashing whole files a
// chunk at a time, and downloading a file while hashing it. One request at a time per id.
import init, { deriveKeys, FileSealer, Sha256 } from "./pkg/udc_client.js";
import { PART_OVERHEAD, type SealedFile, type WorkerRequest, type WorkerReply } from "./worker-protocol";

const ready = init();
const cancelled = new Set<number>();

function reply(message: WorkerReply) {
  (self as unknown as Worker).postMessage(message);
}

/** Tells the page how far a long job got, at most ten times a second. */
function reporter(id: number): (bytes: number) => void {
  let told = 0;
  return (bytes) => {
    const now = performance.now();
    if (now - told > 100) {
      told = now;
      reply({ id, progress: bytes });
    }
  };
}

/** Hashes a download as it arrives, keeping its chunks for the Blob it becomes. */
async function hashStream(id: number, stream: ReadableStream<Uint8Array>, keep: Uint8Array[]): Promise<{ digest: string; bytes: number }> {
  const hasher = new Sha256();
  const reader = stream.getReader();
  const progress = reporter(id);
  let bytes = 0;
  for (;;) {
    if (cancelled.has(id)) {
      await reader.cancel();
      throw new Error("cancelled");
    }
    const { value, done } = await reader.read();
    if (done) break;
    hasher.update(value);
    keep.push(value);
    bytes += value.length;
    progress(bytes);
  }
  return { digest: hasher.hexDigest(), bytes };
}

/**
 * Hashes a file through one reused buffer (a BYOB reader): reading a large file leaves no
 * garbage behind, so the Worker's memory stays flat however big the file is.
 */
async function hashFile(id: number, file: Blob): Promise<string> {
  const hasher = new Sha256();
  const reader = file.stream().getReader({ mode: "byob" });
  const progress = reporter(id);
  let buffer = new ArrayBuffer(1 << 20);
  let bytes = 0;
  for (;;) {
    if (cancelled.has(id)) {
      await reader.cancel();
      throw new Error("cancelled");
    }
    const { value, done } = await reader.read(new Uint8Array(buffer));
    if (done || !value) break;
    hasher.update(value);
    bytes += value.length;
    buffer = value.buffer as ArrayBuffer;
    progress(bytes);
  }
  return hasher.hexDigest();
}

/**
 * Downloads a sealed file and opens each part as soon as its bytes are in (its tag checked, in
 * its place), hashing the plain bytes: memory holds the plain file and one sealed part. A file
 * cut short, or with bytes after its last part, is refused.
 */
async function openStream(id: number, stream: ReadableStream<Uint8Array>, file: SealedFile): Promise<{ digest: string; bytes: number; plain: Uint8Array[] }> {
  const sealer = new FileSealer(file.key);
  const reader = stream.getReader();
  try {
    const d = JSON.parse(file.description) as { size: number; part_size: number };
    const count = Math.max(1, Math.ceil(d.size / d.part_size));
    const partLen = (n: number) => Math.min(d.part_size, d.size - (n - 1) * d.part_size) + PART_OVERHEAD;
    const hasher = new Sha256();
    const progress = reporter(id);
    const plain: Uint8Array[] = [];
    let n = 1;
    let part = new Uint8Array(partLen(1));
    let filled = 0;
    let received = 0;
    for (;;) {
      if (cancelled.has(id)) throw new Error("cancelled");
      const { value, done } = await reader.read();
      if (done) break;
      received += value.length;
      for (let at = 0; at < value.length; ) {
        if (n > count) throw new Error("The download has bytes after the file's last part: nothing was saved.");
        const take = Math.min(part.length - filled, value.length - at);
        part.set(value.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled === part.length) {
          const opened = sealer.openPart(file.description, BigInt(n), part);
          hasher.update(opened);
          plain.push(opened);
          n += 1;
          if (n <= count) part = new Uint8Array(partLen(n));
          filled = 0;
        }
      }
      progress(received);
    }
    if (n <= count) throw new Error("The download was cut short: nothing was saved.");
    return { digest: hasher.hexDigest(), bytes: d.size, plain };
  } finally {
    await reader.cancel().catch(() => undefined);
    sealer.free();
  }
}

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const m = e.data;
  if (m.op === "cancel") {
    cancelled.add(m.target);
    return;
  }
  try {
    await ready;
    if (m.op === "derive") {
      const keys = deriveKeys(m.password, m.kdf);
      reply({ id: m.id, keys });
    } else if (m.op === "hash") {
      reply({ id: m.id, digest: await hashFile(m.id, m.file) });
    } else if (m.op === "download") {
      const resp = await fetch(m.url, { cache: "no-store", referrerPolicy: "no-referrer" });
      if (!resp.ok || !resp.body) throw new Error(`the store answered ${resp.status}`);
      const chunks: Uint8Array[] = [];
      const { digest, bytes, plain } = m.sealed
        ? await openStream(m.id, resp.body, m.sealed)
        : { ...(await hashStream(m.id, resp.body, chunks)), plain: chunks };
      // Never the sender's type: a Blob of text/html or SVG on this origin could be opened as a page.
      const blob = new Blob(plain as BlobPart[], { type: "application/octet-stream" });
      reply({ id: m.id, digest, bytes, blob });
    } else if (m.op === "seal") {
      const sealer = new FileSealer(m.key);
      try {
        const sealed = sealer.sealPart(m.description, BigInt(m.n), new Uint8Array(await m.part.arrayBuffer()));
        (self as unknown as Worker).postMessage({ id: m.id, sealed } satisfies WorkerReply, [sealed.buffer]);
      } finally {
        sealer.free();
      }
    }
  } catch (err) {
    reply({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  } finally {
    cancelled.delete(m.id);
  }
};
