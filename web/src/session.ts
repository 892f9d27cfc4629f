// Signing in: a new account, a password, or approval from a device already signed in. The
// password never leaves the page: the Worker derives auth_key (sent) and enc_key, which only
// unwraps the account key (kept; it seals everything); the server keeps the key wrapped.
import { api, ApiError, begin, current, endingSoon, forget, sessionFrom, type TokenPair } from "./api";
import { getSecret, putSecret } from "./store";
import { b64, unb64, wasm } from "./wasm";
import { deriveKeys } from "./worker";
import type { Device } from "./types";

type SignedIn = { tokens: TokenPair; device_cookie?: string; wrapped_key?: string | null };

/** "Chrome on Linux" and the like: what a person would call the browser of `ua`. */
export function browserName(ua: string): string {
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chrom(e|ium)\//.test(ua)
        ? "Chrome"
        : /Safari\//.test(ua)
          ? "Safari"
          : "Browser";
  return `${browser} on ${platformName(ua)}`;
}

/** What a person would call this browser. */
export function defaultDeviceName(): string {
  return browserName(navigator.userAgent);
}

function platformName(ua: string): string {
  if (/Android/.test(ua)) return "Android";
  if (/iPhone|iPad/.test(ua)) return "iOS";
  if (/Windows/.test(ua)) return "Windows";
  if (/Mac OS X/.test(ua)) return "macOS";
  if (/CrOS/.test(ua)) return "ChromeOS";
  if (/Linux/.test(ua)) return "Linux";
  return "the web";
}

/** Where an email's device cookie is kept: named by a hash, so the names do not list who signed in here. */
async function cookieKey(email: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(email.trim().toLowerCase()));
  return `cookie:${b64(new Uint8Array(digest))}`;
}

async function keepCookie(email: string, cookie: string | undefined) {
  if (cookie) await putSecret(await cookieKey(email), cookie);
}

/** Registers this browser as a device of the account (the device-less session ends). */
async function registerDevice(email: string, tokens: TokenPair, accountKey: Uint8Array, name: string): Promise<void> {
  const { tokens: deviceTokens } = await api<{ device: Device; tokens: TokenPair }>(
    "POST",
    "/devices/register",
    { name: name.trim(), platform: "web", os_version: platformName(navigator.userAgent), app_version: "web", capabilities: ["clipboard", "files"] },
    { token: tokens.access_token },
  );
  await begin(sessionFrom(email, deviceTokens, b64(accountKey)));
}

/** Creates the account with a fresh account key and recovery code; the code's words, to show once. */
export async function signUp(email: string, password: string, deviceName: string): Promise<string> {
  const udc = await wasm();
  const kdf = JSON.parse(udc.newKdfParams());
  const { authKey, encKey } = await deriveKeys(password, kdf);
  const key = udc.newAccountKey();
  const wrapped_key = udc.wrapAccountKey(encKey, key);
  const code = new udc.RecoveryCode();
  try {
    const recovery = JSON.parse(code.forServer(key));
    const r = await api<SignedIn>("POST", "/auth/register", { email, kdf, auth_key: b64(authKey), wrapped_key, recovery }, { auth: false });
    await keepCookie(email, r.device_cookie);
    await registerDevice(email, r.tokens, key, deviceName);
    return code.words;
  } finally {
    code.free();
  }
}

/**
 * A lost password: the recovery code takes the account key back (wrapped by the code's key,
 * unwrapped here) and sets `newPassword` wrapping it, with a new recovery code (its words,
 * returned: the one used stops working). Every session of the account ends; sign in with the
 * new password next. A mistyped word is caught here, before anything is sent.
 */
export async function recoverAccount(email: string, typed: string, newPassword: string): Promise<string> {
  const udc = await wasm();
  const code = udc.RecoveryCode.parse(typed);
  const fresh = new udc.RecoveryCode();
  try {
    const proof = code.authKey;
    const { wrapped_key } = await api<{ wrapped_key: string }>("POST", "/auth/recovery", { email, recovery_auth_key: proof }, { auth: false });
    const key = code.unwrapAccountKey(wrapped_key);
    const kdf = JSON.parse(udc.newKdfParams());
    const next = await deriveKeys(newPassword, kdf);
    await api(
      "POST",
      "/auth/recovery/reset",
      {
        email,
        recovery_auth_key: proof,
        new_auth_key: b64(next.authKey),
        kdf,
        wrapped_key: udc.wrapAccountKey(next.encKey, key),
        recovery: JSON.parse(fresh.forServer(key)),
      },
      { auth: false },
    );
    return fresh.words;
  } finally {
    code.free();
    fresh.free();
  }
}

