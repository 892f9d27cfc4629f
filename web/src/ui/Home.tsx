import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, forget, type Session } from "../api";
import { Realtime, type LinkState } from "../realtime";
import type { Link, Mode, RemoteView } from "../remote";
import { signOut } from "../session";
import { restoreUnfinished } from "../transfers";
import { opened, openedAll } from "../sealed-files";
import type { ClipItem, ClipPrefs, Device, FileInfo, HubEvent, PendingLogin } from "../types";
import { explain } from "./action";
import { Approvals } from "./Approvals";
import { Clipboard } from "./Clipboard";
import { Activity } from "./Activity";
import { ChangePassword } from "./ChangePassword";
import { DeleteAccount } from "./DeleteAccount";
import { PasskeysCard } from "./Passkeys";
import { RecoveryCard } from "./Recovery";
import { Devices } from "./Devices";
import { Files } from "./Files";
import { RemoteScreen } from "./Remote";
import { Sessions } from "./Sessions";

type View = "devices" | "files" | "clipboard" | "account";

export type Account = {
  session: Session;
  devices: Device[];
  files: FileInfo[];
  inbox: FileInfo[];
  clip: ClipItem[];
  prefs: ClipPrefs | null;
  approvals: PendingLogin[];
};

const VIEWS: [View, string][] = [
  ["devices", "Devices"],
  ["files", "Files"],
  ["clipboard", "Clipboard"],
  ["account", "Account"],
];

