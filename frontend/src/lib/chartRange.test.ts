import { describe, expect, it } from "vitest";
import { yRange } from "./chartRange";

describe("yRange", () => {
  it("draws an all-zero series on 0..1, not 0..100", () => {
    expect(yRange(0, 0)).toEqual([0, 1]);
  });
  it("centres another flat series on its value", () => {
    expect(yRange(-4, -4)).toEqual([-6, -2]);
    expect(yRange(2, 2)).toEqual([1, 3]);
  });
  it("pads a real range by 5% each side", () => {
    const [lo, hi] = yRange(0, 10);
    expect(lo).toBeCloseTo(-0.5);
    expect(hi).toBeCloseTo(10.5);
  });
  it("has a range when uPlot has no data", () => {
    expect(yRange(null, null)).toEqual([0, 1]);
  });
});
