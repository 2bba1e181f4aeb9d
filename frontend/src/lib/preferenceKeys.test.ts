import { describe, expect, it } from "vitest";
import { preferenceAction, stepSpeed } from "./preferenceKeys";

const key = (k: string, init: KeyboardEventInit = {}) => new KeyboardEvent("keydown", { key: k, ...init });

describe("preference shortcuts", () => {
  it("maps the issue's keys to answers and commands", () => {
    expect(preferenceAction(key("ArrowLeft"))).toBe("left");
    expect(preferenceAction(key("ArrowRight"))).toBe("right");
    expect(preferenceAction(key("ArrowDown"))).toBe("equal");
    expect(preferenceAction(key("s"))).toBe("skip");
    expect(preferenceAction(key("S"))).toBe("skip");
    expect(preferenceAction(key("u"))).toBe("undo");
    expect(preferenceAction(key(" "))).toBe("replay");
    expect(preferenceAction(key("]"))).toBe("faster");
  });

  it("ignores other keys, held-key repeats and modified keys", () => {
    expect(preferenceAction(key("ArrowUp"))).toBeNull();
    expect(preferenceAction(key("x"))).toBeNull();
    // A held arrow must not answer the next pair too.
    expect(preferenceAction(key("ArrowLeft", { repeat: true }))).toBeNull();
    expect(preferenceAction(key("s", { ctrlKey: true }))).toBeNull();
    expect(preferenceAction(key("u", { metaKey: true }))).toBeNull();
  });

  it("ignores keys typed into a field", () => {
    const select = document.createElement("select");
    document.body.append(select);
    let action: string | null = "unset";
    select.addEventListener("keydown", (e) => (action = preferenceAction(e)));
    select.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    expect(action).toBeNull();
  });

  it("steps the playback speed and clamps at the ends", () => {
    expect(stepSpeed(1, "faster")).toBe(1.5);
    expect(stepSpeed(1, "slower")).toBe(0.5);
    expect(stepSpeed(0.25, "slower")).toBe(0.25);
    expect(stepSpeed(4, "faster")).toBe(4);
  });
});
