// Talking to the API: JSON in and out, the session's access token (refreshed before it runs out,
// once across all tabs: a refresh token presented twice ends the session), and every failure
// as an ApiError whose message a person can read.
import { getSecret, putSecret, del, list } from "./store";

export type Session = {
  email: string;
  userId: string;
  deviceId: string;
  access: string;
  accessExpiresAt: number;
  refresh: string;
  /** The account key (base64): seals the clipboard; never sent. */
  encKey: string;
};

export type TokenPair = {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  user_id: string;
  device_id: string | null;
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

const SESSION_KEY = "session";
/** Refresh when less than this is left of the access token. */
const REFRESH_MARGIN_MS = 60_000;
const SIGNED_OUT_CODES = new Set([
  "session_revoked",
  "invalid_token",
  "unauthorized",
  "invalid_refresh_token",
  "refresh_token_expired",
  "refresh_token_reused",
]);

let session: Session | null = null;
const signedOutListeners = new Set<(why: string) => void>();
const tabs = typeof BroadcastChannel === "function" ? new BroadcastChannel("udc-session") : null;
tabs?.addEventListener("message", (e) => {
  if (e.data?.type === "signed-out" && session) {
    session = null;
    for (const f of signedOutListeners) f(String(e.data.why ?? "Signed out in another tab."));
  }
});

export function current(): Session | null {
  return session;
}

export async function restore(): Promise<Session | null> {
  session = (await getSecret<Session>(SESSION_KEY)) ?? null;
  return session;
}

export async function begin(s: Session): Promise<void> {
  session = s;
  await putSecret(SESSION_KEY, s);
}

/**
 * Why this browser is about to be signed out by its own doing (deleting the account): a sign-out
 * the server causes meanwhile (the socket closed as the account ends) says this instead.
 */
let endingBecause: string | null = null;

export function endingSoon(why: string | null): void {
  endingBecause = why;
}

/** Forgets the session here and in every tab (the server side is the caller's business). */
export async function forget(because: string): Promise<void> {
  const why = endingBecause ?? because;
  endingBecause = null;
  const had = session !== null;
  session = null;
  await del(SESSION_KEY);
  // What this account left here: unfinished uploads (names, hashes) and the event cursor.
  for (const prefix of ["upload:", "cursor:"]) {
    for (const [key] of await list(prefix)) await del(key);
  }
  tabs?.postMessage({ type: "signed-out", why });
  if (had) for (const f of signedOutListeners) f(why);
}

export function onSignedOut(f: (why: string) => void): () => void {
  signedOutListeners.add(f);
  return () => signedOutListeners.delete(f);
}

export function sessionFrom(email: string, tokens: TokenPair, encKey: string): Session {
  if (!tokens.device_id) throw new ApiError(200, "bad_answer", "The server signed in no device.");
  return {
    email,
    userId: tokens.user_id,
    deviceId: tokens.device_id,
    access: tokens.access_token,
    accessExpiresAt: Date.now() + tokens.expires_in * 1000,
    refresh: tokens.refresh_token,
    encKey,
  };
}

type Options = { auth?: boolean; token?: string; headers?: Record<string, string> };

export async function api<T = unknown>(method: string, path: string, body?: unknown, opts: Options = {}): Promise<T> {
  const auth = opts.auth ?? true;
  let token = opts.token ?? (auth ? await accessToken(false) : undefined);
  for (let attempt = 0; ; attempt++) {
    try {
      return await send<T>(method, path, body, token, opts.headers);
    } catch (e) {
      if (!(e instanceof ApiError) || !auth || opts.token || e.status !== 401) throw e;
      // An expired token, or one signed with a key the server has since rotated: refresh once;
      // only a refused refresh means the session is over.
      if (attempt === 0 && ["token_expired", "invalid_token", "unauthorized"].includes(e.code)) {
        token = await accessToken(true);
        continue;
      }
      if (SIGNED_OUT_CODES.has(e.code)) await forget(signedOutMessage(e.code));
      throw e;
    }
  }
}

function signedOutMessage(code: string): string {
  return code === "session_revoked"
    ? "This browser was signed out: its session ended or the device was removed."
    : "Your session has ended. Sign in again.";
}

async function send<T>(method: string, path: string, body: unknown, token: string | undefined, extra?: Record<string, string>): Promise<T> {
  const headers: Record<string, string> = { ...extra };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  let resp: Response;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the udc server. Check the connection and try again.");
  }
  return parse<T>(resp);
}

/** The answer's JSON, or an ApiError that says what went wrong in words. */
export async function parse<T>(resp: Response): Promise<T> {
  const text = await resp.text().catch(() => "");
  let json: unknown = undefined;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!resp.ok) {
    const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const retry = Number(resp.headers.get("retry-after")) || undefined;
    if (err && typeof err.code === "string" && typeof err.message === "string") {
      throw new ApiError(resp.status, err.code, err.message, retry);
    }
    const what = resp.status >= 500 ? "The udc server had a problem" : "The udc server refused the request";
    throw new ApiError(resp.status, "bad_answer", `${what} (HTTP ${resp.status}) and did not say why. Try again in a moment.`);
  }
  if (json === undefined) {
    throw new ApiError(resp.status, "bad_answer", "The udc server sent an answer this page cannot read. Try again in a moment.");
  }
  return json as T;
}

let inTab: Promise<string> | null = null;

/** A live access token: refreshed when close to expiry (or `force`d after a 401), by one tab at a time. */
async function accessToken(force: boolean): Promise<string> {
  const s = session;
  if (!s) throw new ApiError(401, "unauthorized", "Sign in first.");
  if (!force && s.accessExpiresAt - Date.now() > REFRESH_MARGIN_MS) return s.access;
  const seen = s.access;
  const work = () => refreshOnce(seen, force);
  if (navigator.locks) return navigator.locks.request("udc-refresh", work);
  inTab ??= work().finally(() => (inTab = null));
  return inTab;
}

async function refreshOnce(seen: string, force: boolean): Promise<string> {
  // Another tab may have refreshed while this one waited for the lock: use its tokens.
  const stored = (await getSecret<Session>(SESSION_KEY)) ?? null;
  if (!stored || stored.deviceId !== session?.deviceId) {
    await forget("You were signed out.");
    throw new ApiError(401, "session_revoked", "You were signed out.");
  }
  if (stored.access !== seen || (!force && stored.accessExpiresAt - Date.now() > REFRESH_MARGIN_MS)) {
    session = stored;
    return stored.access;
  }
  try {
    const { tokens } = await send<{ tokens: TokenPair }>("POST", "/auth/token/refresh", { refresh_token: stored.refresh }, undefined);
    const next = { ...sessionFrom(stored.email, tokens, stored.encKey) };
    await begin(next);
    return next.access;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) await forget(signedOutMessage(e.code));
    throw e;
  }
}
