import { useEffect, useRef, useState } from "preact/hooks";
import { api, forget } from "../api";
import { ago } from "../format";
import { browserName } from "../session";
import type { AccountSession } from "../types";
import { useAction } from "./action";

/** A client as a person names it: the agent by its version and system, a browser by its kind. */
export function clientName(ua: string | null): string {
  if (!ua) return "Unknown client";
  const agent = /^udc-agent\/(\S+) \((\w+)\)/.exec(ua);
  if (agent) return `udc-agent ${agent[1]} on ${agent[2] === "linux" ? "Linux" : agent[2] === "windows" ? "Windows" : agent[2] === "macos" ? "macOS" : agent[2]}`;
  if (/Mozilla\//.test(ua)) return browserName(ua);
  return ua.length > 60 ? `${ua.slice(0, 57)}…` : ua;
}

/** Where the account is signed in, and signing sessions out: one, or every other. */
export function Sessions() {
  const [sessions, setSessions] = useState<AccountSession[] | null>(null);
  const [error, act] = useAction();
  const [ending, setEnding] = useState<AccountSession | "others" | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);

  const load = () =>
    act(async () => {
      const r = await api<{ sessions: AccountSession[] }>("GET", "/account/sessions");
      // This browser first, then the rest as the server orders them (most recently used first).
      setSessions([...r.sessions].sort((a, b) => Number(b.is_current) - Number(a.is_current)));
    });

  useEffect(() => void load(), []);

  const end = (target: AccountSession | "others") =>
    act(async () => {
      if (target === "others") {
        await api("DELETE", "/account/sessions");
      } else {
        await api("DELETE", `/account/sessions/${target.id}`);
        if (target.is_current) return void (await forget("You signed this browser out."));
      }
      await load();
    });

  const others = sessions?.filter((s) => !s.is_current).length ?? 0;
  return (
    <section aria-labelledby="sessions-title">
      <h2 id="sessions-title">Where you are signed in</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {sessions === null ? (
        <p class="muted">Loading your sessions…</p>
      ) : (
        <ul class="devices sessions">
          {sessions.map((s) => (
            <li class="device session" data-session-id={s.id} key={s.id}>
              <div class="device-main">
                <div>
                  <span class="device-name">{s.device_name ?? "Signed in, no device yet"}</span> {s.is_current && <span class="badge">this browser</span>}
                  <div class="muted small">
                    {clientName(s.client)}
                    {s.client_ip ? ` · ${s.client_ip}` : ""}
                  </div>
                  <div class="muted small">
                    Signed in {ago(s.created_at)} · last used {ago(s.last_used_at)}
                  </div>
                </div>
              </div>
              <div class="actions">
                <button
                  class="quiet danger end-session"
                  aria-label={`Sign out ${s.device_name ?? "this session"}`}
                  onClick={() => {
                    setEnding(s);
                    dialog.current?.showModal();
                  }}
                >
                  Sign out
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      <div class="row">
        <button
          class="danger"
          id="end-others"
          disabled={others === 0}
          onClick={() => {
            setEnding("others");
            dialog.current?.showModal();
          }}
        >
          Sign out everywhere else
        </button>
      </div>
      <p class="muted small">
        A session signed out stops working at once: its device must sign in again. Its device stays in your list; remove it there to stop it
        receiving your files and clipboard. Signing out others needs a device another of yours trusts, your first device, or a fresh password
        sign-in.
      </p>
      <dialog ref={dialog} class="card" aria-labelledby="end-title" onClose={() => setEnding(null)}>
        {ending && (
          <form method="dialog">
            <h3 id="end-title">
              {ending === "others" ? `Sign out ${others} other session${others === 1 ? "" : "s"}?` : ending.is_current ? "Sign this browser out?" : `Sign out “${ending.device_name ?? "this session"}”?`}
            </h3>
            <p>{ending === "others" ? "Every device but this browser must sign in again." : "That device must sign in again to use your account."}</p>
            <div class="row end">
              <button value="cancel" autoFocus>
                Cancel
              </button>
              <button value="end" class="danger" id="confirm-end" onClick={() => void end(ending)}>
                Sign out
              </button>
            </div>
          </form>
        )}
      </dialog>
    </section>
  );
}