/** A new recovery code (the password proves it is the owner); the last one stops working. Its words. */
export async function newRecoveryCode(password: string): Promise<string> {
  const { authKey } = await signedInPassword(password);
  const udc = await wasm();
  const code = new udc.RecoveryCode();
  try {
    await api("PUT", "/account/recovery", { auth_key: b64(authKey), recovery: JSON.parse(code.forServer(accountKey())) });
    return code.words;
  } finally {
    code.free();
  }
}

export async function signIn(email: string, password: string, deviceName: string): Promise<void> {
  const { kdf } = await api<{ kdf: unknown }>("POST", "/auth/prelogin", { email }, { auth: false });
  const { authKey, encKey } = await deriveKeys(password, kdf);
  const cookie = await getSecret<string>(await cookieKey(email));
  const body = cookie ? { email, auth_key: b64(authKey), device_cookie: cookie } : { email, auth_key: b64(authKey) };
  const r = await api<SignedIn>("POST", "/auth/login", body, { auth: false });
  await keepCookie(email, r.device_cookie);
  const udc = await wasm();
  const key = udc.unwrapAccountKey(encKey, r.wrapped_key ?? undefined);
  if (!r.wrapped_key) {
    // An account made before account keys: its key is enc_key; wrapping it now lets a later
    // password change keep everything sealed with it.
    await api("PUT", "/account/key", { auth_key: b64(authKey), wrapped_key: udc.wrapAccountKey(encKey, key) }, { token: r.tokens.access_token }).catch(
      (e) => {
        if (!(e instanceof ApiError && e.code === "key_exists")) throw e;
      },
    );
  }
  await registerDevice(email, r.tokens, key, deviceName);
}

/**
 * A new password: proves the current one, and sends the new one's proof, KDF parameters and the
 * same account key wrapped by it, with a new recovery code (whoever knew the old password could
 * have made the last one). Nothing sealed changes; every other session ends. How many did, and
 * the new code's words.
 */
export async function changePassword(currentPassword: string, newPassword: string): Promise<{ ended: number; passkeysRemoved: number; words: string }> {
  const old = await signedInPassword(currentPassword);
  const udc = await wasm();
  const kdf = JSON.parse(udc.newKdfParams());
  const next = await deriveKeys(newPassword, kdf);
  const code = new udc.RecoveryCode();
  try {
    const r = await api<{ ended: number; passkeys_removed: number }>("POST", "/account/password", {
      auth_key: b64(old.authKey),
      new_auth_key: b64(next.authKey),
      kdf,
      wrapped_key: udc.wrapAccountKey(next.encKey, accountKey()),
      recovery: JSON.parse(code.forServer(accountKey())),
    });
    return { ended: r.ended, passkeysRemoved: r.passkeys_removed, words: code.words };
  } finally {
    code.free();
  }
}

export type Approval = { phrase: string; wait: Promise<void>; cancel: () => void };

/**
 * Asks the account's signed-in devices to let this browser in. The phrase is computed here from
 * this page's own key; a server that swapped in another key would show other words.
 */
export async function requestApproval(email: string, deviceName: string): Promise<Approval> {
  const udc = await wasm();
  const keys = new udc.ApprovalKeys();
  const r = await api<{ request_id: string; poll_secret: string; fingerprint_phrase: string; expires_in: number }>(
    "POST",
    "/auth/approval/request",
    { email, device_name: deviceName.trim(), public_key: keys.publicKey },
    { auth: false },
  );
  const phrase = keys.phrase;
  if (r.fingerprint_phrase !== phrase) {
    throw new ApiError(200, "phrase_mismatch", "The server showed different words for this browser's key. Do not continue: something between you and the server changed the request.");
  }
  let stopped = false;
  const wait = (async () => {
    while (!stopped) {
      await new Promise((ok) => setTimeout(ok, 700));
      if (stopped) break;
      let state: { state: string; tokens?: TokenPair; sealed_key?: string };
      try {
        state = await api("GET", `/auth/approval/${encodeURIComponent(r.request_id)}`, undefined, {
          auth: false,
          headers: { "x-udc-approval-secret": r.poll_secret },
        });
      } catch (e) {
        // A dropped connection or a server hiccup does not end the wait; an answer does.
        if (e instanceof ApiError && (e.status === 0 || e.status >= 500)) continue;
        throw e;
      }
      if (state.state === "approved" && state.tokens && state.sealed_key) {
        const encKey = keys.openAccountKey(state.sealed_key);
        await registerDevice(email, state.tokens, encKey, deviceName);
        await checkAccountKey();
        return;
      }
    }
    throw new DOMException("cancelled", "AbortError");
  })().finally(() => keys.free());
  return { phrase, wait, cancel: () => (stopped = true) };
}

