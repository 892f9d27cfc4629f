// Work that would freeze the page: Argon2id (about 19 MiB, two passes), hashing whole files a
// chunk at a time, and downloading a file while hashing it. One request at a time per id.
import init, { deriveKeys, FileSealer, Sha256 } from "./pkg/udc_client.js";
import type { SealedFile, WorkerRequest, WorkerReply } from "./worker-protocol";

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
 * Opens a downloaded sealed file part by part (each part's tag checked, in its place), hashing
 * the plain bytes; a part cut short or left over is refused.
 */
function openSealed(chunks: Uint8Array[], file: SealedFile): { digest: string; bytes: number; plain: Uint8Array[] } {
  const sealer = new FileSealer(file.key);
  try {
    const d = JSON.parse(file.description) as { size: number; part_size: number };
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    const count = Math.max(1, Math.ceil(d.size / d.part_size));
    if (all.length !== d.size + 16 * count) throw new Error("The downloaded file is not the size it was sealed at: nothing was saved.");
    const hasher = new Sha256();
    const plain: Uint8Array[] = [];
    let offset = 0;
    for (let n = 1; n <= count; n++) {
      const len = Math.min(d.part_size, d.size - (n - 1) * d.part_size) + 16;
      const part = sealer.openPart(file.description, BigInt(n), all.subarray(offset, offset + len));
      offset += len;
      hasher.update(part);
      plain.push(part);
    }
    return { digest: hasher.hexDigest(), bytes: d.size, plain };
  } finally {
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
      const got = await hashStream(m.id, resp.body, chunks);
      const { digest, bytes, plain } = m.sealed ? openSealed(chunks, m.sealed) : { ...got, plain: chunks };
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
