import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { defaultDeviceName, passkeysSupported, recoverAccount, requestApproval, signIn, signInWithPasskey, signUp, type Approval } from "../session";
import { RecoveryWords } from "./Recovery";

type Mode = "signin" | "signup" | "approval" | "recover";

function explain(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === "invalid_credentials") return "That email and password do not match an account.";
    if (e.code === "email_taken") return "An account with this email exists already: sign in instead.";
    if (e.code === "rate_limited") return `Too many attempts. Try again in ${Math.ceil((e.retryAfter ?? 60) / 60)} min.`;
    if (e.code === "approval_denied") return "The sign-in was denied on your other device.";
    if (e.code === "approval_expired") return "Nobody approved in time. Try again.";
    if (e.code === "invalid_recovery_code") return "That email and recovery code do not match an account's. Check the words, or use your password.";
    if (e.code === "passkey_refused") return `That passkey did not sign you in: ${e.message}.`;
    return e.message;
  }
  if (e instanceof DOMException && e.name === "AbortError") return "Cancelled.";
  if (e instanceof DOMException && e.name === "NotAllowedError") return "No passkey was used: it was cancelled, or it timed out.";
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
  const [recoveryCode, setRecoveryCode] = useState("");
  // A new account's recovery code, shown before the account opens.
  const [words, setWords] = useState<string | null>(null);
  const [passkeyNotice, setNotice] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if ((mode === "signup" || mode === "recover") && password !== confirm) {
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
      } else if (mode === "signup") {
        setBusy("Deriving your keys on this device…");
        // The account opens once its recovery code has been shown.
        return setWords(await signUp(email, password, deviceName));
      } else {
        let fresh: string | null = null;
        if (mode === "recover") {
          setBusy("Setting your new password…");
          fresh = await recoverAccount(email, recoveryCode, password);
        }
        setBusy("Deriving your keys on this device…");
        await signIn(email, password, deviceName);
        // The code used is spent: the new one is shown before the account opens.
        if (fresh) return setWords(fresh);
      }
      onSignedIn();
    } catch (err) {
      setError(explain(err));
      setApproval(null);
    } finally {
      setBusy(null);
    }
  };

  /** A passkey that unlocks opens the account at once; one that cannot leads to approval, its email filled in. */
  const withPasskey = async () => {
    setError(null);
    setBusy("Waiting for your passkey…");
    try {
      const r = await signInWithPasskey(deviceName);
      if (r.unlocked) return onSignedIn();
      setEmail(r.email);
      setMode("approval");
      setError(null);
      setNotice(`Your passkey signed you in as ${r.email}, but it cannot unlock your data here. Ask one of your devices to approve this browser.`);
    } catch (err) {
      setError(explain(err));
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

  if (words) {
    return (
      <main class="center">
        <div class="card signin">
          <RecoveryWords words={words} onDone={onSignedIn} />
        </div>
      </main>
    );
  }

  const newPassword = mode === "signup" || mode === "recover";
  return (
    <main class="center">
      <form class="card signin" onSubmit={submit} aria-busy={busy !== null}>
        <h1>
          <img src="/icon.svg" alt="" width={32} height={32} /> udc
        </h1>
        <p class="muted">Your devices, one clipboard, files between them.</p>
        {(passkeyNotice ?? notice) && (
          <p class="notice" role="status" id="signin-notice">
            {passkeyNotice ?? notice}
          </p>
        )}
        <div role="tablist" class="tabs">
          {tab("signin", "Sign in")}
          {tab("signup", "New account")}
          {tab("approval", "Use a device")}
        </div>
        {mode === "recover" && <h2 class="mode-title">Set a new password with your recovery code</h2>}
        <fieldset class="plain" disabled={busy !== null || approval !== null}>
        <label>
          Email
          <input id="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        {mode === "recover" && (
          <label>
            Recovery code (twelve words)
            <textarea
              id="recovery-code"
              required
              rows={3}
              autoComplete="off"
              spellcheck={false}
              value={recoveryCode}
              onInput={(e) => setRecoveryCode(e.currentTarget.value)}
            />
          </label>
        )}
        {mode !== "approval" && (
          <label>
            {mode === "recover" ? "New password" : "Password"}
            <input
              id="password"
              type="password"
              autoComplete={newPassword ? "new-password" : "current-password"}
              required
              minLength={newPassword ? 8 : undefined}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
        )}
        {newPassword && (
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
            {busy ?? (mode === "signup" ? "Create account" : mode === "signin" ? "Sign in" : mode === "recover" ? "Set the new password" : "Ask to sign in")}
          </button>
        )}
        {mode === "signin" && passkeysSupported() && (
          <button type="button" id="passkey-signin" disabled={busy !== null} onClick={() => void withPasskey()}>
            Sign in with a passkey
          </button>
        )}
        {mode === "signin" && (
          <button type="button" class="text-button" id="forgot" onClick={() => (setMode("recover"), setError(null))}>
            Forgot your password? Use your recovery code
          </button>
        )}
        {mode === "recover" && (
          <p class="muted small">
            Your recovery code sets a new password and keeps your data; every device is signed out. Without it and without your password, your
            data cannot be opened by anyone.
          </p>
        )}
        {error && (
          <p class="error" role="alert" id="signin-error">
            {error}
          </p>
        )}
        {mode === "signup" && <p class="muted small">Your password never leaves this device: the server cannot reset it (the recovery code you get next can), and nobody at the server can read your clipboard.</p>}
      </form>
    </main>
  );
}
