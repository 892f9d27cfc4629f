// The clients' shared crate (udc-client, Rust compiled to wasm32): sealing, opening, the
// approval phrase. Loaded once, on first use; the KDF and file hashing run in the Worker.
import init, * as udc from "./pkg/udc_client.js";

let loading: Promise<unknown> | null = null;

export async function wasm(): Promise<typeof udc> {
  loading ??= init();
  await loading;
  return udc;
}

export function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function unb64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
