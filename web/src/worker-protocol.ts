// What the page and its crypto Worker say to each other.

/** What sealing adds to each part of a file: a 24-byte nonce and a 16-byte tag (udc-client's file_seal::PART_OVERHEAD). */
export const PART_OVERHEAD = 40;

/** A sealed file to open as it downloads: the account key and the file's description (JSON). */
export type SealedFile = { key: Uint8Array; description: string };
export type WorkerRequest =
  | { op: "derive"; id: number; password: string; kdf: string }
  | { op: "hash"; id: number; file: Blob }
  | { op: "download"; id: number; url: string; sealed?: SealedFile }
  | { op: "seal"; id: number; key: Uint8Array; description: string; n: number; part: Blob }
  | { op: "cancel"; target: number };

export type WorkerReply = {
  id: number;
  progress?: number;
  keys?: Uint8Array;
  digest?: string;
  bytes?: number;
  blob?: Blob;
  sealed?: Uint8Array;
  error?: string;
};
