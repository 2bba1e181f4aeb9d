import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { tick } from "svelte";
import type { Schemas } from "../api/client";

type ControlStatus = Schemas["ControlStatus"];
type FleetRobot = Schemas["FleetRobotState"];
type FleetStatus = Schemas["FleetStatus"];

// The page goes through the real API client; its fetch is this small service (the client
// takes fetch when its module loads, so the stub must come first). It keeps each robot's
// e-stop / pause / takeover state the way the actors would and records every request.
const service = vi.hoisted(() => {
  const NodeRequest = globalThis.Request;
  // Node's Request takes absolute URLs only; a browser resolves "/api/..." against the page.
  globalThis.Request = class extends NodeRequest {
    constructor(input: RequestInfo | URL, init?: RequestInit) {
      super(typeof input === "string" ? new URL(input, "http://localhost").href : input, init);
    }
  } as typeof Request;
  const state = {
    requests: [] as { method: string; path: string; robot: string | null; body: unknown }[],
    fleet: null as unknown,
    robots: {} as Record<string, { estop_latched: boolean; paused: boolean; takeover: boolean }>,
  };
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  globalThis.fetch = (async (input: RequestInfo | URL) => {
    const request = input as Request;
    const url = new URL(request.url);
    const text = await request.clone().text();
    const body = text ? JSON.parse(text) : null;
    const robot = url.searchParams.get("robot");
    state.requests.push({ method: request.method, path: url.pathname, robot, body });
    if (url.pathname === "/api/fleet") return json(state.fleet);
    const status = (name: string | null) => {
      const s = state.robots[name ?? ""];
      return { ...s, episode: 2, step: 5, robot: name, via: "actor", robots: [] };
    };
    if (url.pathname === "/api/control/estop") {
      const names = robot === null ? Object.keys(state.robots) : [robot];
      for (const n of names) state.robots[n].estop_latched = true;
      const robots = names.map((n) => ({ robot: n || null, estop_latched: true, via: "actor", episode: 2, step: 5 }));
      return json({ estop_latched: true, paused: false, takeover: false, episode: -1, step: -1, via: "actor", robot, robots });
    }
    // A fleet of several robots needs a name, as the service says (server/routers/control.py).
    const key = robot ?? "";
    if (!(key in state.robots)) {
      return json({ detail: "this run is a fleet of robots: say which one with ?robot=NAME" }, 422);
    }
    const s = state.robots[key];
    if (url.pathname === "/api/control/status") return json({ reachable: true, status: status(robot) });
    if (url.pathname === "/api/control/estop/release") s.estop_latched = false;
    if (url.pathname === "/api/control/pause") s.paused = true;
    if (url.pathname === "/api/control/resume") s.paused = false;
    if (url.pathname === "/api/control/takeover") s.takeover = (body as { active: boolean }).active;
    if (url.pathname === "/api/control/teleop" && !s.takeover) return json({ detail: "not in a takeover" }, 409);
    return json(status(robot));
  }) as typeof fetch;
  return state;
});

/** The page's live sockets, in the order it opened them; tests push messages into them. */
class FakeSocket {
  static opened: FakeSocket[] = [];
  binaryType = "blob";
  closed = false;
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string | ArrayBuffer }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  constructor(public url: string) {
    FakeSocket.opened.push(this);
    queueMicrotask(() => this.onopen?.());
  }
  close() {
    this.closed = true; // a browser says so later, with a close event: closeEvent()
  }
  closeEvent(code = 1000, reason = "") {
    this.onclose?.({ code, reason });
  }
  telemetry(values: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify({ type: "telemetry", robot: null, sent_ns: 1, values }) });
  }
}

beforeAll(async () => {
  // uPlot (the page's chart) asks matchMedia for the pixel ratio when it loads; jsdom has none.
  window.matchMedia ??= ((query: string) => ({
    matches: false, media: query, addListener: () => {}, removeListener: () => {},
    addEventListener: () => {}, removeEventListener: () => {},
  })) as unknown as typeof window.matchMedia;
  let n = 0;
  URL.createObjectURL ??= () => `blob:frame-${++n}`;
  URL.revokeObjectURL ??= () => {};
  const { session } = await import("../lib/session.svelte");
  session.user = {
    id: 1, username: "op", role: "operator", active: true, must_change_password: false, created_at: "2026-01-01",
  } as Schemas["UserPublic"];
});

