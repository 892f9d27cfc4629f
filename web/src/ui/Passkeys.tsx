import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { ago } from "../format";
import { addPasskey, passkeyProblem, type Passkey } from "../session";
import { explain } from "./action";

/** What a failed passkey step means to a person. */
function passkeyError(e: unknown): string {
  if (e instanceof ApiError && e.code === "wrong_password") return "That is not your password. No passkey was added.";
  if (e instanceof ApiError && e.code === "passkey_not_added") return "That passkey is on your account already (or you have 20: remove one first).";
  if (e instanceof DOMException && e.name === "NotAllowedError") return "The passkey was not made: it was cancelled, or it timed out.";
  if (e instanceof DOMException && e.name === "InvalidStateError") return "This authenticator already holds a passkey for your account.";
  return explain(e);
}

/** The account's passkeys: which unlock the data by themselves, adding one (with the password), removing one. */
export function PasskeysCard({ onChanged }: { onChanged: () => void }) {
  const [keys, setKeys] = useState<Passkey[] | null>(null);
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<Passkey | null>(null);

  const load = () =>
    api<{ passkeys: Passkey[] }>("GET", "/account/passkeys")
      .then((r) => setKeys(r.passkeys))
      .catch((e) => setError(explain(e)));
  useEffect(() => void load(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      setAdded(await addPasskey(name || "Passkey", password));
      setPassword("");
      setName("");
      await load();
      onChanged();
    } catch (err) {
      setError(passkeyError(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (k: Passkey) => {
    setError(null);
    try {
      await api("DELETE", `/account/passkeys/${k.id}`);
      await load();
      onChanged();
    } catch (err) {
      setError(explain(err));
    }
  };

  return (
    <section aria-labelledby="passkeys-title" class="card">
      <h2 id="passkeys-title">Passkeys</h2>
      <p class="muted">
        Sign in with your fingerprint, face or security key instead of your password. A passkey that can unlock your data (most phones and
        computers can) opens your account with nothing typed; one that cannot signs you in, and one of your devices approves this browser.
      </p>
      {keys && keys.length > 0 && (
        <ul class="devices passkeys" id="passkey-list">
          {keys.map((k) => (
            <li key={k.id} class="device passkey" data-unlocks={String(k.unlocks)}>
              <div class="device-main">
                <div>
                  <span class="device-name">{k.name}</span> {k.unlocks && <span class="badge">unlocks your data</span>}
                  <div class="muted small">
                    {k.unlocks ? "Signs in and opens your data" : "Signs in; another device approves the browser"}
                  </div>
                  <div class="muted small">
                    Added {ago(k.created_at)} · {k.last_used_at ? `used ${ago(k.last_used_at)}` : "not used yet"}
                  </div>
                </div>
              </div>
              <div class="actions">
                <button class="quiet danger" onClick={() => void remove(k)} aria-label={`Remove ${k.name}`}>
                  Remove
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      {added && (
        <p class="notice" role="status" id="passkey-added">
          Added “{added.name}”.{" "}
          {added.unlocks ? "Signing in with it unlocks your data, no password needed." : "It signs you in; this authenticator cannot unlock your data, so another of your devices approves each new browser."}
        </p>
      )}
      {error && (
        <p class="error" role="alert" id="passkey-error">
          {error}
        </p>
      )}
      {passkeyProblem() === null ? (
        <form class="password-form" onSubmit={(e) => void submit(e)}>
          <label>
            Name it
            <input id="passkey-name" maxLength={64} placeholder="Laptop fingerprint" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Your password
            <input id="passkey-password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </label>
          <div class="row">
            <button type="submit" id="passkey-add" disabled={busy || password === ""}>
              {busy ? "Waiting for your authenticator…" : "Add a passkey"}
            </button>
          </div>
        </form>
      ) : (
        <p class="muted" id="passkey-problem">
          {passkeyProblem()}
        </p>
      )}
    </section>
  );
}
