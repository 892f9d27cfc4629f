import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { ago, bytes, duration } from "../format";
import * as transfers from "../transfers";
import { opened, openedAll } from "../sealed-files";
import type { FileInfo } from "../types";
import { useAction } from "./action";
import type { Account } from "./Home";

type Props = { account: Account; update: (f: (a: Account) => Account) => void };

function useTransfers() {
  const [list, setList] = useState(transfers.all());
  useEffect(() => {
    const unsubscribe = transfers.subscribe(() => setList(transfers.all()));
    // What changed between the first render and this subscription (a restored upload).
    setList(transfers.all());
    return unsubscribe;
  }, []);
  return list;
}

export function Files({ account, update }: Props) {
  const me = account.session.deviceId;
  const others = account.devices.filter((d) => d.id !== me);
  const [target, setTarget] = useState<string>(others[0]?.id ?? "");
  const [dragging, setDragging] = useState(false);
  const [error, act] = useAction();
  const [deleted, setDeleted] = useState<FileInfo[] | null>(null);
  const moving = useTransfers();
  const nameOf = (id: string) => account.devices.find((d) => d.id === id)?.name ?? "a removed device";

  const sendAll = (list: FileList | null) => {
    if (!list) return;
    const to = target ? nameOf(target) : undefined;
    for (const f of Array.from(list)) void transfers.send(f, target || null, to);
  };

  const download = (f: FileInfo) =>
    act(async () => {
      if (await transfers.receive(f)) update((a) => ({ ...a, inbox: a.inbox.filter((x) => x.id !== f.id) }));
    });

  const remove = (f: FileInfo) =>
    act(async () => {
      await api("DELETE", `/files/${f.id}`);
      update((a) => ({ ...a, files: a.files.filter((x) => x.id !== f.id), inbox: a.inbox.filter((x) => x.id !== f.id) }));
      if (deleted) setDeleted([{ ...f, deleted_at: new Date().toISOString() }, ...deleted]);
    });

  const restore = (f: FileInfo) =>
    act(async () => {
      const file = await opened(await api<FileInfo>("POST", `/files/${f.id}/restore`));
      update((a) => ({ ...a, files: [file, ...a.files.filter((x) => x.id !== f.id)] }));
      setDeleted((d) => d?.filter((x) => x.id !== f.id) ?? null);
    });

  const showDeleted = () =>
    act(async () => {
      const r = await api<{ files: FileInfo[] }>("GET", "/files?deleted=true&limit=100");
      setDeleted((await openedAll(r.files)).filter((f) => f.deleted_at));
    });

  return (
    <section aria-labelledby="files-title">
      <h2 id="files-title">Send files</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="row wrap">
        <label class="inline">
          To{" "}
          <select id="send-to" value={target} onChange={(e) => setTarget(e.currentTarget.value)}>
            {others.map((d) => (
              <option value={d.id}>{d.name}</option>
            ))}
            <option value="">No device (keep in All files)</option>
          </select>
        </label>
      </div>
      <label
        class={dragging ? "drop dragging" : "drop"}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          sendAll(e.dataTransfer?.files ?? null);
        }}
      >
        <input
          id="file-input"
          type="file"
          multiple
          class="sr-only"
          onChange={(e) => {
            sendAll(e.currentTarget.files);
            e.currentTarget.value = "";
          }}
        />
        <span>Drop files here, or <u>choose files</u></span>
      </label>
      <p class="muted small">Files are encrypted in this browser before they leave it: the server stores their size, never their names or contents.</p>

      {moving.length > 0 && (
        <ul class="transfers" aria-label="Transfers">
          {moving.map((t) => (
            <TransferRow t={t} />
          ))}
        </ul>
      )}

      <h2>Sent to this browser</h2>
      {account.inbox.length === 0 ? (
        <p class="muted">Nothing waiting. Files other devices send here appear at once.</p>
      ) : (
        <ul class="files inbox">
          {account.inbox.map((f) => (
            <li class="file" data-file-id={f.id}>
              <div>
                <span class="file-name">{f.name}</span>
                {f.sealed === null && <span class="plain-file" title="Sent before udc encrypted files: the server can read it."> not encrypted</span>}
                <div class="muted small">
                  {bytes(f.size)} · from {nameOf(f.sender_device_id)} · {ago(f.completed_at ?? f.created_at)}
                </div>
              </div>
              <button class="primary download-button" onClick={() => void download(f)}>
                Download
              </button>
            </li>
          ))}
        </ul>
      )}

      <h2>All files</h2>
      {account.files.every((f) => f.deleted_at) && <p class="muted">No files yet.</p>}
      <ul class="files all">
        {account.files
          .filter((f) => !f.deleted_at)
          .map((f) => (
            <li class="file" data-file-id={f.id}>
              <div>
                <span class="file-name">{f.name}</span>
                {f.sealed === null && <span class="plain-file" title="Sent before udc encrypted files: the server can read it."> not encrypted</span>}
                <div class="muted small">
                  {bytes(f.size)} · {f.state === "available" ? "" : "uploading · "}from {f.sender_device_id === me ? "this browser" : nameOf(f.sender_device_id)} ·{" "}
                  {ago(f.completed_at ?? f.created_at)}
                </div>
              </div>
              <div class="actions">
                {f.state === "available" && (
                  <button class="quiet" onClick={() => void transfers.receive(f, false)}>
                    Download
                  </button>
                )}
                <button class="quiet danger" onClick={() => void remove(f)} aria-label={`Delete ${f.name}`}>
                  Delete
                </button>
              </div>
            </li>
          ))}
      </ul>
      {deleted === null ? (
        <button class="quiet" onClick={() => void showDeleted()}>
          Show deleted files
        </button>
      ) : (
        <>
          <h3>Deleted (kept 30 days)</h3>
          {deleted.length === 0 && <p class="muted">None.</p>}
          <ul class="files deleted">
            {deleted.map((f) => (
              <li class="file">
                <div>
                  <span class="file-name">{f.name}</span>
                {f.sealed === null && <span class="plain-file" title="Sent before udc encrypted files: the server can read it."> not encrypted</span>}
                  <div class="muted small">
                    {bytes(f.size)} · restorable until {f.restorable_until ? new Date(f.restorable_until).toLocaleDateString() : "—"}
                  </div>
                </div>
                <button class="quiet" onClick={() => void restore(f)}>
                  Restore
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

const PHASE: Record<transfers.Phase, string> = {
  hashing: "Checking",
  uploading: "Sending",
  completing: "Finishing",
  downloading: "Downloading",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
  "needs-file": "Paused",
};

function TransferRow({ t }: { t: transfers.Transfer }) {
  const active = t.phase === "hashing" || t.phase === "uploading" || t.phase === "downloading" || t.phase === "completing";
  const left = t.speed > 0 ? (t.size - t.done) / t.speed : NaN;
  return (
    <li
      class={`transfer ${t.phase}`}
      data-phase={t.phase}
      data-file-id={t.fileId ?? ""}
      data-sha256={t.sha256 ?? ""}
      data-resumed-from={t.resumedFrom ?? ""}
      data-recorded={t.recorded ?? ""}
    >
      <div class="row between">
        <span class="file-name">
          {t.direction === "up" ? "↑" : "↓"} {t.name}
          {t.to ? <span class="muted"> to {t.to}</span> : null}
        </span>
        <span class="phase">{PHASE[t.phase]}</span>
      </div>
      <progress max={t.size || 1} value={t.phase === "done" ? t.size || 1 : t.done} aria-label={`${t.name} progress`} />
      <div class="row between small muted">
        <span>
          {bytes(t.done)} of {bytes(t.size)}
          {active && t.speed > 0 ? ` · ${bytes(t.speed)}/s · ${duration(left)} left` : ""}
          {t.resumedFrom ? ` · resumed: ${bytes(t.resumedFrom)} were already sent` : ""}
          {t.phase === "done" && t.direction === "down" ? " · matches the sender's SHA-256" : ""}
        </span>
        <span class="actions">
          {active && (
            <button class="quiet" onClick={() => void transfers.cancel(t.key)}>
              Cancel
            </button>
          )}
          {t.phase === "failed" && t.direction === "up" && (
            <button class="quiet" onClick={() => void transfers.resume(t.key)}>
              Retry
            </button>
          )}
          {t.phase === "needs-file" && (
            <button class="quiet" onClick={() => void transfers.cancel(t.key)}>
              Cancel
            </button>
          )}
          {t.phase === "needs-file" && (
            <label class="button quiet">
              Choose file
              <input
                type="file"
                class="sr-only resume-input"
                onChange={(e) => {
                  const f = e.currentTarget.files?.[0];
                  if (f) void transfers.resume(t.key, f);
                }}
              />
            </label>
          )}
          {t.saveUrl && (
            <button class="quiet" onClick={() => transfers.save(t.saveUrl!, t.name)}>
              Save again
            </button>
          )}
          {!active && t.phase !== "needs-file" && (
            <button class="quiet" onClick={() => transfers.dismiss(t.key)} aria-label={`Dismiss ${t.name}`}>
              ✕
            </button>
          )}
        </span>
      </div>
      {t.error && <p class={t.phase === "needs-file" ? "small muted" : "small error"}>{t.error}</p>}
    </li>
  );
}
