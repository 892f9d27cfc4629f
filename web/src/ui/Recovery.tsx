import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { ago } from "../format";
import { newRecoveryCode } from "../session";
import { explain } from "./action";

/** The recovery code's words, shown once, with what they are for and a way to keep them. */
export function RecoveryWords({ words, onDone, titled = true }: { words: string; onDone: () => void; titled?: boolean }) {
  const [copied, setCopied] = useState(false);
  const shown = useRef<HTMLDivElement>(null);
  // Made from a form lower on the page: bring the words where they are seen.
  useEffect(() => shown.current?.scrollIntoView({ block: "center" }), []);
  return (
    <div class="recovery-words" role="region" aria-label="Your recovery code" ref={shown}>
      {titled && <h2>Your recovery code</h2>}
      <p>
        Write these twelve words down, in order, and keep them somewhere safe. If you forget your password, they let you set a new one and keep
        everything. <strong>They are not shown again</strong>, and without them and without your password nobody can open your data, not even
        the server.
      </p>
      <ol class="words" id="recovery-words" data-words={words}>
        {words.split(" ").map((w, i) => (
          <li key={i}>{w}</li>
        ))}
      </ol>
      <div class="row">
        <button
          type="button"
          class="quiet"
          onClick={() =>
            void navigator.clipboard?.writeText(words).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? "Copied" : "Copy the words"}
        </button>
        <button type="button" class="primary" id="recovery-done" onClick={onDone}>
          I have written them down
        </button>
      </div>
    </div>
  );
}

/** Whether the account has a recovery code, and making a new one (with the password). */
export function RecoveryCard() {
  const [since, setSince] = useState<string | null | undefined>(undefined);
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [words, setWords] = useState<string | null>(null);

  const load = () =>
    api<{ recovery_set_at: string | null }>("GET", "/account")
      .then((a) => setSince(a.recovery_set_at))
      .catch((e) => setError(explain(e)));
  useEffect(() => void load(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setWords(await newRecoveryCode(password));
      setPassword("");
    } catch (err) {
      setError(err instanceof ApiError && err.code === "wrong_password" ? "That is not your password. Nothing was changed." : explain(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="recovery-title" class="card">
      <h2 id="recovery-title">Recovery code</h2>
      {words ? (
        <RecoveryWords
          titled={false}
          words={words}
          onDone={() => {
            setWords(null);
            void load();
          }}
        />
      ) : (
        <>
          {since === undefined ? null : since ? (
            <p id="recovery-state">You made your recovery code {ago(since)}. Making a new one stops the old one from working.</p>
          ) : (
            <p class="error" id="recovery-state">
              Your account has no recovery code: if you forget your password, your files, clipboard and settings are lost. Make one now.
            </p>
          )}
          {error && (
            <p class="error" role="alert" id="recovery-error">
              {error}
            </p>
          )}
          <form class="password-form" onSubmit={(e) => void submit(e)}>
            <label>
              Your password
              <input id="recovery-password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
            </label>
            <div class="row">
              <button type="submit" id="recovery-new" disabled={busy || password === ""}>
                {busy ? "Making…" : "Make a new recovery code"}
              </button>
            </div>
          </form>
        </>
      )}
    </section>
  );
}
