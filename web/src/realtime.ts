// The account's live events: a WebSocket to the hub (a one-use ticket each time), resumed from
// the last event this browser handled, reconnecting with jittered backoff. A host that holds no
// sockets (Spin) is polled at GET /events instead. Close code 4001 means access was revoked.
import { api, ApiError, current, forget } from "./api";
import { get, put } from "./store";
import type { HubEvent } from "./types";

export type LinkState = "connecting" | "live" | "polling" | "offline";

export type Handlers = {
  event: (e: HubEvent) => void;
  /** The hub no longer has what this browser missed: reload everything. */
  resync: () => void;
  state: (s: LinkState) => void;
  /** Another device's signal (a remote session's WebRTC description), relayed by the hub. */
  signal?: (fromDevice: string, payload: unknown) => void;
};

const PING_MS = 25_000;
const POLL_MS = 2_000;
/** Sockets that failed before the hub said `ready`, in a row, before falling back to polling. */
const SOCKET_TRIES = 3;

export class Realtime {
  private ws: WebSocket | null = null;
  private cursor: number | null = null;
  private attempt = 0;
  private failedSockets = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private ping: ReturnType<typeof setInterval> | null = null;
  private readonly cursorKey: string;

  constructor(private readonly on: Handlers) {
    this.cursorKey = `cursor:${current()?.deviceId ?? ""}`;
  }

  async start() {
    this.cursor = (await get<number>(this.cursorKey)) ?? null;
    if (this.stopped) return;
    document.addEventListener("visibilitychange", this.presence);
    void this.connect();
  }

  stop() {
    this.stopped = true;
    document.removeEventListener("visibilitychange", this.presence);
    if (this.timer) clearTimeout(this.timer);
    if (this.ping) clearInterval(this.ping);
    this.ws?.close(1000);
    this.ws = null;
  }

  private presence = () => {
    this.send({ type: "presence", state: document.visibilityState === "hidden" ? "idle" : "online" });
  };

  private send(frame: unknown): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Relays `payload` to another online device of the account; false while there is no socket. */
  signal(toDevice: string, payload: unknown): boolean {
    return this.send({ type: "signal", to_device: toDevice, payload });
  }

  private later(f: () => void, ms: number) {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(f, ms);
  }

  private backoff(): number {
    const cap = Math.min(500 * 2 ** this.attempt++, 30_000);
    return 250 + Math.random() * cap;
  }

  private async connect() {
    if (this.stopped) return;
    this.on.state("connecting");
    let ticket: string;
    try {
      ({ ticket } = await api<{ ticket: string }>("POST", "/realtime/ticket"));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // signed out: api() said so
      this.on.state("offline");
      this.later(() => void this.connect(), this.backoff());
      return;
    }
    // Stopped (signed out, or the page moved on) while the ticket was on its way.
    if (this.stopped) return;
    const url = new URL("/realtime", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = `ticket=${ticket}` + (this.cursor !== null ? `&resume_after=${this.cursor}` : "");
    const ws = new WebSocket(url);
    this.ws = ws;
    let ready = false;
    ws.onmessage = (m) => {
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(String(m.data));
      } catch {
        return;
      }
      if (frame.type === "event") {
        this.handle(frame as unknown as HubEvent);
        this.send({ type: "ack", seq: frame.seq });
      } else if (frame.type === "signal" && typeof frame.from_device === "string") {
        this.on.signal?.(frame.from_device, frame.payload);
      } else if (frame.type === "ready" || frame.type === "resync_required") {
        ready = true;
        this.attempt = 0;
        this.failedSockets = 0;
        if (frame.type === "resync_required") this.resync(Number(frame.last_seq));
        this.on.state("live");
        this.presence();
      }
    };
    ws.onopen = () => {
      this.ping = setInterval(() => this.send({ type: "ping" }), PING_MS);
    };
    ws.onclose = (c) => {
      if (this.ping) clearInterval(this.ping);
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      if (c.code === 4001) {
        void forget("This browser was signed out: its device was removed or its session ended.");
        return;
      }
      if (!ready && ++this.failedSockets >= SOCKET_TRIES) {
        this.poll();
        return;
      }
      this.on.state("offline");
      this.later(() => void this.connect(), this.backoff());
    };
  }

  private handle(e: HubEvent) {
    if (this.cursor !== null && e.seq <= this.cursor) return;
    this.cursor = e.seq;
    void put(this.cursorKey, e.seq);
    this.on.event(e);
  }

  private resync(lastSeq: number) {
    this.cursor = lastSeq;
    void put(this.cursorKey, lastSeq);
    this.on.resync();
  }

  /** Where sockets do not work: the same log, fetched every few seconds. */
  private poll = async () => {
    if (this.stopped || !current()) return;
    this.on.state("polling");
    try {
      for (;;) {
        const after = this.cursor ?? 0;
        const r = await api<{ events: HubEvent[]; last_seq: number; resync_required: boolean; more: boolean }>(
          "GET",
          `/events?after=${after}`,
        );
        if (this.cursor === null) {
          // The first poll starts from now: the page has just loaded the current state.
          this.cursor = r.last_seq;
          void put(this.cursorKey, r.last_seq);
          break;
        }
        if (r.resync_required) {
          this.resync(r.last_seq);
          continue;
        }
        for (const e of r.events) this.handle(e);
        if (!r.more) break;
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
    }
    this.later(() => void this.poll(), POLL_MS);
  };
}
