import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { accountKey } from "../session";
import type { PendingLogin } from "../types";
import { unb64, wasm } from "../wasm";
import { explain } from "./action";
import type { Account } from "./Home";

type Props = { account: Account; update: (f: (a: Account) => Account) => void };

/**
 * A device asking to sign in without its password. The words are computed here from the key
 * the account key will be sealed to, so a server that swapped in its own key shows other words
 * than the new device does; approving means picking the new device's words among decoys.
 */
export function Approvals({ account, update }: Props) {
  const request: PendingLogin | undefined = account.approvals[0];
  const dialog = useRef<HTMLDialogElement>(null);
  const [choices, setChoices] = useState<string[] | null>(null);
  const [phrase, setPhrase] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const me = account.session.deviceId;
  // Only a device another device trusts, or the account's first, may answer (the server checks).
  const oldest = [...account.devices].sort((a, b) => a.created_at.localeCompare(b.created_at))[0];
  const mayAnswer = account.devices.some((d) => d.id !== me && d.trusts.includes(me)) || oldest?.id === me;

  useEffect(() => {
    setError(null);
    setPhrase(null);
    setChoices(null);
    if (!request) {
      if (dialog.current?.open) dialog.current.close();
      return;
    }
    if (!dialog.current?.open) dialog.current?.showModal();
    void wasm().then((udc) => {
      try {
        const real = udc.fingerprintPhrase(unb64(request.public_key));
        // The person picks the words the new device shows among two decoys: approving takes
        // looking at both screens, not one click on a dialog anyone knowing the email can raise.
        const decoys = [0, 1].map(() => udc.fingerprintPhrase(crypto.getRandomValues(new Uint8Array(32))));
        const all = [real, ...decoys].sort(() => Math.random() - 0.5);
        setPhrase(real);
        setChoices(all);
      } catch {
        setError("This request's key is not valid.");
      }
    });
  }, [request?.id]);

  const answer = async (approve: boolean) => {
    if (!request) return;
    setBusy(true);
    setError(null);
    try {
      let sealed_key: string | null = null;
      if (approve) {
        const udc = await wasm();
        sealed_key = udc.sealAccountKey(request.public_key, accountKey());
      }
      await api("POST", "/auth/biometric/respond", { request_id: request.id, approved: approve, biometric_verified: false, sealed_key });
      update((a) => ({ ...a, approvals: a.approvals.filter((r) => r.id !== request.id) }));
    } catch (e) {
      setError(explain(e));
    } finally {
      setBusy(false);
    }
  };

  const pick = (words: string) => {
    if (words === phrase) void answer(true);
    else setError("Those are not the words of this request. If the new device shows none of these, press Deny.");
  };

  const dismiss = () => update((a) => ({ ...a, approvals: a.approvals.filter((r) => r.id !== request?.id) }));
  const serverAgrees = phrase !== null && request !== undefined && phrase === request.fingerprint_phrase;
  return (
    <dialog ref={dialog} class="card approval" aria-labelledby="approval-title" onCancel={(e) => e.preventDefault()}>
      {request && (
        <div>
          <h3 id="approval-title">Sign in “{request.device_name}”?</h3>
          <p>A device is asking to sign in to your account without its password. If you did not just start that, press Deny.</p>
          <dl class="facts">
            <dt>From</dt>
            <dd>{request.client_ip ?? "unknown address"}</dd>
            <dt>Asked</dt>
            <dd>{new Date(request.created_at).toLocaleTimeString()}</dd>
          </dl>
          {!mayAnswer ? (
            <>
              <p class="notice">This browser cannot answer sign-in requests until another of your devices trusts it. Answer on a trusted device.</p>
              <div class="row end">
                <button onClick={dismiss}>Close</button>
              </div>
            </>
          ) : (
            <>
              <p id="approval-pick-label">To approve, pick the words the new device shows:</p>
              {phrase !== null && !serverAgrees && (
                <p class="error" role="alert">
                  The server's words for this request differ from the ones computed here: deny it.
                </p>
              )}
              <div class="choices" role="group" aria-labelledby="approval-pick-label">
                {choices?.map((words) => (
                  <button class="phrase choice" disabled={busy || !serverAgrees} onClick={() => pick(words)}>
                    {words}
                  </button>
                ))}
              </div>
              {error && (
                <p class="error" role="alert">
                  {error}
                </p>
              )}
              <div class="row end">
                <button id="approval-deny" disabled={busy} onClick={() => void answer(false)}>
                  Deny
                </button>
              </div>
            </>
          )}
        </div>
      )}
    </dialog>
  );
}