function viewFromHash(): View {
  const v = location.hash.replace(/^#\/?/, "");
  return VIEWS.some(([id]) => id === v) ? (v as View) : "devices";
}

function list<T>(value: unknown, what: string): T[] {
  if (!Array.isArray(value)) throw new ApiError(200, "bad_answer", `The udc server's list of ${what} could not be read. Try again in a moment.`);
  return value as T[];
}

function upsert<T extends { id: string }>(items: T[], item: T, atEnd = true): T[] {
  const i = items.findIndex((x) => x.id === item.id);
  if (i >= 0) return items.map((x) => (x.id === item.id ? item : x));
  return atEnd ? [...items, item] : [item, ...items];
}

export function Home({ session }: { session: Session }) {
  const me = session.deviceId;
  const [view, setView] = useState<View>(viewFromHash());
  const [link, setLink] = useState<LinkState>("connecting");
  const [problem, setProblem] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  // Bumped by a password change: the list of sessions reloads without the ones it ended.
  const [accountChanges, setAccountChanges] = useState(0);
  const [state, setState] = useState<Account>({ session, devices: [], files: [], inbox: [], clip: [], prefs: null, approvals: [] });
  const update = (f: (a: Account) => Account) => setState((a) => f(a));
  // A remote session shown over the page: it gets the account's events and the hub's signals.
  const [remote, setRemote] = useState<{ device: Device; mode: Mode } | null>(null);
  const remoteView = useRef<RemoteView | null>(null);
  const realtime = useRef<Realtime | null>(null);
  const hubLink: Link = { signal: (to, payload) => realtime.current?.signal(to, payload) ?? false };

  const load = async () => {
    // Each list on its own: one that fails leaves the others shown, and says so.
    const [d, f, sh, c, p, a] = await Promise.allSettled([
      api<{ devices: unknown }>("GET", "/devices").then((r) => list<Device>(r.devices, "devices")),
      api<{ files: unknown }>("GET", "/files?limit=100").then((r) => openedAll(list<FileInfo>(r.files, "files"))),
      api<{ files: unknown }>("GET", "/files/shared").then((r) => openedAll(list<FileInfo>(r.files, "files"))),
      api<{ items: unknown }>("GET", "/sync/clipboard/history").then((r) => list<ClipItem>(r.items, "clipboard items")),
      api<ClipPrefs>("GET", "/sync/clipboard/preferences"),
      api<{ requests: unknown }>("GET", "/auth/approval/pending").then((r) => list<PendingLogin>(r.requests, "sign-in requests")),
    ]);
    const ok = <T,>(r: PromiseSettledResult<T>, old: T): T => (r.status === "fulfilled" ? r.value : old);
    update((acc) => ({
      ...acc,
      devices: ok(d, acc.devices),
      files: ok(f, acc.files),
      inbox: ok(sh, acc.inbox),
      clip: ok(c, acc.clip),
      prefs: ok(p, acc.prefs),
      approvals: ok(a, acc.approvals),
    }));
    const failed = [d, f, sh, c, p, a].find((r): r is PromiseRejectedResult => r.status === "rejected");
    const signedOut = failed?.reason instanceof ApiError && failed.reason.status === 401;
    setProblem(failed && !signedOut ? explain(failed.reason) : null);
    setLoaded(true);
  };

  const onEvent = (e: HubEvent) => {
    remoteView.current?.event(e);
    const data = e.data ?? {};
    switch (e.event) {
      case "device.registered":
      case "device.updated": {
        const device = data.device as Device | undefined;
        if (device) update((a) => ({ ...a, devices: upsert(a.devices, { ...device, is_current: device.id === me }) }));
        break;
      }
      case "device.removed":
        if (data.device_id === me) {
          void forget("This browser was removed from your account on another device.");
          return;
        }
        update((a) => ({ ...a, devices: a.devices.filter((d) => d.id !== data.device_id) }));
        break;
      case "device.online":
      case "device.idle":
      case "device.offline": {
        const presence = e.event.slice("device.".length) as Device["presence"];
        const seen = typeof data.last_seen === "number" ? new Date(data.last_seen).toISOString() : null;
        update((a) => ({
          ...a,
          devices: a.devices.map((d) => (d.id === data.device_id ? { ...d, presence, last_seen_at: seen ?? d.last_seen_at } : d)),
        }));
        break;
      }
      case "file.available": {
        const sent = data.file as FileInfo | undefined;
        if (sent) void opened(sent).then((file) => update((a) => ({ ...a, inbox: upsert(a.inbox, file), files: upsert(a.files, file, false) })));
        break;
      }
      case "file.transfer.completed":
      case "file.restored": {
        const stored = data.file as FileInfo | undefined;
        if (stored) void opened(stored).then((file) => update((a) => ({ ...a, files: upsert(a.files, file, false) })));
        break;
      }
      case "file.deleted":
        update((a) => ({
          ...a,
          inbox: a.inbox.filter((f) => f.id !== data.file_id),
          files: a.files.map((f) => (f.id === data.file_id ? { ...f, deleted_at: new Date().toISOString() } : f)),
        }));
        break;
      case "clipboard.sync": {
        const item = data.item as ClipItem | undefined;
        if (item) update((a) => ({ ...a, clip: upsert(a.clip, item, false) }));
        break;
      }
      case "clipboard.cleared":
        void load();
        break;
      case "auth.approval.request": {
        const request = data.request as PendingLogin | undefined;
        if (request) update((a) => ({ ...a, approvals: upsert(a.approvals, request) }));
        break;
      }
      case "auth.approval.resolved":
        update((a) => ({ ...a, approvals: a.approvals.filter((r) => r.id !== data.request_id) }));
        break;
    }
  };

  useEffect(() => {
    const onHash = () => setView(viewFromHash());
    addEventListener("hashchange", onHash);
    void load().then(() => restoreUnfinished());
    const rt = new Realtime({
      event: onEvent,
      resync: () => void load(),
      state: setLink,
      signal: (from, payload) => remoteView.current?.signal(from, payload),
    });
    realtime.current = rt;
    void rt.start();
    return () => {
      rt.stop();
      removeEventListener("hashchange", onHash);
    };
  }, []);

  const linkText: Record<LinkState, string> = {
    connecting: "Connecting…",
    live: "Live",
    polling: "Polling",
    offline: "Offline: reconnecting",
  };

  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/devices">
          <img src="/icon.svg" alt="" width={24} height={24} /> udc
        </a>
        <span class={`link ${link}`} id="link-state" title={link === "polling" ? "This server holds no live connection: updates come every few seconds" : linkText[link]}>
          <span class="dot" aria-hidden="true" /> {linkText[link]}
        </span>
        <span class="account muted" title={session.email}>
          {session.email}
        </span>
        <button class="quiet" id="sign-out" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <nav class="tabs main-tabs" aria-label="Sections">
        {VIEWS.map(([id, label]) => (
          <a href={`#/${id}`} class={view === id ? "tab active" : "tab"} aria-current={view === id ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      <main class="content">
        {problem && (
          <div class="error banner" role="alert" id="problem">
            {problem}{" "}
            <button class="quiet" onClick={() => void load()}>
              Try again
            </button>
          </div>
        )}
        {!loaded ? (
          <p class="muted">Loading your devices…</p>
        ) : view === "devices" ? (
          <Devices account={state} update={update} link={link} onRemote={(device, mode) => setRemote({ device, mode })} />
        ) : view === "files" ? (
          <Files account={state} update={update} />
        ) : view === "clipboard" ? (
          <Clipboard account={state} update={update} />
        ) : (
          <>
            <Sessions key={accountChanges} />
            <Activity key={accountChanges} />
            <ChangePassword onChanged={() => setAccountChanges((n) => n + 1)} />
            <PasskeysCard onChanged={() => setAccountChanges((n) => n + 1)} />
            <RecoveryCard />
            <DeleteAccount email={session.email} />
          </>
        )}
      </main>
      <Approvals account={state} update={update} />
      {remote && (
        <RemoteScreen
          target={remote.device}
          mode={remote.mode}
          link={hubLink}
          attach={(v) => (remoteView.current = v)}
          onClose={() => setRemote(null)}
        />
      )}
    </div>
  );
}
