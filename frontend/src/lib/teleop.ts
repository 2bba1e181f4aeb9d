// Teleoperation input: keyboard and the browser Gamepad API -> a policy-space action
// (dx, dy, dz, dyaw, gripper), every value in [-1, 1].

export type TeleopVector = [number, number, number, number, number];

/** Keys held -> axis directions. W/S forward/back (x), A/D left/right (y), R/F up/down (z),
 * Q/E yaw, Space closes the gripper while held. */
const KEY_AXES: Record<string, [number, number]> = {
  w: [0, 1],
  s: [0, -1],
  a: [1, 1],
  d: [1, -1],
  r: [2, 1],
  f: [2, -1],
  q: [3, 1],
  e: [3, -1],
};

export const TELEOP_KEYS = new Set([...Object.keys(KEY_AXES), " "]);

/** The keys an actor with `dim`-value actions listens to (4: no yaw, so no Q / E). */
export function teleopHelp(dim: number): [string, string][] {
  const yaw = dim !== 4;
  return [
    ["W / S", "forward / back"],
    ["A / D", "left / right"],
    ["R / F", "up / down"],
    ...(yaw ? ([["Q / E", "yaw"]] as [string, string][]) : []),
    ["Space (hold)", "close gripper"],
    ["Gamepad", `left stick xy, right stick ${yaw ? "z/yaw" : "z"}, RT gripper`],
  ];
}

export function keyboardAction(held: Set<string>, gain = 1): TeleopVector {
  const v: TeleopVector = [0, 0, 0, 0, -1];
  for (const key of held) {
    const axis = KEY_AXES[key];
    if (axis) v[axis[0]] += axis[1] * gain;
  }
  if (held.has(" ")) v[4] = 1;
  return v.map((x) => Math.max(-1, Math.min(1, x))) as TeleopVector;
}

const DEADZONE = 0.12;

function dz(x: number): number {
  return Math.abs(x) < DEADZONE ? 0 : x;
}

/** A standard-mapping gamepad -> action; null when no stick or trigger is in use. */
export function gamepadAction(pad: { axes: readonly number[]; buttons: readonly { value: number }[] }): TeleopVector | null {
  const axes = pad.axes;
  // Standard mapping: axes 0/1 left stick, 2/3 right stick (y axes point down).
  const v: TeleopVector = [
    dz(-(axes[1] ?? 0)),
    dz(-(axes[0] ?? 0)),
    dz(-(axes[3] ?? 0)),
    dz(-(axes[2] ?? 0)),
    (pad.buttons[7]?.value ?? 0) > 0.5 ? 1 : -1,
  ];
  const moving = v.slice(0, 4).some((x) => x !== 0) || v[4] > 0;
  return moving ? v : null;
}

/** Shape a 5-vector for an actor whose actions have `dim` values (4: no yaw). */
export function forActor(v: TeleopVector, dim: number): number[] {
  return dim === 4 ? [v[0], v[1], v[2], v[4]] : [...v];
}

/** The action length an actor's refusal asks for ("expected (5,)"), if it says. */
export function expectedDim(message: string): number | null {
  const m = /expected \((\d+),\)/.exec(message);
  return m ? Number(m[1]) : null;
}
