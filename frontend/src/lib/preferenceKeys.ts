// Keyboard shortcuts of the preference page (issue 6): ← left, → right, ↓ equal,
// S skip, U undo, Space replay; [ and ] change the playback speed.
import { hasModifier, typingInField } from "./keys";

export type PreferenceAction =
  | "left"
  | "right"
  | "equal"
  | "skip"
  | "undo"
  | "replay"
  | "slower"
  | "faster";

const BY_KEY: Record<string, PreferenceAction> = {
  ArrowLeft: "left",
  ArrowRight: "right",
  ArrowDown: "equal",
  s: "skip",
  S: "skip",
  u: "undo",
  U: "undo",
  " ": "replay",
  "[": "slower",
  "]": "faster",
};

export const PREFERENCE_HELP: [string, string][] = [
  ["←", "left is better"],
  ["→", "right is better"],
  ["↓", "equally good"],
  ["S", "skip (cannot tell)"],
  ["U", "undo the last answer"],
  ["Space", "replay both clips"],
  ["[ ]", "slower / faster"],
];

/** The action a key press asks for, or null when it is not a shortcut here. */
export function preferenceAction(event: KeyboardEvent): PreferenceAction | null {
  if (event.repeat || hasModifier(event) || typingInField(event)) return null;
  return BY_KEY[event.key] ?? null;
}

export const SPEEDS = [0.25, 0.5, 1, 1.5, 2, 4] as const;

/** The next playback speed one step slower or faster, clamped to SPEEDS. */
export function stepSpeed(current: number, action: "slower" | "faster"): number {
  let i = SPEEDS.findIndex((s) => s >= current);
  if (i < 0) i = SPEEDS.length - 1;
  const next = action === "faster" ? i + 1 : i - 1;
  return SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, next))];
}
