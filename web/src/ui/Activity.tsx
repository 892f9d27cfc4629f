import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { ago } from "../format";
import type { ActivityEntry } from "../types";
import { useAction } from "./action";
import { clientName } from "./Sessions";

/** What an entry says happened, in a person's words. */
export function describe(e: ActivityEntry): string {
  const target = e.target_device_name ?? "a device";
  switch (e.kind) {
    case "account_created":
      return "Account created";
    case "signed_in":
      return e.detail.method === "approval"
        ? "Signed in, approved by another device"
        : e.detail.method === "passkey"
          ? `Signed in with the passkey “${e.detail.passkey ?? "a passkey"}”`
          : "Signed in with the password";
    case "sign_in_failed":
      return e.detail.method === "recovery_code"
        ? "Failed recovery: wrong recovery code"
        : e.detail.method === "session_password"
          ? "Wrong password given on a signed-in device"
          : e.detail.method === "passkey"
            ? "Failed sign-in: a passkey was refused"
            : "Failed sign-in: wrong password";
    case "device_added":
      return `Device added: ${target}`;
    case "device_removed":
      return `Device removed: ${target}`;
    case "trust_added":
      return `Now trusts ${target}`;
    case "trust_removed":
      return `Trust in ${target} withdrawn`;
    case "approval_approved":
      return `Sign-in approved for “${e.detail.device_name ?? "a new device"}”`;
    case "approval_denied":
      return `Sign-in denied for “${e.detail.device_name ?? "a new device"}”`;
    case "password_changed":
      return "Password changed";
    case "password_reset":
      return "Password reset with the recovery code";
    case "recovery_code_changed":
      return "New recovery code made";
    case "passkey_added":
      return `Passkey added: “${e.detail.name ?? "a passkey"}”`;
    case "passkey_removed":
      return `Passkey removed: “${e.detail.name ?? "a passkey"}”`;
    case "remote_session":
      return `${target} was let in to ${e.detail.mode === "view_only" ? "see" : "see and control"} this screen`;
    default:
      return e.kind;
  }
}

/** The account's recent security activity, newest first (kept 90 days). */
export function Activity() {
  const [entries, setEntries] = useState<ActivityEntry[] | null>(null);
  const [error, act] = useAction();
  useEffect(
    () =>
      void act(async () => {
        const r = await api<{ activity: ActivityEntry[] }>("GET", "/account/activity?limit=50");
        setEntries(r.activity);
      }),
    [],
  );
  return (
    <section aria-labelledby="activity-title">
      <h2 id="activity-title">Recent activity</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {entries === null ? (
        <p class="muted">Loading what happened to your account…</p>
      ) : (
        <ul class="activity">
          {entries.map((e) => (
            <li key={e.id} class={e.kind === "sign_in_failed" ? "activity-entry warn" : "activity-entry"} data-kind={e.kind}>
              <span class="what">{describe(e)}</span>
              <span class="muted small">
                {e.device_name ?? clientName(e.client)}
                {e.client_ip ? ` · ${e.client_ip}` : ""} · <time dateTime={e.at}>{ago(e.at)}</time>
              </span>
            </li>
          ))}
        </ul>
      )}
      <p class="muted small">Sign-ins, devices, trust, approvals, password and recovery changes and remote sessions of the last 90 days. Something you did not do? Change your password and sign out everywhere else.</p>
    </section>
  );
}
