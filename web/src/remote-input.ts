// What the viewer's pointer, wheel and keys become as the session's input events: positions as
// fractions of the picture actually shown (the video keeps its aspect ratio, so a window of
// another shape has bars the pointer can be over), keys by the character or key the browser
// names (`KeyboardEvent.key`), so what the viewer's keyboard layout types is what the target
// types, where the target's layout has that character.
import type { InputEvent } from "./remote";

export type Rect = { x: number; y: number; w: number; h: number };

/** Where a `vw`×`vh` picture sits in a `bw`×`bh` box when it fits whole (`object-fit: contain`). */
export function pictureRect(bw: number, bh: number, vw: number, vh: number): Rect {
  if (vw <= 0 || vh <= 0 || bw <= 0 || bh <= 0) return { x: 0, y: 0, w: bw, h: bh };
  const scale = Math.min(bw / vw, bh / vh);
  const w = vw * scale;
  const h = vh * scale;
  return { x: (bw - w) / 2, y: (bh - h) / 2, w, h };
}

/** A point in the box as fractions of the picture; null over the bars. */
export function fraction(px: number, py: number, r: Rect): { x: number; y: number } | null {
  const x = (px - r.x) / r.w;
  const y = (py - r.y) / r.h;
  if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) return null;
  return { x, y };
}

export function button(b: number): "left" | "middle" | "right" | null {
  return b === 0 ? "left" : b === 1 ? "middle" : b === 2 ? "right" : null;
}

/** Keys that only modify others: they travel as a key's `modifiers`, not on their own. */
const MODIFIER_KEYS = new Set(["Shift", "Control", "Alt", "AltGraph", "Meta", "OS", "Hyper", "Super", "Fn", "CapsLock", "NumLock", "ScrollLock"]);
/** Named keys the target replays (the agent's key names, as browsers spell them). */
const NAMED_KEYS = new Set([
  "Enter", "Backspace", "Tab", "Escape", "Delete", "Insert", "Home", "End", "PageUp", "PageDown",
  "ArrowLeft", "ArrowUp", "ArrowRight", "ArrowDown",
  "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12",
]);

/**
 * A key event as the target replays it, or null for what is not sent: modifiers alone, dead keys
 * and keys the target has no name for. A character comes as the viewer's layout made it ("A",
 * "!", "é"): the target finds the key that types it and adds Shift itself, so Shift is not sent
 * with characters; Ctrl, Alt and Meta are (Ctrl+C), unless AltGr made the character (then the
 * character is all there is to send).
 */
export function keyEvent(
  e: Pick<KeyboardEvent, "key" | "shiftKey" | "ctrlKey" | "altKey" | "metaKey" | "getModifierState">,
  down: boolean,
): Extract<InputEvent, { type: "key" }> | null {
  const { key } = e;
  if (MODIFIER_KEYS.has(key) || key === "Dead" || key === "Unidentified" || key === "Process") return null;
  const character = [...key].length === 1;
  if (!character && !NAMED_KEYS.has(key)) return null;
  const modifiers: string[] = [];
  const altGraph = e.getModifierState("AltGraph");
  if (!altGraph) {
    if (e.ctrlKey) modifiers.push("ctrl");
    if (e.altKey) modifiers.push("alt");
    if (e.metaKey) modifiers.push("meta");
  }
  // Shift+Tab, Shift+Arrow: a named key keeps its Shift; a character already has it.
  if (!character && e.shiftKey) modifiers.push("shift");
  return { type: "key", key, down, modifiers };
}

/** Wheel deltas to the target's scroll steps (one per notch), keeping what is left over. */
export class WheelSteps {
  private dx = 0;
  private dy = 0;

  /** `mode`: 0 pixels, 1 lines, 2 pages (`WheelEvent.deltaMode`). */
  add(dx: number, dy: number, mode: number): InputEvent | null {
    // A notch is about 100 pixels or 3 lines in browsers.
    const per = mode === 0 ? 100 : mode === 1 ? 3 : 1;
    this.dx += dx / per;
    this.dy += dy / per;
    const sx = Math.trunc(this.dx);
    const sy = Math.trunc(this.dy);
    if (sx === 0 && sy === 0) return null;
    this.dx -= sx;
    this.dy -= sy;
    return { type: "wheel", dx: sx, dy: sy };
  }
}
