import { describe, expect, it } from "vitest";
import { FAILURE_KEY, HoldLabeller, LABEL_KEY } from "./holdLabel";

const key = (k: string) => new KeyboardEvent("keydown", { key: k });
const up = (k: string) => new KeyboardEvent("keyup", { key: k });

describe("HoldLabeller for failure frames (F)", () => {
  it("collects the frames shown while F is held and ignores L", () => {
    const h = new HoldLabeller(new Set(), FAILURE_KEY);
    expect(h.keydown(key("l"), 1)).toBe(false);
    expect(h.keydown(key("F"), 2)).toBe(true);
    h.frame(3);
    expect(h.keyup(up("l"))).toEqual([]);
    expect(h.keyup(up("f"))).toEqual([2, 3]);
  });

  it("never labels a frame that the other class's labeller already labelled", () => {
    const labelled = new Set<number>();
    const success = new HoldLabeller(labelled, LABEL_KEY);
    const failure = new HoldLabeller(labelled, FAILURE_KEY);
    success.keydown(key("l"), 4);
    success.frame(5);
    expect(success.keyup(up("l"))).toEqual([4, 5]);
    failure.keydown(key("f"), 3);
    failure.frame(4);
    failure.frame(5);
    failure.frame(6);
    expect(failure.keyup(up("f"))).toEqual([3, 6]);
  });
});
