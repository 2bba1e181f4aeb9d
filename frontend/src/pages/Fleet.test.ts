import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { ControlStatus, FleetClient, FleetRobot, FleetStatus, FrameSource, QueuedRequest, RobotFrame } from "../lib/fleet";
import { fleetKey, parseRobotFrame, queueKey, queueRobotText, queueTarget, requestQueue, waitText } from "../lib/fleet";

// The header's e-stop goes through the real API client: its fetch is this stub (the
// client takes fetch when its module loads, so the stub must come first).
const fetched = vi.hoisted(() => {
  const urls: string[] = [];
  // Node's Request takes absolute URLs only; a browser resolves the client's "/api/..."
  // against the page.
  const NodeRequest = globalThis.Request;
  globalThis.Request = class extends NodeRequest {
    constructor(input: RequestInfo | URL, init?: RequestInit) {
      super(typeof input === "string" ? new URL(input, "http://localhost").href : input, init);
    }
  } as typeof Request;
  globalThis.fetch = (async (input: RequestInfo | URL) => {
    urls.push(input instanceof Request ? input.url : String(input));
    const body = { estop_latched: true, paused: false, takeover: false, episode: -1, step: -1, via: "actor", robots: [] };
    return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
  }) as typeof fetch;
  return urls;
});

beforeAll(() => {
  let n = 0;
  URL.createObjectURL ??= () => `blob:thumb-${++n}`;
  URL.revokeObjectURL ??= () => {};
});

afterEach(cleanup);

function robot(name: string | null, extra: Partial<FleetRobot> = {}): FleetRobot {
  return {
    name, state: "running", stale: false, telemetry_age_s: 0.2, estop: false, paused: false, takeover: false,
    episode: 3, step: 12, success: false, success_prob: 0.1, weights_version: 7, learner_alive: true,
    waiting_for_operator: false, cameras: ["front", "wrist"], episodes: 4, success_rate: 0.75,
    intervention_episodes: 1, robot_hours: 0.5, interventions_per_robot_hour: 2, ...extra,
  };
}

function fleet(robots: FleetRobot[], extra: Partial<FleetStatus> = {}): FleetStatus {
  return { fleet: true, run_id: 5, run_name: "pick", stale_after_s: 5, open_requests: 0, robots, ...extra };
}

let nextId = 1;
function request(robot: string | null, kind: string, priority: number, createdAt: string, waited_s: number): QueuedRequest {
  const id = nextId++;
  return {
    id, source: "operator_request", key: `operator_request:${id}`, run_id: 5, robot, robots: robot ? [robot] : [],
    kind, priority, reason: `${kind} during forward`, status: "open", resolution: null, created_at: createdAt,
    resolved_at: null, user_id: null, waited_s, ui_link: null,
  };
}

/** A pending preference query as the service queues it (its id is the query's own). */
function prefQuery(id: number, robots: string[], createdAt: string, waited_s: number): QueuedRequest {
  return {
    id, source: "preference_query", key: `preference_query:${id}`, run_id: 5,
    robot: robots.length === 1 ? robots[0] : null, robots, kind: "preference", priority: 2,
    reason: "which clip is better: episode 3 or episode 4", status: "open", resolution: null, created_at: createdAt,
    resolved_at: null, user_id: null, waited_s, ui_link: `#/preferences?query=${id}`,
  };
}

const ok = (extra: Partial<ControlStatus> = {}): ControlStatus =>
  ({ estop_latched: false, paused: false, takeover: false, episode: 3, step: 12, via: "actor", robots: [], ...extra }) as ControlStatus;

function client(status: FleetStatus | (() => Promise<FleetStatus>)) {
  return {
    fleet: vi.fn<FleetClient["fleet"]>(typeof status === "function" ? status : async () => status),
    estop: vi.fn<FleetClient["estop"]>(async () => ok({ estop_latched: true })),
    takeover: vi.fn<FleetClient["takeover"]>(async (_robot, active) => ok({ takeover: active })),
    teleop: vi.fn<FleetClient["teleop"]>(async () => ok({ takeover: true })),
  };
}

/** A frame source the test pushes frames into. */
function frames(): FrameSource & { push: (f: Partial<RobotFrame>) => void; stopped: boolean } {
  let sink: ((f: RobotFrame) => void) | null = null;
  const source = ((onFrame: (f: RobotFrame) => void) => {
    sink = onFrame;
    return () => {
      source.stopped = true;
    };
  }) as unknown as FrameSource & { push: (f: Partial<RobotFrame>) => void; stopped: boolean };
  source.stopped = false;
  source.push = (f) =>
    sink?.({ kind: "live_frame", robot: null, camera: "front", width: 64, height: 48, episode: 3, step: 12,
      jpeg: new Blob([new Uint8Array([0xff, 0xd8])], { type: "image/jpeg" }), ...f });
  return source;
}

