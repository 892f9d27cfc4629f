import { useRef, useState } from "preact/hooks";
import { api } from "../api";
import { ago } from "../format";
import type { LinkState } from "../realtime";
import type { Mode } from "../remote";
import type { Device } from "../types";
import { useAction } from "./action";
import type { Account } from "./Home";

type Props = {
  account: Account;
  update: (f: (a: Account) => Account) => void;
  /** The page's link: remote sessions signal over a live one. */
  link: LinkState;
  onRemote: (device: Device, mode: Mode) => void;
};

const PLATFORM: Record<string, string> = {
  web: "Browser",
  linux: "Linux",
  windows: "Windows",
  macos: "macOS",
  ios: "iOS",
  android: "Android",
  other: "Device",
};

export function Devices({ account, update, link, onRemote }: Props) {
  const me = account.session.deviceId;
  const [error, act] = useAction();
  const [confirming, setConfirming] = useState<{ what: "remove" | "trust"; device: Device } | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  const mine = account.devices.find((d) => d.id === me);

  const replace = (device: Device) =>
    update((a) => ({ ...a, devices: a.devices.map((d) => (d.id === device.id ? { ...device, is_current: d.is_current } : d)) }));

  const setTrust = (target: Device, trust: boolean) =>
    act(async () => {
      if (trust) await api("POST", `/devices/${me}/trust`, { target_device_id: target.id });
      else await api("DELETE", `/devices/${me}/trust/${target.id}`);
      const fresh = await api<Device>("GET", `/devices/${me}`);
      replace(fresh);
      update((a) => ({
        ...a,
        devices: a.devices.map((d) =>
          d.id === target.id ? { ...d, trusted_by: trust ? [...new Set([...d.trusted_by, me])] : d.trusted_by.filter((x) => x !== me) } : d,
        ),
      }));
    });

  const remove = (device: Device) =>
    act(async () => {
      await api("DELETE", `/devices/${device.id}`);
      update((a) => ({ ...a, devices: a.devices.filter((d) => d.id !== device.id) }));
    });

  return (
    <section aria-labelledby="devices-title">
      <h2 id="devices-title">Your devices</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ul class="devices">
        {account.devices.map((d) => (
          <DeviceRow
            key={d.id}
            device={d}
            me={me}
            trustedByMe={mine?.trusts.includes(d.id) ?? false}
            trustsMe={d.trusts.includes(me)}
            link={link}
            onRemote={(mode) => onRemote(d, mode)}
            onRename={(name) =>
              act(async () => {
                replace(await api<Device>("PUT", `/devices/${d.id}`, { name }));
              })
            }
            onTrust={(t) => {
              if (!t) return void setTrust(d, false);
              setConfirming({ what: "trust", device: d });
              dialog.current?.showModal();
            }}
            onRemove={() => {
              setConfirming({ what: "remove", device: d });
              dialog.current?.showModal();
            }}
          />
        ))}
      </ul>
      <p class="muted small">
        A device trusted by another of yours can download the files that device sends it, approve new devices' sign-ins and manage your
        devices. Add a device: open this page there, or run{" "}
        <code>udc-agent login</code>.
      </p>
      <dialog ref={dialog} class="card" aria-labelledby="confirm-title" onClose={() => setConfirming(null)}>
        {confirming?.what === "remove" && (
          <form method="dialog">
            <h3 id="confirm-title">Remove “{confirming.device.name}”?</h3>
            <p>
              {confirming.device.id === me ? "This browser" : "It"} is signed out at once: its sessions end, it stops receiving your clipboard and
              files, and it can no longer read what it has not downloaded. To use it again, sign it in again. Files it sent stay in your account.
            </p>
            <div class="row end">
              <button value="cancel" autoFocus>
                Keep it
              </button>
              <button value="remove" class="danger" id="confirm-remove" onClick={() => void remove(confirming.device)}>
                Remove
              </button>
            </div>
          </form>
        )}
        {confirming?.what === "trust" && (
          <form method="dialog">
            <h3 id="confirm-title">Trust “{confirming.device.name}”?</h3>
            <p>
              A device this browser trusts can download the files you send it from here, and, being trusted, it can approve new devices' sign-ins
              (which hands them your account key) and rename or remove your other devices. Trust only a device that is yours.
            </p>
            <div class="row end">
              <button value="cancel" autoFocus>
                Cancel
              </button>
              <button value="trust" class="primary" id="confirm-trust" onClick={() => void setTrust(confirming.device, true)}>
                Trust it
              </button>
            </div>
          </form>
        )}
      </dialog>
    </section>
  );
}

