import { describe, expect, it } from "vitest";
import { HoldLabeller } from "./holdLabel";

const key = (k: string, init: KeyboardEventInit = {}) => new KeyboardEvent("keydown", { key: k, ...init });
const up = (k: string) => new KeyboardEvent("keyup", { key: k });

describe("HoldLabeller", () => {
  it("labels every frame shown while L is held, in order, once", () => {
    const h = new HoldLabeller();
    expect(h.keydown(key("l"), 3)).toBe(true);
    h.frame(4);
    h.frame(4);
    h.frame(5);
    expect(h.keyup(up("l"))).toEqual([3, 4, 5]);
    expect(h.active).toBe(false);
    // Frames after the release are not labelled.
    h.frame(6);
    expect(h.pending()).toEqual([]);
  });

  it("ignores auto-repeat keydowns and does not restart the hold", () => {
    const h = new HoldLabeller();
    h.keydown(key("l"), 1);
    h.frame(2);
    expect(h.keydown(key("l", { repeat: true }), 7)).toBe(false);
    expect(h.keyup(up("L"))).toEqual([1, 2]);
  });

  it("skips frames that already carry a label, also across holds", () => {
    const h = new HoldLabeller(new Set([2]));
    h.keydown(key("l"), 1);
    h.frame(2);
    h.frame(3);
    expect(h.keyup(up("l"))).toEqual([1, 3]);
    h.keydown(key("l"), 3);
    h.frame(4);
    expect(h.keyup(up("l"))).toEqual([4]);
  });

  it("does nothing for other keys, modifiers, or typing in a field", () => {
    const h = new HoldLabeller();
    expect(h.keydown(key("k"), 1)).toBe(false);
    expect(h.keydown(key("l", { ctrlKey: true }), 1)).toBe(false);
    const input = document.createElement("input");
    document.body.append(input);
    const typed = new KeyboardEvent("keydown", { key: "l", bubbles: true });
    let started = true;
    input.addEventListener("keydown", (e) => (started = h.keydown(e, 1)));
    input.dispatchEvent(typed);
    expect(started).toBe(false);
    h.frame(2);
    expect(h.keyup(up("l"))).toEqual([]);
  });

  it("ends the hold when the window loses focus (the keyup would be missed)", () => {
    const h = new HoldLabeller();
    h.keydown(key("l"), 0);
    h.frame(1);
    expect(h.release()).toEqual([0, 1]);
    expect(h.active).toBe(false);
    expect(h.release()).toEqual([]);
  });
});
