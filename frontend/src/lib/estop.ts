// The e-stop key binding. The key works on every page, even while typing in a field:
// stopping can never move the robot, so a stray press costs a release, while a key that
// sometimes does nothing is worse than none.

export const ESTOP_KEY = "Escape";
export const ESTOP_KEY_LABEL = "Esc";

/** Call `press` on every e-stop key press (held-key repeats ignored). Returns an unbind. */
export function bindEstopKey(target: EventTarget, press: () => void): () => void {
  const onKey = (event: Event) => {
    const key = event as KeyboardEvent;
    if (key.key !== ESTOP_KEY || key.repeat) return;
    key.preventDefault();
    key.stopPropagation();
    press();
  };
  // Capture phase: a page's own key handler cannot swallow the e-stop.
  target.addEventListener("keydown", onKey, { capture: true });
  return () => target.removeEventListener("keydown", onKey, { capture: true });
}
