// The robot's open calls for help (reset-free training got stuck): how the banner reads and
// answers them. A client object, so the banner's tests pass their own.
import { api, call, type Schemas } from "../api/client";
import { parseUtc } from "./time";

export type OperatorRequest = Schemas["OperatorRequestPublic"];
export type Resolution = Schemas["OperatorRequestResolve"]["resolution"];

/** How often the open requests are fetched: a waiting robot is idle robot time. */
export const REQUESTS_POLL_MS = 3000;

export interface RequestsClient {
  listOpen(): Promise<OperatorRequest[]>;
  resolve(id: number, resolution: Resolution): Promise<OperatorRequest>;
  dismiss(id: number): Promise<OperatorRequest>;
}

export const apiRequests: RequestsClient = {
  listOpen: () => call(api.GET("/api/operator-requests", { params: { query: { status: "open" } } })),
  resolve: (id, resolution) =>
    call(api.POST("/api/operator-requests/{request_id}/resolve", { params: { path: { request_id: id } }, body: { resolution } })),
  dismiss: (id) => call(api.POST("/api/operator-requests/{request_id}/dismiss", { params: { path: { request_id: id } } })),
};

const KINDS: Record<string, string> = {
  no_progress: "no progress",
  workspace_limit: "stuck at a workspace limit",
  repeated_failures: "repeated failures",
};

/** The kind in words (an unknown kind is shown as it is). */
export function kindText(kind: string): string {
  return KINDS[kind] ?? kind.replaceAll("_", " ");
}

/** "just now", "3 min ago", "2 h ago": how long the robot has been waiting. */
export function waitingFor(createdAt: string, now: number = Date.now()): string {
  const s = Math.max(0, (now - parseUtc(createdAt)) / 1000);
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}
