import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { defaultDeviceName, requestApproval, signIn, signUp, type Approval } from "../session";

type Mode = "signin" | "signup" | "approval";

function explain(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === "invalid_credentials") return "That email and password do not match an account.";
    if (e.code === "email_taken") return "An account with this email exists already: sign in instead.";
    if (e.code === "rate_limited") return `Too many attempts. Try again in ${Math.ceil((e.retryAfter ?? 60) / 60)} min.`;
    if (e.code === "approval_denied") return "The sign-in was denied on your other device.";
    if (e.code === "approval_expired") return "Nobody approved in time. Try again.";
    return e.message;
  }
  if (e instanceof DOMException && e.name === "AbortError") return "Cancelled.";
  return e instanceof Error ? e.message : String(e);
}

export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: () => void }) {
  const [mode, setMode] = useState<Mode>("signin");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [deviceName, setDeviceName] = useState(defaultDeviceName());
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [approval, setApproval] = useState<Approval | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (mode === "signup" && password !== confirm) {
      setError("The two passwords differ.");
      return;
    }
    try {
      if (mode === "approval") {
        setBusy("Asking your devices…");
        const a = await requestApproval(email, deviceName);
        setApproval(a);
        setBusy(null);
        await a.wait;
      } else {
        setBusy("Deriving your keys on this device…");
        if (mode === "signup") await signUp(email, password, deviceName);
        else await signIn(email, password, deviceName);
      }
      onSignedIn();
    } catch (err) {
      setError(explain(err));
      setApproval(null);
    } finally {
      setBusy(null);
    }
  };

  const tab = (m: Mode, label: string) => (
    <button
      type="button"
      role="tab"
      id={`tab-${m}`}
      aria-selected={mode === m}
      class={mode === m ? "tab active" : "tab"}
      onClick={() => {
        approval?.cancel();
        setApproval(null);
        setMode(m);
        setError(null);
      }}
    >
      {label}
    </button>
  );

  return (
    <main class="center">
      <form class="card signin" onSubmit={submit} aria-busy={busy !== null}>
        <h1>
          <img src="/icon.svg" alt="" width={32} height={32} /> udc
        </h1>
        <p class="muted">Your devices, one clipboard, files between them.</p>
        {notice && (
          <p class="notice" role="status">
            {notice}
          </p>
        )}
        <div role="tablist" class="tabs">
          {tab("signin", "Sign in")}
          {tab("signup", "New account")}
          {tab("approval", "Use a device")}
        </div>
        <fieldset class="plain" disabled={busy !== null || approval !== null}>
        <label>
          Email
          <input id="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        {mode !== "approval" && (
          <label>
            Password
            <input
              id="password"
              type="password"
              autoComplete={mode === "signup" ? "new-password" : "current-password"}
              required
              minLength={mode === "signup" ? 8 : undefined}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
        )}
        {mode === "signup" && (
          <label>
            Password again
            <input id="confirm" type="password" autoComplete="new-password" required value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
          </label>
        )}
        <label>
          This device's name
          <input id="device-name" required maxLength={64} value={deviceName} onInput={(e) => setDeviceName(e.currentTarget.value)} />
        </label>
        </fieldset>
        {approval ? (
          <div class="approval-wait" role="status">
            <p>
              On one of your signed-in devices, open udc and pick these words, or run <code>udc-agent approve</code> and check it shows
              them:
            </p>
            <p class="phrase" id="my-phrase">
              {approval.phrase}
            </p>
            <p class="muted">Waiting for approval (up to 2 minutes)…</p>
            <button
              type="button"
              onClick={() => {
                approval.cancel();
              }}
            >
              Cancel
            </button>
          </div>
        ) : (
          <button type="submit" class="primary" id="submit" disabled={busy !== null}>
            {busy ?? (mode === "signup" ? "Create account" : mode === "signin" ? "Sign in" : "Ask to sign in")}
          </button>
        )}
        {error && (
          <p class="error" role="alert" id="signin-error">
            {error}
          </p>
        )}
        {mode === "signup" && <p class="muted small">Your password never leaves this device: udc cannot reset it, and nobody at the server can read your clipboard.</p>}
      </form>
    </main>
  );
}
