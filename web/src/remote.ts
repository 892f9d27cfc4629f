// Seeing and driving another device of the account (a remote session), as `udc-agent remote view`
// does: ask the target (POST /remote/session/request), wait for its owner's answer, offer a
// WebRTC connection through the hub's signals (the description at once, each ICE candidate as it
// is found: trickle ICE, as the agent does), receive its screen as H.264 video and send input on
// an ordered data channel. The heartbeat keeps the session; either side ending it, a denial or a
// lost link end it here and say why.
import { api, ApiError } from "./api";
import type { HubEvent } from "./types";

export type Mode = "view_only" | "view_and_control";

/** What the session is doing, for the page to show. */
export type Phase =
  | { kind: "asking" }
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "ended"; why: string };

/** The link's figures, refreshed each second while live. */
export type Quality = { rttMs: number | null; fps: number | null; kbps: number | null; width: number; height: number };

/** One of the target's screens, as its agent lists them on the data channel when it opens. */
export type ScreenInfo = { id: string; x: number; y: number; width: number; height: number; primary: boolean };

/** The session API's input events (`POST /remote/session/{id}/input`, the agent's data channel). */
export type InputEvent =
  | { type: "pointer_move"; x: number; y: number }
  | { type: "pointer_button"; button: "left" | "middle" | "right"; down: boolean }
  | { type: "wheel"; dx: number; dy: number }
  | { type: "key"; key: string; down: boolean; modifiers: string[] };

type Session = { id: string; state: string; end_reason: string | null; remaining_secs: number | null; heartbeat_every: number };

/** What the hub link offers a session: signals out (events and signals come in through
 * `RemoteView.event` and `RemoteView.signal`). */
export interface Link {
  signal(toDevice: string, payload: unknown): boolean;
}

export type Watchers = {
  phase: (p: Phase) => void;
  stream: (s: MediaStream) => void;
  quality: (q: Quality) => void;
  /** Seconds left, as the host counts them. */
  remaining: (secs: number | null) => void;
  /** The target's screens and which one it shows (an id, "primary" or "all"). */
  screens: (list: ScreenInfo[], shown: string) => void;
};

/** From the answer to a connection, as the agent waits. */
const CONNECT_WITHIN_MS = 15_000;
/** How long the link may stay interrupted (ICE "disconnected": the other side stopped answering)
 * before the session is called lost: a brief drop on the same network comes back within it (a
 * changed network does not: the page does not restart ICE), and a target that is gone is said
 * in seconds rather than after the host's heartbeat (15 s) or ICE's "failed" (about 30 s in
 * Chromium). */
const LOST_AFTER_MS = 5_000;
const LOST = "The connection to the other device was lost.";
/** While the owner decides, the session is also read now and then: an event missed is not a hang. */
const ASKING_POLL_MS = 3_000;

const ENDED: Record<string, string> = {
  requester_ended: "You ended the session.",
  target_ended: "The other device ended the session.",
  canceled: "The request was withdrawn.",
  max_duration: "The session reached its time limit.",
  heartbeat_lost: "The session ended: one side stopped answering.",
  not_answered: "Nobody answered on the other device within a minute.",
  denied: "The other device's owner said no.",
};

function endedWords(reason: string | null | undefined): string {
  return (reason && ENDED[reason]) ?? "The session ended.";
}

export class RemoteView {
  private id: string | null = null;
  private pc: RTCPeerConnection | null = null;
  private channel: RTCDataChannel | null = null;
  private timers: ReturnType<typeof setInterval>[] = [];
  /** The poll while the owner decides; stopped once there is an answer. */
  private asking: ReturnType<typeof setInterval> | null = null;
  /** Set before the first await of `connect`: the approval event and the poll may both call it. */
  private connecting = false;
  private connectBy: ReturnType<typeof setTimeout> | null = null;
  /** Set while the link is interrupted: when it runs out, the session is lost. */
  private lostBy: ReturnType<typeof setTimeout> | null = null;
  /** Events that came before the request's answer named the session. */
  private early: HubEvent[] = [];
  private over = false;
  /** The host was told the session is over (once is enough). */
  private told = false;
  private lastBytes: { at: number; bytes: number } | null = null;
  /** How often the host wants the heartbeat (its answer says). */
  private beatEveryMs = 5_000;
  private screens: ScreenInfo[] = [];
  /** The screen the target says it shows. */
  private shown = "primary";

  constructor(
    readonly target: string,
    readonly mode: Mode,
    private readonly link: Link,
    private readonly on: Watchers,
  ) {}

