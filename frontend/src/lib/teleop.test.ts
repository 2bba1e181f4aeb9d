import { describe, expect, it } from "vitest";
import { expectedDim, forActor, gamepadAction, keyboardAction, teleopHelp } from "./teleop";

describe("teleop input", () => {
  it("turns held keys into a clipped action; gripper closes while Space is held", () => {
    expect(keyboardAction(new Set(["w", "d"]))).toEqual([1, -1, 0, 0, -1]);
    expect(keyboardAction(new Set(["w", "s"]))).toEqual([0, 0, 0, 0, -1]);
    expect(keyboardAction(new Set(["r", " "]))).toEqual([0, 0, 1, 0, 1]);
  });

  it("reads a standard gamepad with a dead zone; idle sticks give no action", () => {
    const idle = { axes: [0.05, -0.05, 0, 0], buttons: [] };
    expect(gamepadAction(idle)).toBeNull();
    const pushed = { axes: [0, -1, 0, 0.5], buttons: Array(8).fill({ value: 0 }) };
    expect(gamepadAction(pushed)).toEqual([1, 0, -0.5, 0, -1]);
  });

  it("drops yaw for 4-value actors and reads the size an actor asks for", () => {
    expect(forActor([0.1, 0.2, 0.3, 0.4, 1], 4)).toEqual([0.1, 0.2, 0.3, 1]);
    expect(forActor([0.1, 0.2, 0.3, 0.4, 1], 5)).toHaveLength(5);
    expect(expectedDim("teleop action has shape (4,), expected (5,): xyz[, yaw], gripper")).toBe(5);
    expect(expectedDim("not in takeover")).toBeNull();
  });
});

describe("teleopHelp", () => {
  it("lists yaw keys only for an actor whose actions have a yaw", () => {
    const keys = (dim: number) => teleopHelp(dim).map(([k]) => k);
    expect(keys(4)).not.toContain("Q / E");
    expect(keys(5)).toContain("Q / E");
    expect(teleopHelp(4).find(([k]) => k === "Gamepad")?.[1]).not.toContain("yaw");
  });
});
