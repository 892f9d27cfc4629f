import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { deleteAccount } from "../session";
import { explain } from "./action";

/** Deleting the account, with its password and a confirmation: it cannot be undone. */
export function DeleteAccount({ email }: { email: string }) {
  const [password, setPassword] = useState("");
  const [understood, setUnderstood] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // On success this browser is signed out and the sign-in page says why.
      await deleteAccount(password);
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === "wrong_password" ? "That is not this account's password. Nothing was deleted." : explain(err),
      );
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="delete-title" class="card danger-zone">
      <h2 id="delete-title">Delete your account</h2>
      <p>
        Deletes <strong>{email}</strong> and everything in it: every device is signed out, and your files, clipboard history and settings are
        erased from the server. Files your devices already saved stay on them. This cannot be undone, and nobody can restore it for you.
      </p>
      {error && (
        <p class="error" role="alert" id="delete-error">
          {error}
        </p>
      )}
      <form class="delete-form" onSubmit={(e) => void submit(e)}>
        <label>
          Your password
          <input
            id="delete-password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <label class="inline">
          <input id="delete-confirm" type="checkbox" checked={understood} onChange={(e) => setUnderstood(e.currentTarget.checked)} /> I
          understand this deletes everything and cannot be undone
        </label>
        <div class="row">
          <button type="submit" class="danger" id="delete-account" disabled={busy || !understood || password === ""}>
            {busy ? "Deleting…" : "Delete account"}
          </button>
        </div>
      </form>
    </section>
  );
}
