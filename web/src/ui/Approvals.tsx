import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { accountKey } from "../session";
import type { PendingLogin } from "../types";
import { unb64, wasm } from "../wasm";
import { explain, type Account } from "./Home";

type Props = { account: Account; update: (f: (a: Account) => Account) => void };

/**
 * A device asking to sign in without its password. The words are computed here from the key
 * the account key will be sealed to, so a server that swapped in its own key shows other words
 * than the new device does, and approving is refused outright if even the server's words differ.
 */
export function Approvals({ account, update }: Props) {
  const request: PendingLogin | undefined = account.approvals[0];
  const dialog = useRef<HTMLDialogElement>(null);
  const [phrase, setPhrase] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    setError(null);
    setPhrase(null);
    if (!request) {
      if (dialog.current?.open) dialog.current.close();
      return;
    }
    if (!dialog.current?.open) dialog.current?.showModal();
    void wasm().then((udc) => {
      try {
        setPhrase(udc.fingerprintPhrase(unb64(request.public_key)));
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

  const matches = phrase !== null && request !== undefined && phrase === request.fingerprint_phrase;
  return (
    <dialog ref={dialog} class="card approval" aria-labelledby="approval-title" onCancel={(e) => e.preventDefault()}>
      {request && (
        <div>
          <h3 id="approval-title">Sign in “{request.device_name}”?</h3>
          <p>A device is asking to sign in to your account without its password.</p>
          <dl class="facts">
            <dt>From</dt>
            <dd>{request.client_ip ?? "unknown address"}</dd>
            <dt>Asked</dt>
            <dd>{new Date(request.created_at).toLocaleTimeString()}</dd>
          </dl>
          <p>Approve only if the new device shows exactly these words:</p>
          <p class="phrase" id="approval-phrase">
            {phrase ?? "…"}
          </p>
          {phrase !== null && !matches && (
            <p class="error" role="alert">
              The server's words for this request differ from the ones computed here: do not approve.
            </p>
          )}
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
          <div class="row end">
            <button id="approval-deny" disabled={busy} onClick={() => void answer(false)}>
              Deny
            </button>
            <button id="approval-approve" class="primary" disabled={busy || !matches} onClick={() => void answer(true)}>
              Approve
            </button>
          </div>
        </div>
      )}
    </dialog>
  );
}
