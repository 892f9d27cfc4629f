import { useEffect, useRef, useState } from "preact/hooks";
import { RemoteView, type InputEvent, type Link, type Mode, type Phase, type Quality, type ScreenInfo } from "../remote";
import { button, fraction, keyEvent, pictureRect, WheelSteps } from "../remote-input";
import type { Device } from "../types";

type Props = {
  target: Device;
  mode: Mode;
  link: Link;
  /** The page routes the account's events and signals to the session it is showing. */
  attach: (view: RemoteView | null) => void;
  onClose: () => void;
};

type KeyInput = Extract<InputEvent, { type: "key" }>;

const PHASE_WORDS = {
  asking: "Waiting for its owner to allow it…",
  connecting: "Connecting…",
};

/** The Keyboard Lock API (Chromium): keys the browser would take go to the page in full screen. */
function keyboard(): { lock?: () => Promise<void>; unlock?: () => void } | undefined {
  return (navigator as Navigator & { keyboard?: { lock?: () => Promise<void>; unlock?: () => void } }).keyboard;
}

function clock(secs: number): string {
  const s = Math.max(0, Math.floor(secs));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

function figures(q: Quality | null): string {
  if (!q) return "";
  const parts: string[] = [];
  if (q.rttMs !== null) parts.push(`${Math.round(q.rttMs)} ms`);
  // The agent sends a still screen once a second: 1 fps there is not a slow link.
  if (q.fps !== null) parts.push(q.fps < 2 ? "screen still" : `${Math.round(q.fps)} fps`);
  if (q.kbps !== null) parts.push(q.kbps >= 1000 ? `${(q.kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(q.kbps)} kbit/s`);
  if (q.width > 0) parts.push(`${q.width}×${q.height}`);
  return parts.join(" · ");
}

/** The id of the screen shown: "primary" is the one marked so, else the first (as the agent
 * picks it). */
function shownScreen(list: ScreenInfo[], shown: string): string {
  if (shown !== "primary") return shown;
  return (list.find((s) => s.primary) ?? list[0])?.id ?? "all";
}

/** The other device's screen, filling the window, with the session's bar above it. */
export function RemoteScreen({ target, mode, link, attach, onClose }: Props) {
  const [phase, setPhase] = useState<Phase>({ kind: "asking" });
  const [quality, setQuality] = useState<Quality | null>(null);
  const [left, setLeft] = useState<number | null>(null);
  const [screens, setScreens] = useState<{ list: ScreenInfo[]; shown: string }>({ list: [], shown: "primary" });
  const view = useRef<RemoteView | null>(null);
  const video = useRef<HTMLVideoElement>(null);
  const stage = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const v = new RemoteView(target.id, mode, link, {
      phase: setPhase,
      stream: (s) => {
        if (video.current) video.current.srcObject = s;
      },
      quality: setQuality,
      remaining: setLeft,
      screens: (list, shown) => setScreens({ list, shown }),
    });
    view.current = v;
    attach(v);
    void v.start();
    const tick = setInterval(() => setLeft((l) => (l === null ? l : Math.max(0, l - 1))), 1000);
    return () => {
      clearInterval(tick);
      keyboard()?.unlock?.();
      attach(null);
      void v.end();
    };
  }, []);

  // Input: only for a control session, only once live.
  useEffect(() => {
    const el = stage.current;
    const v = view.current;
    if (!el || !v || !v.controlling || phase.kind !== "live") return;
    el.focus();
    const wheel = new WheelSteps();
    const send = (events: InputEvent[]) => void v.send(events);
    const at = (e: MouseEvent) => {
      const vid = video.current;
      if (!vid) return null;
      const box = vid.getBoundingClientRect();
      return fraction(e.clientX - box.left, e.clientY - box.top, pictureRect(box.width, box.height, vid.videoWidth, vid.videoHeight));
    };
    // Chromium and Firefox already deliver pointer moves once per displayed frame: each is sent
    // as it comes (holding it for the next frame would add up to one frame of latency).
    const move = (e: PointerEvent) => {
      const p = at(e);
      if (p) send([{ type: "pointer_move", ...p }]);
    };
    const press = (down: boolean) => (e: PointerEvent) => {
      const b = button(e.button);
      const p = at(e);
      if (!b || (down && !p)) return;
      e.preventDefault();
      if (down) el.setPointerCapture(e.pointerId);
      el.focus();
      if (down) pressed.add(b);
      else if (!pressed.delete(b)) return;
      send([...(p ? [{ type: "pointer_move" as const, ...p }] : []), { type: "pointer_button", button: b, down }]);
    };
    const scroll = (e: WheelEvent) => {
      e.preventDefault();
      const w = wheel.add(e.deltaX, e.deltaY, e.deltaMode);
      if (w) send([w]);
    };
    // What each physical key (`KeyboardEvent.code`) pressed on the target, so its release lets go
    // of exactly that: Shift let go before the A, or AltGr before the Q of an "@", must not leave
    // anything held down there.
    const held = new Map<string, KeyInput>();
    const pressed = new Set<"left" | "middle" | "right">();
    const key = (down: boolean) => (e: KeyboardEvent) => {
      if (down) {
        const k = keyEvent(e, true);
        if (!k) return;
        // Tab, Backspace, F5, Ctrl+…: the target's, not this page's.
        e.preventDefault();
        if (!held.has(e.code)) held.set(e.code, k);
        send([k]);
        return;
      }
      const k = held.get(e.code);
      if (!k) return;
      e.preventDefault();
      held.delete(e.code);
      send([{ ...k, down: false }]);
    };
    // The page losing the keyboard (another window, the session ending) lets go of all of it.
    const letGo = () => {
      const ups: InputEvent[] = [...held.values()].map((k) => ({ ...k, down: false }));
      ups.push(...[...pressed].map((b) => ({ type: "pointer_button" as const, button: b, down: false })));
      held.clear();
      pressed.clear();
      if (ups.length > 0) send(ups);
    };
    const noMenu = (e: Event) => e.preventDefault();
    const down = press(true);
    const up = press(false);
    const keyDown = key(true);
    const keyUp = key(false);
    el.addEventListener("pointermove", move);
    el.addEventListener("pointerdown", down);
    el.addEventListener("pointerup", up);
    el.addEventListener("wheel", scroll, { passive: false });
    el.addEventListener("keydown", keyDown);
    el.addEventListener("keyup", keyUp);
    el.addEventListener("contextmenu", noMenu);
    el.addEventListener("blur", letGo);
    return () => {
      letGo();
      el.removeEventListener("blur", letGo);
      el.removeEventListener("pointermove", move);
      el.removeEventListener("pointerdown", down);
      el.removeEventListener("pointerup", up);
      el.removeEventListener("wheel", scroll);
      el.removeEventListener("keydown", keyDown);
      el.removeEventListener("keyup", keyUp);
      el.removeEventListener("contextmenu", noMenu);
    };
  }, [phase.kind]);

  const fullScreen = async () => {
    const root = stage.current?.parentElement;
    if (!root) return;
    if (document.fullscreenElement) {
      keyboard()?.unlock?.();
      await document.exitFullscreen();
      return;
    }
    await root.requestFullscreen();
    // In full screen Chromium lets a page keep keys it would otherwise take (Ctrl+W, Esc held).
    await keyboard()?.lock?.().catch(() => {});
  };

  const controlling = mode === "view_and_control";
  const ended = phase.kind === "ended";
  return (
    <div class="remote" id="remote" data-phase={phase.kind} role="dialog" aria-modal="true" aria-labelledby="remote-title">
      <div class="remote-bar">
        <strong id="remote-title">
          {controlling ? "Controlling" : "Viewing"} “{target.name}”
        </strong>
        {phase.kind === "live" && <span class="remote-status">Connected</span>}
        {phase.kind === "live" && (
          <span class="remote-figures muted" id="remote-figures">
            {/* Before the first figures come, the time left stands alone (no leading dot). */}
            {[figures(quality), left === null ? "" : `${clock(left)} left`].filter(Boolean).join(" · ")}
          </span>
        )}
        <span class="spacer" />
        {phase.kind === "live" && screens.list.length > 1 && (
          <select
            id="remote-screen"
            aria-label="Which screen to show"
            value={shownScreen(screens.list, screens.shown)}
            onChange={(e) => view.current?.chooseScreen((e.target as HTMLSelectElement).value)}
          >
            {screens.list.map((s) => (
              <option key={s.id} value={s.id}>
                {s.id} ({s.width}×{s.height}){s.primary ? ", main" : ""}
              </option>
            ))}
            <option value="all">All screens</option>
          </select>
        )}
        {phase.kind === "live" && (
          <>
            <button class="quiet" id="remote-fullscreen" onClick={() => void fullScreen()}>
              Full screen
            </button>
            <button class="danger" id="remote-end" onClick={() => void view.current?.end()}>
              End
            </button>
          </>
        )}
      </div>
      <div class={`remote-stage${controlling ? " controlling" : ""}`} ref={stage} tabIndex={controlling ? 0 : -1} aria-label={`The screen of ${target.name}`}>
        <video id="remote-video" ref={video} autoPlay playsInline muted />
        {!controlling && phase.kind === "live" && <p class="remote-note">View only: your pointer and keys stay here.</p>}
        {phase.kind !== "live" && (
          <div class="remote-message card" id="remote-status" role="status">
            <p>{ended ? phase.why : phase.kind === "asking" ? `Asked “${target.name}”. ${PHASE_WORDS.asking}` : PHASE_WORDS.connecting}</p>
            {phase.kind === "asking" && <p class="muted small">Its owner has a minute to answer, unless it lets this browser in without asking.</p>}
            {ended ? (
              <button class="primary" id="remote-close" onClick={onClose}>
                Back to your devices
              </button>
            ) : (
              <button id="remote-cancel" onClick={() => void view.current?.end()}>
                Cancel
              </button>
            )}
          </div>
        )}
      </div>
    </div>
  );
}
