import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { changePassword } from "../session";
import { explain } from "./action";
import { RecoveryWords } from "./Recovery";

/**
 * A new password. Everything stays readable (the account key is only wrapped anew); the other
 * sessions sign out, which `onChanged` lets the page show.
 */
export function ChangePassword({ onChanged }: { onChanged: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  // The new recovery code made with the new password, shown once.
  const [words, setWords] = useState<string | null>(null);

  const mismatch = again !== "" && again !== next;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (next === current) return setError("The new password is the one you have now.");
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const { ended, passkeysRemoved, words } = await changePassword(current, next);
      setWords(words);
      setCurrent("");
      setNext("");
      setAgain("");
      const passkeys =
        passkeysRemoved === 0 ? "" : ` Your ${passkeysRemoved === 1 ? "passkey was" : `${passkeysRemoved} passkeys were`} removed with the old password: add again the ones you use.`;
      setDone(
        (ended === 0
          ? "Your password is changed."
          : `Your password is changed. ${ended} other ${ended === 1 ? "session was" : "sessions were"} signed out: sign in there with the new password.`) +
          passkeys,
      );
      onChanged();
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === "wrong_password" ? "That is not your current password. Nothing was changed." : explain(err),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="password-title" class="card">
      <h2 id="password-title">Change your password</h2>
      <p class="muted">
        Your files, clipboard history and settings stay as they are. Every other device and browser is signed out and signs in again with the new
        password. The password never leaves this browser: if you forget it, only your recovery code can set a new one, not even the server.
      </p>
      {error && (
        <p class="error" role="alert" id="password-error">
          {error}
        </p>
      )}
      {done && (
        <p class="notice" role="status" id="password-done">
          {done} Your recovery code changed with it: the old one no longer works.
        </p>
      )}
      {words && <RecoveryWords titled={false} words={words} onDone={() => setWords(null)} />}
      <form class="password-form" onSubmit={(e) => void submit(e)}>
        <label>
          Current password
          <input id="password-current" type="password" autocomplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
        </label>
        <label>
          New password
          <input id="password-new" type="password" autocomplete="new-password" required minLength={8} value={next} onInput={(e) => setNext(e.currentTarget.value)} />
        </label>
        <label>
          New password again
          <input
            id="password-again"
            type="password"
            autocomplete="new-password"
            required
            aria-invalid={mismatch}
            value={again}
            onInput={(e) => setAgain(e.currentTarget.value)}
          />
        </label>
        {mismatch && <p class="muted">The two new passwords differ.</p>}
        <div class="row">
          <button type="submit" id="password-change" disabled={busy || current === "" || next.length < 8 || again !== next}>
            {busy ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </section>
  );
}