/**
 * The account key that arrived by approval must open what the account's devices sealed. The
 * sealed box names no sender, so a server could answer "approved" itself with a key of its own;
 * the newest clipboard item (when there is one) tells the real key from that.
 */
async function checkAccountKey(): Promise<void> {
  const { items } = await api<{ items: { content_type: string; ciphertext?: string }[] }>("GET", "/sync/clipboard/history?limit=1");
  const item = items?.[0];
  if (!item?.ciphertext) return;
  try {
    (await wasm()).openClipboard(accountKey(), item.content_type, unb64(item.ciphertext));
  } catch {
    await signOut();
    throw new ApiError(200, "wrong_account_key", "The key this browser received does not open your account's data: it did not come from your device. Signed out; do not use this server until you know why.");
  }
}

/**
 * Deletes the account, proving the password (derived here, as at sign-in), and forgets it in
 * this browser. What the server will still erase, if anything.
 */
export async function deleteAccount(password: string): Promise<string | null> {
  const { authKey } = await signedInPassword(password);
  const deleted = "Your account was deleted, with everything in it.";
  endingSoon(deleted);
  try {
    const r = await api<{ remaining?: string } | undefined>("DELETE", "/account", { auth_key: b64(authKey) });
    await forget(deleted);
    return r?.remaining ?? null;
  } finally {
    endingSoon(null);
  }
}

/** The keys of the signed-in account's password as typed again (what account changes prove). */
async function signedInPassword(password: string): Promise<{ authKey: Uint8Array; encKey: Uint8Array }> {
  const s = current();
  if (!s) throw new ApiError(401, "unauthorized", "Sign in first.");
  const { kdf } = await api<{ kdf: unknown }>("POST", "/auth/prelogin", { email: s.email }, { auth: false });
  return deriveKeys(password, kdf);
}

export async function signOut(): Promise<void> {
  if (current()) {
    await api("POST", "/auth/logout").catch(() => undefined);
  }
  await forget("You signed out.");
}

export function accountKey(): Uint8Array {
  const s = current();
  if (!s) throw new ApiError(401, "unauthorized", "Sign in first.");
  return unb64(s.encKey);
}