type RowProps = {
  device: Device;
  me: string;
  trustedByMe: boolean;
  trustsMe: boolean;
  onRename: (name: string) => Promise<void>;
  onTrust: (trust: boolean) => void;
  onRemove: () => void;
  link: LinkState;
  onRemote: (mode: Mode) => void;
};

/** A device that serves remote sessions (`udc-agent remote serve` says so in its capabilities). */
const REMOTE = "remote_control";

/** Why View and Control cannot be used now, if they cannot. */
function remoteBlocked(d: Device, link: LinkState): string | null {
  if (d.presence === "offline") return "It is offline";
  if (link === "polling") return "This server keeps no live connection, which seeing a screen needs";
  if (link !== "live") return "Waiting for the live connection";
  return null;
}

function DeviceRow({ device: d, me, trustedByMe, trustsMe, onRename, onTrust, onRemove, link, onRemote }: RowProps) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(d.name);
  const self = d.id === me;
  const presence = d.presence === "online" ? "Online" : d.presence === "idle" ? "Idle" : "Offline";
  return (
    <li class="device" data-device-id={d.id} data-presence={d.presence}>
      <div class="device-main">
        <span class={`dot ${d.presence}`} aria-hidden="true" />
        {editing ? (
          <form
            class="rename row"
            onSubmit={(e) => {
              e.preventDefault();
              void onRename(name).then(() => setEditing(false));
            }}
          >
            <label class="sr-only" for={`name-${d.id}`}>
              New name
            </label>
            <input id={`name-${d.id}`} class="rename-input" value={name} maxLength={64} required onInput={(e) => setName(e.currentTarget.value)} />
            <button type="submit" class="primary">
              Save
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <div>
            <span class="device-name">{d.name}</span> {self && <span class="badge">this browser</span>}
            <div class="muted small">
              <span class="presence">{presence}</span> · {PLATFORM[d.platform] ?? d.platform}
              {d.os_version ? ` · ${d.os_version}` : ""} · {d.presence === "online" ? "active now" : `last seen ${ago(d.last_seen_at)}`}
            </div>
            {!self && (
              <div class="small trust">
                {trustedByMe ? "You trust it" : "You do not trust it"} · {trustsMe ? "it trusts this browser" : "it does not trust this browser"}
              </div>
            )}
            {!self && d.capabilities.includes(REMOTE) && !trustsMe && (
              <div class="small muted">Its screen can be seen from here once it trusts this browser.</div>
            )}
          </div>
        )}
      </div>
      {!editing && (
        <div class="actions">
          {!self && trustsMe && d.capabilities.includes(REMOTE) && (
            <>
              <button
                class="view-button"
                disabled={remoteBlocked(d, link) !== null}
                title={remoteBlocked(d, link) ?? "See its screen"}
                onClick={() => onRemote("view_only")}
                aria-label={`View ${d.name}`}
              >
                View
              </button>
              <button
                class="control-button"
                disabled={remoteBlocked(d, link) !== null}
                title={remoteBlocked(d, link) ?? "See and use its screen"}
                onClick={() => onRemote("view_and_control")}
                aria-label={`Control ${d.name}`}
              >
                Control
              </button>
            </>
          )}
          <button
            class="quiet rename-button"
            onClick={() => {
              setName(d.name);
              setEditing(true);
            }}
            aria-label={`Rename ${d.name}`}
          >
            Rename
          </button>
          {!self && (
            <button class="quiet trust-button" aria-pressed={trustedByMe} onClick={() => onTrust(!trustedByMe)} aria-label={`${trustedByMe ? "Stop trusting" : "Trust"} ${d.name}`}>
              {trustedByMe ? "Untrust" : "Trust"}
            </button>
          )}
          <button class="quiet danger remove-button" onClick={onRemove} aria-label={`Remove ${d.name}`}>
            Remove
          </button>
        </div>
      )}
    </li>
  );
}
