// The Fleet page's data: the service's GET /api/fleet (every robot's state and practice),
// per-robot control calls, the live socket's frames tagged by robot, and the page's keys.
import { api, call, type Schemas } from "../api/client";
import { liveUrl, parseLive, type LiveFrame } from "./liveMessages";
import { parseUtc } from "./time";

export type FleetStatus = Schemas["FleetStatus"];
export type FleetRobot = Schemas["FleetRobotState"];
export type ControlStatus = Schemas["ControlStatus"];
export type QueuedRequest = Schemas["OperatorRequestPublic"];

/** What the page asks of the service; tests pass their own. */
export interface FleetClient {
  fleet(): Promise<FleetStatus>;
  estop(robot: string | null): Promise<ControlStatus>;
  takeover(robot: string | null, active: boolean): Promise<ControlStatus>;
  teleop(robot: string | null, action: number[]): Promise<ControlStatus>;
}

// A run of one robot has no name: the service then takes no `robot`.
const robotQuery = (robot: string | null) => ({ query: robot === null ? {} : { robot } });

export const serviceClient: FleetClient = {
  fleet: () => call(api.GET("/api/fleet")),
  estop: (robot) =>
    call(api.POST("/api/control/estop", { params: robotQuery(robot), body: { reason: "web UI (fleet page)" } })),
  takeover: (robot, active) =>
    call(api.POST("/api/control/takeover", { params: robotQuery(robot), body: { active } })),
  teleop: (robot, action) => call(api.POST("/api/control/teleop", { params: robotQuery(robot), body: { action } })),
};

/** A live frame with the robot it came from (server/live.py tags every message). */
export interface RobotFrame extends LiveFrame {
  robot: string | null;
}

const dec = new TextDecoder();

/** A binary live message -> its frame and robot; null for anything else. */
export function parseRobotFrame(data: string | ArrayBuffer): RobotFrame | null {
  if (typeof data === "string") return null; // telemetry: the page polls /api/fleet instead
  const msg = parseLive(data);
  if (!msg || msg.kind !== "live_frame") return null;
  const bytes = new Uint8Array(data);
  const header = JSON.parse(dec.decode(bytes.subarray(0, bytes.indexOf(0x0a)))) as { robot?: unknown };
  return { ...msg, robot: typeof header.robot === "string" ? header.robot : null };
}

/** Where frames come from: calls `onFrame` for each, returns a stop function. */
export type FrameSource = (onFrame: (frame: RobotFrame) => void) => () => void;

/** The live WebSocket, reconnecting with backoff until stopped. Thumbnails need few frames. */
export const liveFrames: FrameSource = (onFrame) => {
  let ws: WebSocket | null = null;
  let stopped = false;
  let retryMs = 500;
  const open = () => {
    ws = new WebSocket(`${liveUrl()}?fps=2`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => (retryMs = 500);
    ws.onmessage = (event) => {
      const frame = parseRobotFrame(event.data);
      if (frame) onFrame(frame);
    };
    ws.onclose = () => {
      if (!stopped) setTimeout(open, (retryMs = Math.min(retryMs * 2, 5000)));
    };
  };
  open();
  return () => {
    stopped = true;
    ws?.close();
  };
};

/** A page key -> what it does: 1-9 select that robot (1-based), T takes over the selected,
 * J jumps to the queue's first item (selects its robot and takes it over, or opens a
 * preference query on the Preferences page). */
export type FleetKey = { select: number } | { takeover: true } | { jump: true } | null;

export function fleetKey(key: string): FleetKey {
  if (/^[1-9]$/.test(key)) return { select: Number(key) - 1 };
  if (key === "t" || key === "T") return { takeover: true };
  if (key === "j" || key === "J") return { jump: true };
  return null;
}

/** Every robot's open requests and the run's pending preference queries as one queue, the
 * one to take first first: priority (0 stuck, 1 a takeover the learner asks for, 2 a
 * preference query), then age, as the service's GET /api/operator-requests/queue orders
 * them. The service's whole queue when it sends one (it also holds preference queries of
 * clips from several robots, which are on no card); else the cards' requests. */
export function requestQueue(status: FleetStatus | null): QueuedRequest[] {
  const all = status?.queue?.length ? [...status.queue] : (status?.robots ?? []).flatMap((r) => r.requests ?? []);
  const other = (q: QueuedRequest) => (isPreferenceQuery(q) ? 1 : 0);
  return all.sort(
    (a, b) => a.priority - b.priority || parseUtc(a.created_at) - parseUtc(b.created_at) || other(a) - other(b) || a.id - b.id,
  );
}

/** A queue item's key, unique across operator requests and preference queries (their ids
 * are separate sequences). */
export function queueKey(q: QueuedRequest): string {
  return q.key || `${q.source ?? "operator_request"}:${q.id}`;
}

/** A pending preference query in the queue: answered on the Preferences page. */
export function isPreferenceQuery(q: QueuedRequest): boolean {
  return q.source === "preference_query";
}

/** Where the Preferences page opens this preference query (it claims it for you). */
export function preferenceLink(q: QueuedRequest): string {
  return q.ui_link ?? `#/preferences?query=${q.id}`;
}

/** Who a queue item is about: its robot, "robots a + b" for a preference pair of clips
 * from several robots, or "robot" for a run of one. */
export function queueRobotText(q: QueuedRequest): string {
  if (q.robot) return q.robot;
  const robots = q.robots ?? [];
  return robots.length > 1 ? `robots ${robots.join(" + ")}` : (robots[0] ?? "robot");
}

/** What J does with the queue's first item: open a preference query on the Preferences
 * page, or select (and take over) the robot of a request; null: nothing to do. */
export type QueueTarget = { open: string } | { robot: number } | null;

export function queueTarget(status: FleetStatus | null, next: QueuedRequest | undefined): QueueTarget {
  if (!next) return null;
  if (isPreferenceQuery(next)) return { open: preferenceLink(next) };
  const i = robotIndex(status, next);
  return i < 0 ? null : { robot: i };
}

/** The index of the robot card a request belongs to (-1: no such robot on the page). */
export function robotIndex(status: FleetStatus | null, request: QueuedRequest): number {
  return (status?.robots ?? []).findIndex((r) => (r.name ?? null) === (request.robot ?? null));
}

const PRIORITY = ["stuck", "takeover", "preference"];

/** A request's priority class in words. */
export function priorityText(priority: number): string {
  return PRIORITY[priority] ?? `priority ${priority}`;
}

/** How long a request has waited: "12 s", "3 min", "1.5 h". */
export function waitText(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`;
}

export function perHour(v: number | null | undefined): string {
  return v === null || v === undefined ? "—" : v.toFixed(1);
}

/** The label a robot goes by on the page (a run of one robot has no fleet name). */
export function robotLabel(r: FleetRobot): string {
  return r.name ?? "robot";
}

/** Why a robot needs a look, or null: no telemetry, or telemetry too old. */
export function staleText(r: FleetRobot, staleAfterS: number): string | null {
  if (!r.stale) return null;
  if (r.telemetry_age_s === null || r.telemetry_age_s === undefined) {
    return "NO TELEMETRY yet: is its actor running?";
  }
  return `STALE: no telemetry for ${r.telemetry_age_s.toFixed(0)} s (over ${staleAfterS} s): its actor may be down; the state shown is old`;
}