/** base64url without padding, WebAuthn's encoding, both ways. */
function toB64url(bytes: ArrayBuffer | Uint8Array): string {
  return b64(new Uint8Array(bytes as ArrayBuffer)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text: string): Uint8Array<ArrayBuffer> {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return unb64(padded) as Uint8Array<ArrayBuffer>;
}

export type Passkey = { id: string; name: string; unlocks: boolean; created_at: string; last_used_at: string | null };

type PrfResults = { prf?: { enabled?: boolean; results?: { first?: ArrayBuffer } } };

/** Why passkeys cannot be used on this page, or null when they can. */
export function passkeyProblem(): string | null {
  if (typeof PublicKeyCredential === "undefined" || !navigator.credentials) return "This browser cannot make passkeys.";
  // A passkey belongs to a site named by a host name: never an IP address.
  if (/^[\d.]+$|^\[/.test(location.hostname)) {
    return `Passkeys need this page opened by a name, not an address: use http://localhost:${location.port || "80"}/ on this computer, or the server's host name.`;
  }
  return null;
}

export function passkeysSupported(): boolean {
  return passkeyProblem() === null;
}

/**
 * Adds a passkey for the account, proving the password (a passkey signs in without it). Where
 * the authenticator has the PRF extension, the account key is wrapped by a key from its output
 * (made here; the server keeps only the wrapped key): a sign-in with it then unlocks the data.
 */
export async function addPasskey(name: string, password: string): Promise<Passkey> {
  const { authKey } = await signedInPassword(password);
  const o = await api<{ challenge: string; user: { id: string; name: string }; exclude_credentials: string[]; timeout_ms: number }>(
    "POST",
    "/auth/webauthn/register/options",
    {},
  );
  const udc = await wasm();
  const prf = { eval: { first: udc.passkeyPrfSalt() as Uint8Array<ArrayBuffer> } };
  const made = (await navigator.credentials.create({
    publicKey: {
      challenge: fromB64url(o.challenge),
      rp: { name: "udc" },
      user: { id: fromB64url(o.user.id), name: o.user.name, displayName: o.user.name },
      pubKeyCredParams: [
        { type: "public-key", alg: -7 },
        { type: "public-key", alg: -8 },
      ],
      authenticatorSelection: { residentKey: "required", userVerification: "required" },
      attestation: "none",
      timeout: o.timeout_ms,
      excludeCredentials: o.exclude_credentials.map((id) => ({ type: "public-key", id: fromB64url(id) })),
      extensions: { prf } as AuthenticationExtensionsClientInputs,
    },
  })) as PublicKeyCredential | null;
  if (!made) throw new Error("No passkey was made.");
  const response = made.response as AuthenticatorAttestationResponse;
  const ext = made.getClientExtensionResults() as PrfResults;
  let output = ext.prf?.results?.first;
  if (!output && ext.prf?.enabled) {
    // Most authenticators give the PRF's output only when the passkey is used: once now.
    const used = (await navigator.credentials.get({
      publicKey: {
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        allowCredentials: [{ type: "public-key", id: made.rawId }],
        userVerification: "required",
        extensions: { prf } as AuthenticationExtensionsClientInputs,
      },
    })) as PublicKeyCredential | null;
    output = (used?.getClientExtensionResults() as PrfResults | undefined)?.prf?.results?.first;
  }
  const wrapped_key = output ? udc.wrapAccountKey(udc.passkeyWrapKey(new Uint8Array(output)), accountKey()) : null;
  return api<Passkey>("POST", "/auth/webauthn/register", {
    auth_key: b64(authKey),
    name: name.trim(),
    client_data_json: toB64url(response.clientDataJSON),
    attestation_object: toB64url(response.attestationObject),
    wrapped_key,
  });
}

/**
 * Signs in with a passkey the browser finds (no email typed). One whose PRF wraps the account
 * key opens the account here at once; one without PRF cannot unlock the data (the server gives
 * it no session), so the caller asks another device to approve this browser (the email it
 * returns).
 */
export async function signInWithPasskey(deviceName: string): Promise<{ unlocked: true } | { unlocked: false; email: string }> {
  const o = await api<{ challenge: string; timeout_ms: number }>("POST", "/auth/webauthn/login/options", {}, { auth: false });
  const udc = await wasm();
  const used = (await navigator.credentials.get({
    publicKey: {
      challenge: fromB64url(o.challenge),
      userVerification: "required",
      timeout: o.timeout_ms,
      extensions: { prf: { eval: { first: udc.passkeyPrfSalt() as Uint8Array<ArrayBuffer> } } } as AuthenticationExtensionsClientInputs,
    },
  })) as PublicKeyCredential | null;
  if (!used) throw new Error("No passkey was chosen.");
  const response = used.response as AuthenticatorAssertionResponse;
  const r = await api<{ user: { email: string }; tokens: TokenPair | null; wrapped_key: string | null }>(
    "POST",
    "/auth/webauthn/login",
    {
      credential_id: toB64url(used.rawId),
      client_data_json: toB64url(response.clientDataJSON),
      authenticator_data: toB64url(response.authenticatorData),
      signature: toB64url(response.signature),
      user_handle: response.userHandle ? toB64url(response.userHandle) : null,
    },
    { auth: false },
  );
  const output = (used.getClientExtensionResults() as PrfResults).prf?.results?.first;
  if (r.tokens && r.wrapped_key && output) {
    try {
      const key = udc.unwrapAccountKey(udc.passkeyWrapKey(new Uint8Array(output)), r.wrapped_key);
      await registerDevice(r.user.email, r.tokens, key, deviceName);
      return { unlocked: true };
    } catch {
      // A wrapped key this passkey's PRF does not open (not the one it wrapped): approval instead.
    }
  }
  // A session this browser cannot use without the key ends here.
  if (r.tokens) await api("POST", "/auth/logout", undefined, { token: r.tokens.access_token }).catch(() => undefined);
  return { unlocked: false, email: r.user.email };
}
