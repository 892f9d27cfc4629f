// Files are sealed in this browser before they leave it, as the agent seals them
// (udc-client's file_seal): the server keeps a sealed description and sizes. Here a stored
// file is opened into what its owner knows — name, type, size, SHA-256 — with what the
// transfers need kept beside it in `stored`.
import { accountKey } from "./session";
import type { FileInfo } from "./types";
import type { SealedFile } from "./worker-protocol";
import { wasm } from "./wasm";

/** What a sealed file's description holds (its JSON text travels to the Worker as is). */
export type Description = { name: string; mime: string; size: number; sha256: string; part_size: number };

/** A new upload: its description, what the server is told, and how the parts are cut. */
export type Described = {
  description: string;
  sealed: string;
  content_id: string;
  plan: { size: number; part_size: number; part_count: number; sealed_size: number; sealed_part_size: number };
};

export async function describe(name: string, mime: string, size: number, sha256: string): Promise<Described> {
  const udc = await wasm();
  const sealer = new udc.FileSealer(accountKey());
  try {
    return JSON.parse(sealer.describe(name, mime, BigInt(size), sha256)) as Described;
  } finally {
    sealer.free();
  }
}

/** The file as its owner knows it; one this browser cannot open keeps the server's view, named so. */
export async function opened(file: FileInfo): Promise<FileInfo> {
  if (!file.sealed || file.stored) return file;
  let sealer: { free(): void; openDescription(s: string): string; contentId(d: string): string } | null = null;
  try {
    const udc = await wasm();
    sealer = new udc.FileSealer(accountKey());
    const description = sealer.openDescription(file.sealed);
    // The id the server keeps must be this description's, or a download would be confirmed
    // (and checked) as another file.
    if (sealer.contentId(description) !== file.sha256) return { ...file, name: "(its description is not its content's)" };
    const d = JSON.parse(description) as Description;
    return {
      ...file,
      name: d.name,
      mime: d.mime,
      size: d.size,
      sha256: d.sha256,
      stored: { size: file.size, content_id: file.sha256, description },
    };
  } catch {
    return { ...file, name: "(sealed with a key this browser does not have)" };
  } finally {
    sealer?.free();
  }
}

/** What the Worker needs to open `file` as it downloads (nothing for a file in the clear). */
export function sealedFile(file: FileInfo): SealedFile | undefined {
  if (file.sealed && !file.stored) throw new Error(`${file.name}: this browser cannot open it.`);
  return file.stored ? { key: accountKey(), description: file.stored.description } : undefined;
}

export function openedAll(files: FileInfo[]): Promise<FileInfo[]> {
  return Promise.all(files.map(opened));
}