async function renderPage(c: FleetClient, source: FrameSource = frames()) {
  const { default: Fleet } = await import("./Fleet.svelte");
  render(Fleet, { props: { client: c, frames: source, pollMs: 60_000 } });
}

const cards = () => screen.getAllByTestId("robot-card");
const card = (name: string) => cards().find((c) => c.dataset.robot === name)!;
const text = (el: HTMLElement, id: string) => el.querySelector(`[data-testid="${id}"]`)?.textContent?.trim();

describe("Fleet page", () => {
  it("shows one card per robot with its thumbnail, numbers and a stale warning", async () => {
    const source = frames();
    const c = client(fleet([
      robot("left"),
      robot("right", { state: "estop", estop: true, stale: true, telemetry_age_s: 9.4, weights_version: null,
        success_rate: null, episodes: 0, interventions_per_robot_hour: null, learner_alive: false }),
    ]));
    await renderPage(c, source);
    await waitFor(() => expect(cards().length).toBe(2));
    expect(text(card("left"), "state")).toBe("running");
    expect(text(card("left"), "episode")).toBe("3 / 12");
    expect(text(card("left"), "success-rate")).toBe("75% of 4");
    expect(text(card("left"), "interventions")).toBe("2.0");
    expect(text(card("left"), "weights")).toBe("v7");
    expect(card("left").querySelector('[data-testid="stale"]')).toBeNull();
    expect(text(card("right"), "state")).toBe("estop");
    expect(text(card("right"), "stale")).toContain("no telemetry for 9 s");
    expect(text(card("right"), "success-rate")).toBe("—");
    expect(text(card("right"), "interventions")).toBe("—");
    expect(text(card("right"), "weights")).toContain("none yet");
    expect(text(card("right"), "weights")).toContain("learner silent");
    expect(screen.getByTestId("run").textContent).toContain("Run #5 (pick)");

    // Thumbnails: the newest frame of each robot's first camera, on its own card.
    expect(card("left").querySelector("img")).toBeNull();
    source.push({ robot: "left", camera: "wrist" });
    source.push({ robot: "left", camera: "front" });
    source.push({ robot: "left", camera: "wrist" }); // not the thumbnail's camera: ignored
    await waitFor(() => expect(card("left").querySelector("img")).not.toBeNull());
    expect(card("left").querySelector("img")!.getAttribute("alt")).toBe("left front camera");
    expect(card("right").querySelector("img")).toBeNull();
  });

  it("stops and takes over the robot whose button is pressed", async () => {
    const c = client(fleet([robot("left"), robot("right")]));
    await renderPage(c);
    await waitFor(() => expect(cards().length).toBe(2));
    await fireEvent.click(screen.getByRole("button", { name: "E-stop right" }));
    await waitFor(() => expect(c.estop).toHaveBeenCalledWith("right"));
    expect(c.estop).toHaveBeenCalledTimes(1);
    await waitFor(() => expect(text(card("right"), "note")).toBe("e-stop LATCHED"));

    const takeLeft = card("left").querySelector("button:not(.stop)") as HTMLButtonElement;
    await fireEvent.click(takeLeft);
    await waitFor(() => expect(c.takeover).toHaveBeenCalledWith("left", true));
    await waitFor(() => expect(takeLeft.textContent?.trim()).toBe("End takeover"));
    await fireEvent.click(takeLeft);
    await waitFor(() => expect(c.takeover).toHaveBeenLastCalledWith("left", false));
  });

  it("selects robots with 1-9, takes over the selected one with T and drives it with the teleop keys", async () => {
    const c = client(fleet([robot("left"), robot("right")]));
    await renderPage(c);
    await waitFor(() => expect(cards().length).toBe(2));
    expect(card("left").getAttribute("aria-selected")).toBe("true");
    await fireEvent.keyDown(window, { key: "2" });
    expect(card("right").getAttribute("aria-selected")).toBe("true");
    expect(card("left").getAttribute("aria-selected")).toBe("false");
    await fireEvent.keyDown(window, { key: "9" }); // no ninth robot: the selection stays
    expect(card("right").getAttribute("aria-selected")).toBe("true");

    await fireEvent.keyDown(window, { key: "t" });
    await waitFor(() => expect(c.takeover).toHaveBeenCalledWith("right", true));
    await waitFor(() => expect(text(card("right"), "taken-over")).toBe("TAKEOVER"));
    await fireEvent.keyDown(window, { key: "w" });
    await waitFor(() => expect(c.teleop).toHaveBeenCalledWith("right", [1, 0, 0, -1]));
    expect(c.teleop.mock.calls.every(([r]) => r === "right")).toBe(true);
    await fireEvent.keyUp(window, { key: "w" });

    // Keys typed into a field are text, not shortcuts.
    const input = document.createElement("input");
    document.body.append(input);
    await fireEvent.keyDown(input, { key: "1" });
    expect(card("right").getAttribute("aria-selected")).toBe("true");
    input.remove();
  });

  it("queues every robot's requests, most urgent then oldest first, and J takes over the first one's robot", async () => {
    const pref = request("left", "preference", 2, "2026-12-07T08:00:00+00:00", 600);
    const lateStuck = request("left", "workspace_limit", 0, "2026-12-07T08:09:00+00:00", 60);
    const earlyStuck = request("right", "no_progress", 0, "2026-12-07T08:08:00+00:00", 120);
    const asked = request("middle", "uncertain_takeover", 1, "2026-12-07T08:01:00+00:00", 540);
    const c = client(fleet([
      robot("left", { requests: [lateStuck, pref] }),
      robot("middle", { requests: [asked] }),
      robot("right", { state: "operator_request", waiting_for_operator: true, requests: [earlyStuck] }),
    ], { open_requests: 4 }));
    await renderPage(c);
    await waitFor(() => expect(screen.getAllByTestId("queued-request").length).toBe(4));
    const rows = screen.getAllByTestId("queued-request");
    expect(rows.map((r) => r.dataset.robot)).toEqual(["right", "left", "middle", "left"]);
    expect(rows[0].textContent).toContain("stuck");
    expect(rows[0].textContent).toContain("no progress");
    expect(text(rows[0], "waited")).toBe("waiting 2 min");
    expect(rows[2].textContent).toContain("takeover");
    expect(rows[3].textContent).toContain("preference");
    // Each card shows its own requests.
    expect(card("left").querySelectorAll('[data-testid="card-request"]').length).toBe(2);
    expect(text(card("right"), "card-request")).toContain("waiting 2 min");

    // J: the first request's robot (right, the oldest stuck one) is selected and taken over.
    expect(card("left").getAttribute("aria-selected")).toBe("true");
    await fireEvent.keyDown(window, { key: "j" });
    expect(card("right").getAttribute("aria-selected")).toBe("true");
    await waitFor(() => expect(c.takeover).toHaveBeenCalledWith("right", true));
    await waitFor(() => expect(text(card("right"), "taken-over")).toBe("TAKEOVER"));
    // Again: it stays taken over (J never hands a robot back).
    await fireEvent.keyDown(window, { key: "J" });
    expect(c.takeover).toHaveBeenCalledTimes(1);
  });

  it("queues preference queries with the requests, and J on one opens it on the Preferences page", async () => {
    location.hash = "#/fleet";
    // Query 1 shares its id with an operator request: the keys keep them apart.
    const mixed = prefQuery(1, ["left", "right"], "2026-12-07T08:00:00+00:00", 600);
    const own = prefQuery(2, ["left"], "2026-12-07T08:02:00+00:00", 480);
    const asked = { ...request("right", "uncertain_takeover", 1, "2026-12-07T08:05:00+00:00", 300), id: 1, key: "operator_request:1" };
    const c = client(fleet([
      robot("left", { requests: [own] }),
      robot("right", { requests: [asked] }),
    ], { open_requests: 3, queue: [asked, mixed, own] }));
    await renderPage(c);
    await waitFor(() => expect(screen.getAllByTestId("queued-request").length).toBe(3));
    const rows = screen.getAllByTestId("queued-request");
    expect(rows.map((r) => r.dataset.key)).toEqual(["operator_request:1", "preference_query:1", "preference_query:2"]);
    expect(rows[1].textContent).toContain("robots left + right");
    expect(rows[1].textContent).toContain("preference query");
    expect(rows[1].querySelector('[data-testid="answer-link"]')!.getAttribute("href")).toBe("#/preferences?query=1");
    expect(text(card("left"), "card-request")).toContain("preference query");

    // The takeover the learner asks for comes first: J takes its robot over.
    await fireEvent.keyDown(window, { key: "j" });
    await waitFor(() => expect(c.takeover).toHaveBeenCalledWith("right", true));
    expect(location.hash).toBe("#/fleet");
    cleanup();

    // Once it is answered, the head is the mixed pair: J opens it there, taking no robot over.
    const next = client(fleet([robot("left", { requests: [own] }), robot("right")], { open_requests: 2, queue: [mixed, own] }));
    await renderPage(next);
    await waitFor(() => expect(screen.getAllByTestId("queued-request").length).toBe(2));
    await fireEvent.keyDown(window, { key: "j" });
    expect(location.hash).toBe("#/preferences?query=1");
    expect(next.takeover).not.toHaveBeenCalled();
  });

  it("shows no queue when nobody waits, and J does nothing", async () => {
    const c = client(fleet([robot("left"), robot("right")]));
    await renderPage(c);
    await waitFor(() => expect(cards().length).toBe(2));
    expect(screen.queryByTestId("queue")).toBeNull();
    await fireEvent.keyDown(window, { key: "j" });
    expect(c.takeover).not.toHaveBeenCalled();
    expect(card("left").getAttribute("aria-selected")).toBe("true");
  });

  it("says when there is no fleet or no running run, and shows errors with a retry", async () => {
    await renderPage(client(fleet([robot(null)], { fleet: false, run_id: null, run_name: null })));
    await waitFor(() => expect(screen.getByTestId("empty").textContent).toContain("no fleet"));
    expect(screen.getByTestId("no-run").textContent).toContain("No run is training now");
    cleanup();

    let calls = 0;
    const failing = client(async () => {
      calls += 1;
      if (calls === 1) throw new Error("the operator service is not reachable");
      return fleet([robot("left"), robot("right")]);
    });
    await renderPage(failing);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("not reachable"));
    await fireEvent.click(screen.getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(cards().length).toBe(2));
  });

  it("the header's large E-STOP stops every robot: it names none", async () => {
    const { default: EstopButton } = await import("../components/EstopButton.svelte");
    render(EstopButton);
    await fireEvent.keyDown(window, { key: "Escape" });
    await waitFor(() => expect(fetched.length).toBe(1));
    const url = new URL(fetched[0], "http://host");
    expect(url.pathname).toBe("/api/control/estop");
    expect(url.searchParams.has("robot")).toBe(false);
    await waitFor(() => expect(screen.getByTestId("estop-state").textContent).toContain("LATCHED"));
  });
});

