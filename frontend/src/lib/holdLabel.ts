// Frame labelling by holding a key while the episode plays: every frame shown while the key
// is down is labelled (L: success, F: failure). Pure state, so the rules are testable
// without video.
import { hasModifier, typingInField } from "./keys";

export type LabelClass = "success" | "failure";

export const LABEL_KEY = "l";
export const LABEL_KEY_LABEL = "L";
export const FAILURE_KEY = "f";
export const FAILURE_KEY_LABEL = "F";

/** The hold key of each class. */
export const HOLD_KEYS: Record<LabelClass, { key: string; label: string }> = {
  success: { key: LABEL_KEY, label: LABEL_KEY_LABEL },
  failure: { key: FAILURE_KEY, label: FAILURE_KEY_LABEL },
};

export class HoldLabeller {
  private holding = false;
  private frames = new Set<number>();

  /**
   * @param labelled frames that already carry a label of either class (they are not labelled
   *   again: a frame cannot be both a success and a failure)
   * @param key the key held (LABEL_KEY for success, FAILURE_KEY for failure)
   */
  constructor(
    private readonly labelled: Set<number> = new Set(),
    private readonly key: string = LABEL_KEY,
  ) {}

  get active(): boolean {
    return this.holding;
  }

  /** A keydown. Returns true when it started a hold (the caller marks `frame` at once). */
  keydown(event: KeyboardEvent, frame: number): boolean {
    if (event.key.toLowerCase() !== this.key || hasModifier(event) || typingInField(event)) {
      return false;
    }
    event.preventDefault();
    if (this.holding || event.repeat) return false;
    this.holding = true;
    this.frames = new Set();
    this.frame(frame);
    return true;
  }

  /** The video showed `frame`; labelled if the key is held. */
  frame(frame: number): void {
    if (this.holding && frame >= 0 && !this.labelled.has(frame)) this.frames.add(frame);
  }

  /** A keyup: ends the hold and returns the frames to label, in order. */
  keyup(event: KeyboardEvent): number[] {
    if (event.key.toLowerCase() !== this.key) return [];
    return this.release();
  }

  /** End the hold (key released, or the window lost focus and would miss the keyup). */
  release(): number[] {
    if (!this.holding) return [];
    this.holding = false;
    const out = [...this.frames].sort((a, b) => a - b);
    for (const f of out) this.labelled.add(f);
    this.frames = new Set();
    return out;
  }

  /** Frames collected so far in the current hold. */
  pending(): number[] {
    return [...this.frames].sort((a, b) => a - b);
  }
}