  async start() {
    this.on.phase({ kind: "asking" });
    try {
      const r = await api<{ session: Session }>("POST", "/remote/session/request", {
        target_device_id: this.target,
        mode: this.mode,
      });
      this.id = r.session.id;
      this.beatEveryMs = Math.max(1, r.session.heartbeat_every) * 1000;
    } catch (e) {
      this.finish(e instanceof ApiError ? e.message : String(e));
      return;
    }
    if (this.over) {
      // Closed while the request was on its way: withdraw it.
      void this.end();
      return;
    }
    this.asking = setInterval(() => void this.check(), ASKING_POLL_MS);
    for (const e of this.early.splice(0)) this.event(e);
  }

  /** An account event, as the page's link delivers it. */
  event(e: HubEvent) {
    if (this.over) return;
    if (this.id === null) {
      if (e.event.startsWith("remote.control.")) this.early.push(e);
      return;
    }
    const data = e.data ?? {};
    const session = data.session as Session | undefined;
    if (e.event === "remote.control.approved" && session?.id === this.id) {
      this.on.remaining(session.remaining_secs);
      void this.connect();
    }
    else if (e.event === "remote.control.denied" && session?.id === this.id) this.finish(endedWords("denied"));
    else if (e.event === "remote.control.session_end" && data.session_id === this.id) this.finish(endedWords(String(data.reason ?? "")));
  }

  /** A signal from another device: the target's answer to our offer, or one of its candidates. */
  signal(from: string, payload: unknown) {
    const p = payload as { remote_session?: string; description?: RTCSessionDescriptionInit; candidate?: RTCIceCandidateInit } | null;
    if (this.over || from !== this.target || !p || p.remote_session !== this.id || !this.pc) return;
    // The connection queues its operations: a candidate right behind the answer waits for it.
    if (p.description) this.pc.setRemoteDescription(p.description).catch((e) => this.fail(`The other device's answer could not be used: ${e}`));
    else if (p.candidate) this.pc.addIceCandidate(p.candidate).catch(() => {});
  }

  /** Sends input (a control session with its channel open); false when nothing was sent. */
  send(events: InputEvent[]): boolean {
    if (this.mode !== "view_and_control" || this.channel?.readyState !== "open" || events.length === 0) return false;
    this.channel.send(JSON.stringify(events));
    return true;
  }

  /** Shows another of the target's screens (an id it listed, or "all"); a view-only session may
   * choose too: it is not input. False when the channel is not open. */
  chooseScreen(id: string): boolean {
    if (this.channel?.readyState !== "open") return false;
    this.channel.send(JSON.stringify({ screen: id }));
    return true;
  }

  get controlling(): boolean {
    return this.mode === "view_and_control";
  }

  /** Ends the session here and on the target (a pending request is withdrawn). */
  async end() {
    this.finish(endedWords("requester_ended"));
    await this.tellHost();
  }

  /** Something failed here: the session ends on the host too, so the target stops at once. */
  private fail(why: string) {
    this.finish(why);
    void this.tellHost();
  }

  private async tellHost() {
    if (!this.id || this.told) return;
    this.told = true;
    await api("DELETE", `/remote/session/${this.id}`).catch(() => {});
  }

  private every(ms: number, f: () => void) {
    this.timers.push(setInterval(f, ms));
  }

  /** The session as the host has it: answered or over while no event came. */
  private async check() {
    if (this.over || this.connecting || !this.id) return;
    try {
      const { session } = await api<{ session: Session }>("GET", `/remote/session/${this.id}`);
      if (session.state === "active") {
        this.on.remaining(session.remaining_secs);
        void this.connect();
      }
      else if (session.state !== "pending") this.finish(endedWords(session.end_reason));
    } catch {
      // The next tick asks again; a signed-out page is told by api().
    }
  }

  private async connect() {
    if (this.over || this.connecting || !this.id) return;
    this.connecting = true;
    if (this.asking) clearInterval(this.asking);
    this.asking = null;
    try {
      await this.offer(this.id);
    } catch (e) {
      this.fail(`The connection could not be set up: ${e}`);
    }
  }