describe("fleet helpers", () => {
  it("maps keys 1-9 and T", () => {
    expect(fleetKey("1")).toEqual({ select: 0 });
    expect(fleetKey("9")).toEqual({ select: 8 });
    expect(fleetKey("0")).toBeNull();
    expect(fleetKey("T")).toEqual({ takeover: true });
    expect(fleetKey("j")).toEqual({ jump: true });
    expect(fleetKey("w")).toBeNull();
  });

  it("orders the queue by priority, then age, and says how long a request waited", () => {
    const a = request("a", "preference", 2, "2026-12-07T08:00:00Z", 0);
    const b = request("b", "no_progress", 0, "2026-12-07T08:05:00", 0); // naive: UTC
    const c = request("c", "no_progress", 0, "2026-12-07T08:04:59+00:00", 0);
    expect(requestQueue(fleet([robot("a", { requests: [a] }), robot("b", { requests: [b, c] })])).map((r) => r.robot))
      .toEqual(["c", "b", "a"]);
    expect(requestQueue(null)).toEqual([]);
    expect([waitText(5.7), waitText(61), waitText(5400), waitText(-1)]).toEqual(["5 s", "1 min", "1.5 h", "—"]);
  });

  it("tells preference queries from requests and says where J goes", () => {
    const req = { ...request("left", "no_progress", 0, "2026-12-07T08:00:00Z", 0), id: 3, key: "" };
    const pref = prefQuery(3, ["left", "right"], "2026-12-07T08:00:00Z", 0);
    const status = fleet([robot("left"), robot("right")], { queue: [pref, req] });
    expect(queueKey(req)).toBe("operator_request:3");
    expect(queueKey(pref)).toBe("preference_query:3");
    expect(queueTarget(status, pref)).toEqual({ open: "#/preferences?query=3" });
    expect(queueTarget(status, req)).toEqual({ robot: 0 });
    expect(queueTarget(status, { ...req, robot: "gone" })).toBeNull();
    expect(queueTarget(status, undefined)).toBeNull();
    expect([queueRobotText(pref), queueRobotText(req), queueRobotText(prefQuery(4, [], "2026-12-07T08:00:00Z", 0))])
      .toEqual(["robots left + right", "left", "robot"]);
    // The service's whole queue wins over the cards'; a request and a query of the same
    // age: the request first.
    const same = prefQuery(9, ["left"], "2026-12-07T08:00:00Z", 0);
    const sameReq = request("left", "preference", 2, "2026-12-07T08:00:00Z", 0);
    expect(requestQueue(fleet([robot("left", { requests: [] })], { queue: [same, sameReq] })).map(queueKey))
      .toEqual([queueKey(sameReq), "preference_query:9"]);
  });

  it("reads the robot of a live frame", () => {
    const header = new TextEncoder().encode(
      JSON.stringify({ type: "frame", robot: "left", camera: "front", width: 2, height: 2, episode: 0, step: 1 }) + "\n");
    const data = new Uint8Array([...header, 0xff, 0xd8]).buffer;
    expect(parseRobotFrame(data)).toMatchObject({ robot: "left", camera: "front", step: 1 });
    expect(parseRobotFrame('{"type": "telemetry", "values": {}}')).toBeNull();
  });
});