beforeEach(() => {
  vi.stubGlobal("WebSocket", FakeSocket);
  FakeSocket.opened = [];
  service.requests.length = 0;
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function robot(name: string | null, extra: Partial<FleetRobot> = {}): FleetRobot {
  return { name, state: "running", stale: false, telemetry_age_s: 0.2, estop: false, waiting_for_operator: false, cameras: ["front"], ...extra };
}

function runOf(robots: FleetRobot[], fleet = true): void {
  service.fleet = { fleet, run_id: 5, run_name: "pick", stale_after_s: 5, open_requests: 0, robots } satisfies FleetStatus;
  service.robots = Object.fromEntries(
    robots.map((r) => [r.name ?? "", { estop_latched: false, paused: false, takeover: false }]),
  );
}

async function renderLive(hashQuery: string) {
  const { default: Live } = await import("./Live.svelte");
  return render(Live, { props: { query: new URLSearchParams(hashQuery) } });
}

const controlCalls = () => service.requests.filter((r) => r.path.startsWith("/api/control/"));
const socket = () => FakeSocket.opened[FakeSocket.opened.length - 1];
const button = (name: string | RegExp) => screen.getByRole("button", { name }) as HTMLButtonElement;

describe("Live page with a fleet", () => {
  it("asks which robot to show rather than mixing them: no socket and no control call", async () => {
    runOf([robot("left"), robot("right", { estop: true })]);
    await renderLive("");
    await waitFor(() => expect(screen.getByTestId("robot-picker")).toBeTruthy());
    const picks = screen.getAllByTestId("robot-pick") as HTMLAnchorElement[];
    expect(picks.map((a) => a.getAttribute("href"))).toEqual(["#/live?robot=left", "#/live?robot=right"]);
    expect(screen.getByTestId("robot-picker").textContent).toContain("e-stop latched");
    expect(screen.getByTestId("pick-note").textContent).toContain("fleet of 2 robots");
    expect(FakeSocket.opened).toHaveLength(0);
    expect(controlCalls()).toEqual([]);
    expect(screen.queryByTestId("act-controls")).toBeNull();
  });

  it("names an unknown robot's problem and offers the fleet's robots", async () => {
    runOf([robot("left"), robot("right")]);
    await renderLive("robot=middle");
    await waitFor(() => expect(screen.getByTestId("robot-problem").textContent).toContain('no robot "middle"'));
    expect(screen.getAllByTestId("robot-pick")).toHaveLength(2);
    expect(FakeSocket.opened).toHaveLength(0);
    expect(controlCalls()).toEqual([]);
  });

  it("passes the robot to its socket and to every control call: release, pause, resume, takeover, teleop", async () => {
    runOf([robot("left"), robot("right")]);
    service.robots.right.estop_latched = true;
    await renderLive("robot=right");
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    expect(socket().url).toBe("ws://localhost:3000/ws/live?robot=right");
    expect(screen.getByTestId("live-robot").textContent).toBe("right");
    await waitFor(() => expect(screen.getByTestId("live-estop").textContent).toBe("LATCHED"));
    // The switcher leads to the other robot; the release says whose latch it lets go.
    const switcher = screen.getByTestId("robot-switch");
    expect([...switcher.querySelectorAll("a")].map((a) => a.getAttribute("href"))).toContain("#/live?robot=left");
    expect(screen.getByTestId("release-scope").textContent).toContain("robot right only");
    expect(screen.getByTestId("release-scope").textContent).toContain("other robots latched");

    socket().telemetry({ state: "running", reward: 0.25, step: 7, episode: 2, episode_step: 7 });
    await waitFor(() => expect(screen.getByTestId("reward").textContent).toBe("0.250"));

    await fireEvent.click(button("Release e-stop of right"));
    await waitFor(() => expect(screen.getByTestId("live-estop").textContent).toBe("clear"));
    await fireEvent.click(button("Pause"));
    await waitFor(() => expect(screen.getByTestId("live-paused").textContent).toBe("yes"));
    await fireEvent.click(button("Resume"));
    await waitFor(() => expect(screen.getByTestId("live-paused").textContent).toBe("no"));
    await fireEvent.click(button("Take over"));
    await waitFor(() => expect(screen.getByTestId("takeover-banner").textContent).toContain("driving robot right"));
    await fireEvent.keyDown(window, { key: "w" });
    await waitFor(() =>
      expect(service.requests.some((r) => r.path === "/api/control/teleop" && (r.body as { action: number[] }).action[0] === 1)).toBe(true),
    );
    await fireEvent.keyUp(window, { key: "w" });
    await fireEvent.click(button("End takeover"));
    await waitFor(() => expect(screen.queryByTestId("takeover-banner")).toBeNull());

    const paths = new Set(controlCalls().map((r) => r.path));
    for (const p of ["status", "estop/release", "pause", "resume", "takeover", "teleop"]) {
      expect(paths.has(`/api/control/${p}`)).toBe(true);
    }
    expect(controlCalls().filter((r) => r.robot !== "right")).toEqual([]);
    expect(service.robots.left).toEqual({ estop_latched: false, paused: false, takeover: false });
    expect(screen.queryByRole("alert")).toBeNull(); // no 422 from a call without a robot
  });

  it("releases only the shown robot: the header's stop of every robot stays latched for the others", async () => {
    const { estop } = await import("../lib/estopState.svelte");
    runOf([robot("left"), robot("right")]);
    await renderLive("robot=left");
    await waitFor(() => expect(screen.getByTestId("live-estop").textContent).toBe("clear"));

    await estop.press(); // the header's E-STOP (and Esc): every robot, none named
    const press = service.requests.find((r) => r.path === "/api/control/estop")!;
    expect(press.robot).toBeNull();
    expect(service.robots.left.estop_latched && service.robots.right.estop_latched).toBe(true);
    expect(estop.status?.estop_latched).toBe(true);

    socket().telemetry({ estop: true, paused: false, takeover: false }); // its actor reports the latch
    await waitFor(() => expect(button("Release e-stop of left").disabled).toBe(false));
    await fireEvent.click(button("Release e-stop of left"));
    await waitFor(() => expect(service.robots.left.estop_latched).toBe(false));
    expect(service.robots.right.estop_latched).toBe(true);
    // The header no longer claims every robot is stopped; right's latch is kept.
    await waitFor(() => expect(estop.status?.estop_latched).toBe(false));
    expect(estop.status?.robots?.map((r) => [r.robot, r.estop_latched])).toEqual([
      ["left", false],
      ["right", true],
    ]);
  });

  it("switching robots closes the old robot's socket, ends its takeover and shows none of its data", async () => {
    runOf([robot("left"), robot("right")]);
    const page = await renderLive("robot=left");
    await waitFor(() => expect(screen.getByTestId("live-estop").textContent).toBe("clear"));
    const leftSocket = socket();
    leftSocket.telemetry({ reward: 0.5, step: 3 });
    await waitFor(() => expect(screen.getByTestId("reward").textContent).toBe("0.500"));
    await fireEvent.click(button("Take over"));
    await waitFor(() => expect(service.robots.left.takeover).toBe(true));

    await page.rerender({ query: new URLSearchParams("robot=right") });
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(2));
    expect(leftSocket.closed).toBe(true);
    expect(socket().url).toBe("ws://localhost:3000/ws/live?robot=right");
    expect(screen.getByTestId("live-robot").textContent).toBe("right");
    expect(screen.getByTestId("reward").textContent).toBe("—");
    await waitFor(() => expect(service.robots.left.takeover).toBe(false));
    expect(service.robots.right.takeover).toBe(false);

    await waitFor(() => expect(screen.getByTestId("socket-state").textContent).toContain("open"));

    // The robot left behind: a late message and its socket's close event change nothing.
    leftSocket.telemetry({ reward: 0.9, step: 4 });
    leftSocket.closeEvent();
    await tick();
    expect(screen.getByTestId("reward").textContent).toBe("—");
    expect(screen.getByTestId("socket-state").textContent).toContain("open");
  });
});

describe("Live page with one robot", () => {
  it("names no robot anywhere, as before the fleet", async () => {
    const { estop } = await import("../lib/estopState.svelte");
    runOf([robot(null)], false);
    service.robots[""].estop_latched = true;
    await renderLive("");
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    expect(socket().url).toBe("ws://localhost:3000/ws/live");
    expect(screen.queryByTestId("robot-picker")).toBeNull();
    expect(screen.queryByTestId("robot-switch")).toBeNull();
    expect(screen.queryByTestId("release-scope")).toBeNull();
    await waitFor(() => expect(screen.getByTestId("live-estop").textContent).toBe("LATCHED"));
    expect(estop.status?.estop_latched).toBe(true); // the header shows the one robot's latch
    await fireEvent.click(button("Release e-stop"));
    await waitFor(() => expect(screen.getByTestId("live-estop").textContent).toBe("clear"));
    expect(estop.status?.estop_latched).toBe(false);
    expect(controlCalls().map((r) => r.robot)).toEqual(controlCalls().map(() => null));
    expect(controlCalls().some((r) => r.path === "/api/control/estop/release")).toBe(true);
  });
});
