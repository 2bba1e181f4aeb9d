import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { User } from "../api/client";
import { kindText, waitingFor, type OperatorRequest, type RequestsClient, type Resolution } from "../lib/operatorRequests";
import { session } from "../lib/session.svelte";
import OperatorRequestBanner from "./OperatorRequestBanner.svelte";

const user = (role: User["role"]): User => ({ id: 1, username: role, role, active: true, must_change_password: false, created_at: "2026-01-01T00:00:00" });

const request = (id: number, kind = "no_progress", robot: string | null = null): OperatorRequest => ({
  id,
  source: "operator_request",
  key: `operator_request:${id}`,
  run_id: 3,
  robot,
  kind,
  priority: 0,
  waited_s: 300,
  reason: `success probability flat for 40 steps (request ${id})`,
  status: "open",
  resolution: null,
  created_at: new Date(Date.now() - 5 * 60_000).toISOString().replace("Z", ""),
  resolved_at: null,
  user_id: null,
});

/** An in-memory service: answering a request closes it; a closed one answers 409. */
function fakeService(open: OperatorRequest[]) {
  const answered: [number, string][] = [];
  const client: RequestsClient = {
    listOpen: vi.fn(async () => open.filter((r) => !answered.some(([id]) => id === r.id))),
    resolve: vi.fn(async (id: number, resolution: Resolution): Promise<OperatorRequest> => {
      if (answered.some(([a]) => a === id)) throw new Error("already resolved");
      answered.push([id, resolution]);
      return { ...open.find((r) => r.id === id)!, status: "resolved", resolution };
    }),
    dismiss: vi.fn(async (id: number): Promise<OperatorRequest> => {
      answered.push([id, "dismiss"]);
      return { ...open.find((r) => r.id === id)!, status: "dismissed", resolution: "dismiss" };
    }),
  };
  return { client, answered };
}

beforeEach(() => {
  session.user = user("operator");
});
afterEach(() => {
  cleanup();
  session.user = null;
});

describe("OperatorRequestBanner", () => {
  it("shows nothing while no request is open", async () => {
    const { client } = fakeService([]);
    render(OperatorRequestBanner, { props: { client } });
    await vi.waitFor(() => expect(client.listOpen).toHaveBeenCalled());
    expect(screen.queryByTestId("operator-requests")).toBeNull();
  });

  it("shows every open request, and an operator's answers close them", async () => {
    const { client, answered } = fakeService([request(1), request(2, "workspace_limit", "left"), request(3)]);
    render(OperatorRequestBanner, { props: { client } });
    const shown = await screen.findAllByTestId("operator-request");
    expect(shown).toHaveLength(3);
    // A fleet robot's request names it; a run of one robot's names none.
    expect(shown[1].textContent).toContain("robot left");
    expect(shown[0].textContent).not.toContain("· robot");
    expect(shown[0].textContent).toContain("run 3 · no progress · 5 min ago");
    expect(shown[1].textContent).toContain("stuck at a workspace limit");
    expect(shown[0].textContent).toContain("request 1");

    const [first, second, third] = shown;
    await fireEvent.click(first.querySelector("button")!);
    await fireEvent.click([...second.querySelectorAll("button")].find((b) => b.textContent === "I'll take over")!);
    await fireEvent.click([...third.querySelectorAll("button")].find((b) => b.textContent === "Dismiss")!);
    await vi.waitFor(() => expect(screen.queryByTestId("operator-requests")).toBeNull());
    expect(answered).toEqual([[1, "human_reset"], [2, "takeover"], [3, "dismiss"]]);
  });

  it("says why an answer failed and shows what is still open", async () => {
    const { client, answered } = fakeService([request(1), request(2)]);
    answered.push([1, "human_reset"]); // another operator answered it a moment ago
    (client.listOpen as ReturnType<typeof vi.fn>).mockResolvedValueOnce([request(1), request(2)]);
    render(OperatorRequestBanner, { props: { client } });
    const [first] = await screen.findAllByTestId("operator-request");
    await fireEvent.click(first.querySelector("button")!);
    expect((await screen.findByTestId("operator-requests-error")).textContent).toContain("request 1: already resolved");
    await vi.waitFor(() => expect(screen.getAllByTestId("operator-request")).toHaveLength(1));
    expect(screen.getByTestId("operator-request").textContent).toContain("request 2");
  });

  it("gives a viewer the banner without buttons", async () => {
    session.user = user("viewer");
    const { client } = fakeService([request(1)]);
    render(OperatorRequestBanner, { props: { client } });
    const shown = await screen.findByTestId("operator-request");
    expect(shown.querySelectorAll("button")).toHaveLength(0);
    expect(shown.textContent).toContain("an operator must answer it");
  });

  it("keeps polling, so a new request appears and a service outage is shown", async () => {
    vi.useFakeTimers();
    try {
      const open: OperatorRequest[] = [];
      const { client } = fakeService(open);
      render(OperatorRequestBanner, { props: { client, pollMs: 1000 } });
      await vi.advanceTimersByTimeAsync(10);
      expect(screen.queryByTestId("operator-request")).toBeNull();
      open.push(request(7));
      await vi.advanceTimersByTimeAsync(1000);
      expect(screen.getByTestId("operator-request").textContent).toContain("request 7");
      (client.listOpen as ReturnType<typeof vi.fn>).mockRejectedValueOnce(new Error("the operator service is not reachable"));
      await vi.advanceTimersByTimeAsync(1000);
      expect(screen.getByTestId("operator-requests-error").textContent).toContain("not reachable");
      // The last known request stays on screen while the service is unreachable.
      expect(screen.getByTestId("operator-request").textContent).toContain("request 7");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("request text", () => {
  it("names kinds in words and reads naive timestamps as UTC", () => {
    expect(kindText("repeated_failures")).toBe("repeated failures");
    expect(kindText("arm_fault")).toBe("arm fault");
    const now = Date.parse("2026-05-01T12:00:00Z");
    expect(waitingFor("2026-05-01T11:59:30", now)).toBe("just now");
    expect(waitingFor("2026-05-01T11:57:00", now)).toBe("3 min ago");
    expect(waitingFor("2026-05-01T09:00:00+00:00", now)).toBe("3 h ago");
  });
});
