// What the page and its crypto Worker say to each other.
export type WorkerRequest =
  | { op: "derive"; id: number; password: string; kdf: string }
  | { op: "hash"; id: number; file: Blob }
  | { op: "download"; id: number; url: string }
  | { op: "cancel"; target: number };

export type WorkerReply = {
  id: number;
  progress?: number;
  keys?: Uint8Array;
  digest?: string;
  bytes?: number;
  blob?: Blob;
  error?: string;
};