  private async offer(id: string) {
    this.on.phase({ kind: "connecting" });
    let iceServers: RTCIceServer[] = [];
    try {
      ({ ice_servers: iceServers } = await api<{ ice_servers: RTCIceServer[] }>("GET", "/remote/ice-servers"));
    } catch {
      // Host candidates alone connect two devices on one network.
    }
    if (this.over) return;
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    // Input needs order and every event: a reliable, ordered channel, as the agent opens it.
    this.channel = pc.createDataChannel("input");
    this.channel.onopen = () => this.live();
    this.channel.onmessage = (e) => this.fromTarget(e.data);
    pc.ontrack = (e) => this.on.stream(e.streams[0] ?? new MediaStream([e.track]));
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      if (state !== "disconnected" && this.lostBy) clearTimeout(this.lostBy);
      if (state !== "disconnected") this.lostBy = null;
      if (state === "connected") this.live();
      else if (state === "disconnected") this.lostBy ??= setTimeout(() => this.fail(LOST), LOST_AFTER_MS);
      else if (state === "failed") this.fail(LOST);
    };
    // Candidates found before the offer has gone wait for it: the target needs the offer first.
    let waiting: RTCIceCandidateInit[] | null = [];
    const trickle = (c: RTCIceCandidateInit) => this.link.signal(this.target, { remote_session: id, candidate: c });
    pc.onicecandidate = (e) => {
      if (!e.candidate) return;
      if (waiting) waiting.push(e.candidate.toJSON());
      else trickle(e.candidate.toJSON());
    };
    await pc.setLocalDescription(await pc.createOffer());
    if (this.over) return;
    const offer = pc.localDescription;
    if (!offer || !this.link.signal(this.target, { remote_session: id, description: { type: offer.type, sdp: offer.sdp } })) {
      this.fail("This page has no live link to your devices right now; try again in a moment.");
      return;
    }
    for (const c of waiting) trickle(c);
    waiting = null;
    this.connectBy = setTimeout(() => this.fail("No connection to the other device within 15 seconds."), CONNECT_WITHIN_MS);
    this.every(1_000, () => void this.measure());
    this.every(this.beatEveryMs, () => void this.beat());
  }

  /** What the target says on the channel: its screens, the one it shows, or a refusal. */
  private fromTarget(data: unknown) {
    if (typeof data !== "string") return;
    let m: { screens?: ScreenInfo[]; screen?: string; error?: string };
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (Array.isArray(m.screens)) this.screens = m.screens;
    if (typeof m.screen === "string") this.shown = m.screen;
    // A refused choice: the picker goes back to what is shown.
    if (typeof m.screen === "string" || typeof m.error === "string") this.on.screens(this.screens, this.shown);
  }

  private live() {
    if (this.over) return;
    if (this.connectBy) clearTimeout(this.connectBy);
    this.connectBy = null;
    this.on.phase({ kind: "live" });
  }

  private async beat() {
    if (this.over || !this.id) return;
    try {
      const { session } = await api<{ session: Session }>("POST", `/remote/session/${this.id}/heartbeat`);
      this.on.remaining(session.remaining_secs);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) {
        const { session } = await api<{ session: Session }>("GET", `/remote/session/${this.id}`).catch(() => ({ session: null }));
        this.finish(endedWords(session?.end_reason));
      }
    }
  }

  private async measure() {
    const pc = this.pc;
    if (!pc || this.over) return;
    // A connection closed while this was on its way has no statistics: nothing to show.
    const stats = await pc.getStats().catch(() => null);
    if (!stats || this.over) return;
    let rttMs: number | null = null;
    let fps: number | null = null;
    let kbps: number | null = null;
    let width = 0;
    let height = 0;
    stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && typeof s.currentRoundTripTime === "number") rttMs = s.currentRoundTripTime * 1000;
      if (s.type === "inbound-rtp" && s.kind === "video") {
        fps = typeof s.framesPerSecond === "number" ? s.framesPerSecond : 0;
        width = s.frameWidth ?? 0;
        height = s.frameHeight ?? 0;
        const now = performance.now();
        if (this.lastBytes) kbps = ((s.bytesReceived - this.lastBytes.bytes) * 8) / (now - this.lastBytes.at);
        this.lastBytes = { at: now, bytes: s.bytesReceived };
      }
    });
    this.on.quality({ rttMs, fps, kbps, width, height });
  }

  private finish(why: string) {
    if (this.over) return;
    this.over = true;
    for (const t of this.timers) clearInterval(t);
    if (this.asking) clearInterval(this.asking);
    if (this.connectBy) clearTimeout(this.connectBy);
    if (this.lostBy) clearTimeout(this.lostBy);
    this.channel?.close();
    this.pc?.close();
    this.on.phase({ kind: "ended", why });
  }
}
