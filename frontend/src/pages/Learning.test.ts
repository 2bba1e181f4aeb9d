import { cleanup, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Schemas } from "../api/client";
import type { EpisodePoint, LearnerPoint, LearningClient } from "../lib/learning";
import { episodeCurves, fetchAll, learnerCurves, rollingMean, utdStatus } from "../lib/learning";

// jsdom has no canvas, Path2D or matchMedia; uPlot draws on a canvas. A context whose every
// method does nothing lets the real Chart component build its DOM (title, legend).
beforeAll(() => {
  window.matchMedia ??= ((query: string) => ({
    matches: false, media: query, onchange: null,
    addListener: () => {}, removeListener: () => {},
    addEventListener: () => {}, removeEventListener: () => {}, dispatchEvent: () => false,
  })) as unknown as typeof window.matchMedia;
  const ctx = new Proxy({}, {
    get: (_t, name) => (name === "measureText" ? () => ({ width: 10 }) : name === "canvas" ? undefined : () => {}),
    set: () => true,
  });
  // uPlot builds its line paths as Path2D objects and hands them to the context.
  (globalThis as { Path2D?: unknown }).Path2D ??= class {
    moveTo() {}
    lineTo() {}
    rect() {}
    arc() {}
    bezierCurveTo() {}
    quadraticCurveTo() {}
    closePath() {}
    addPath() {}
  };
  HTMLCanvasElement.prototype.getContext = (() => ctx) as unknown as HTMLCanvasElement["getContext"];
});

afterEach(cleanup);

const runs: Schemas["RunPublic"][] = [
  { id: 7, name: "pick", kind: "sim", status: "running", started_at: "2026-05-01T12:00:00", ended_at: null } as Schemas["RunPublic"],
];

const summary = {
  run_id: 7, episodes: 5, complete: 5, successes: 3, success_rate: 0.6, demos: 1, interventions: 0, env_steps: 40,
  recent_success_rate: 0.6, checkpoints: 0, latest_checkpoint_update_steps: null, latest_checkpoint_at: null,
  episodes_per_outcome: { success: 3, failure: 2 },
} as Schemas["RunMetrics"];

function episode(id: number, envSteps: number, success: boolean, extra: Partial<EpisodePoint> = {}): EpisodePoint {
  return {
    episode_id: id, env_steps: envSteps, num_steps: 10, episode_return: success ? 5 : 1, success,
    outcome: success ? "success" : "failure", is_eval: false, is_demo: false, has_intervention: false,
    finished_at: "2026-05-01T12:00:00", ...extra,
  };
}

function sample(id: number, minute: number, update: number, extra: Partial<LearnerPoint> = {}): LearnerPoint {
  return {
    id, created_at: `2026-05-01T12:${String(minute).padStart(2, "0")}:00`, session: "s", update_step: update,
    env_steps: update * 2, episodes: 1, updates_per_s: 12.5, online_transitions: 100 * id, demo_transitions: 40,
    online_episodes: id, demo_episodes: 1, scalars: { critic_loss: 0.5 / id },
    utd_target: null, utd_held: null, env_steps_per_s: null, utd_behind: false, ...extra,
  };
}

const keepingUp = { utd_target: 1, utd_held: 0.99, env_steps_per_s: 10, utd_behind: false };
const behind = { utd_target: 1, utd_held: 0.25, env_steps_per_s: 10, utd_behind: true };

function client(eps: EpisodePoint[], samples: LearnerPoint[], fail = false): LearningClient {
  return {
    runs: vi.fn(async () => runs),
    summary: vi.fn(async () => {
      if (fail) throw new Error("the service is down: 502");
      return summary;
    }),
    episodes: vi.fn(async () => ({ items: eps, next_after_id: null })),
    learner: vi.fn(async () => ({ items: samples, next_after_id: null })),
  };
}

async function renderPage(c: LearningClient) {
  const { default: Learning } = await import("./Learning.svelte");
  render(Learning, { props: { client: c } });
}

describe("Learning page", () => {
  it("plots success, return, updates/s, buffer sizes and evaluations from the service", async () => {
    const eps = [
      episode(1, 0, true, { is_demo: true }),
      episode(2, 10, false),
      episode(3, 20, true),
      episode(4, 20, true, { is_eval: true }),
      episode(5, 30, true),
      episode(6, 30, false, { is_eval: true }),
    ];
    await renderPage(client(eps, [sample(1, 0, 0), sample(2, 1, 600), sample(3, 2, 1300)]));
    await waitFor(() => expect(screen.getByTestId("learner-latest")).toBeTruthy());
    const titles = [...document.querySelectorAll(".u-title")].map((t) => t.textContent);
    expect(titles).toEqual([
      "success rate (last 20 training episodes) vs env steps",
      "return vs env steps",
      "updates per second",
      "replay buffer sizes (transitions)",
      "critic loss",
      "evaluation success rate vs env steps",
    ]);
    const legend = document.body.textContent ?? "";
    for (const label of ["updates/s", "online", "demo + intervention", "episode return", "eval success"]) {
      expect(legend).toContain(label);
    }
    const latest = screen.getByTestId("learner-latest").textContent ?? "";
    expect(latest).toContain("updates 1300");
    expect(latest).toContain("updates/s 12.5");
    expect(latest).toContain("online buffer 300");
    expect(latest).toContain("demo buffer 40");
    // The two evaluation episodes are listed, newest first.
    const rows = [...screen.getByTestId("evaluations").querySelectorAll("tbody tr")].map((r) => r.textContent);
    expect(rows[0]).toContain("#6");
    expect(rows[1]).toContain("#4");
  });

  it("opens on the run training now, not a newer finished replay", async () => {
    const c = client([episode(1, 10, true)], [sample(1, 0, 50)]);
    const replay = { ...runs[0], id: 9, name: "replay of episode 3", status: "finished" } as Schemas["RunPublic"];
    c.runs = vi.fn(async () => [replay, ...runs]); // newest first, as the service lists them
    await renderPage(c);
    await waitFor(() => expect(screen.getByTestId("learner-latest")).toBeTruthy());
    expect(c.learner).toHaveBeenCalledWith(7, expect.anything());
    expect(c.learner).not.toHaveBeenCalledWith(9, expect.anything());
  });

  it("lists a fleet's robots, one row each, and no robot table for one robot", async () => {
    const robot = (name: string | null, episodes: number, successes: number, perHour: number | null) => ({
      robot: name, episodes, successes, success_rate: episodes ? successes / episodes : null,
      intervention_episodes: 1, env_steps: episodes * 20, robot_hours: 0.5,
      interventions_per_robot_hour: perHour,
    });
    const c = client([episode(1, 10, true)], [sample(1, 0, 50)]);
    c.summary = vi.fn(async () => ({ ...summary, robots: [robot("left", 4, 3, 2), robot("right", 2, 0, null)] }));
    await renderPage(c);
    await waitFor(() => expect(screen.getByTestId("robots")).toBeTruthy());
    const rows = [...screen.getByTestId("robots").querySelectorAll("tbody tr")].map((r) =>
      [...r.querySelectorAll("td")].map((td) => td.textContent));
    expect(rows).toEqual([["left", "4", "75%", "80", "0.50", "2.0"], ["right", "2", "0%", "40", "0.50", "–"]]);
    expect(screen.getByRole("link", { name: "left" }).getAttribute("href")).toBe("#/episodes?robot=left");
    cleanup();
    const single = client([episode(1, 10, true)], [sample(1, 0, 50)]);
    single.summary = vi.fn(async () => ({ ...summary, robots: [robot(null, 4, 3, 2)] }));
    await renderPage(single);
    await waitFor(() => expect(screen.getByTestId("summary")).toBeTruthy());
    expect(screen.queryByTestId("robots")).toBeNull();
  });

  it("says what is missing when there is nothing to plot yet", async () => {
    await renderPage(client([episode(1, 10, true)], []));
    await waitFor(() => expect(screen.getAllByTestId("empty").length).toBe(3));
    const text = screen.getAllByTestId("empty").map((e) => e.textContent);
    expect(text[0]).toContain("Not enough training episodes");
    expect(text[1]).toContain("No learner metrics for this run yet");
    expect(text[2]).toContain("No evaluation episodes yet");
    expect(document.querySelectorAll(".u-title").length).toBe(0);
  });

  it("shows no runs, and a service error with a retry", async () => {
    const none = client([], []);
    none.runs = vi.fn(async () => []);
    await renderPage(none);
    await waitFor(() => expect(screen.getByTestId("empty").textContent).toContain("No runs yet"));
    cleanup();
    await renderPage(client([], [], true));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("the service is down"));
    expect(screen.getByRole("button", { name: "Retry" })).toBeTruthy();
  });
});

describe("learning series", () => {
  it("rolls a mean over a window", () => {
    expect(rollingMean([1, 0, 1, 1], 2)).toEqual([1, 0.5, 0.5, 1]);
  });

  it("keeps demos out and evaluations apart", () => {
    const c = episodeCurves([episode(1, 0, true, { is_demo: true }), episode(2, 10, false), episode(3, 10, true, { is_eval: true }),
      episode(4, 20, true)], 20);
    expect(c.train.x).toEqual([10, 20]);
    expect(c.train.success).toEqual([0, 0.5]);
    expect(c.train.ret).toEqual([1, 5]);
    expect(c.evaluation.x).toEqual([10]);
  });

  it("puts learner samples on minutes since the first one, read as UTC", () => {
    const l = learnerCurves([sample(1, 0, 0), sample(2, 1, 600), sample(3, 3, 1300)]);
    expect(l.minutes).toEqual([0, 1, 3]);
    expect(l.online).toEqual([100, 200, 300]);
    expect(l.criticLoss).toEqual([0.5, 0.25, 0.5 / 3]);
  });

  it("follows the paging cursor until the last page", async () => {
    const pages: Record<number, { items: number[]; next_after_id: number | null }> = {
      0: { items: [1, 2], next_after_id: 2 },
      2: { items: [3, 4], next_after_id: 4 },
      4: { items: [5], next_after_id: null },
    };
    expect(await fetchAll(async (after) => pages[after])).toEqual([1, 2, 3, 4, 5]);
    expect(await fetchAll(async (after) => pages[after], 2)).toEqual([1, 2, 3, 4]);
  });
});

describe("updates per env step (UTD)", () => {
  it("plots the UTD held against the target and explains a learner that is behind", async () => {
    await renderPage(client([], [sample(1, 0, 0, keepingUp), sample(2, 1, 600, keepingUp), sample(3, 2, 700, behind)]));
    await waitFor(() => expect(screen.getByTestId("learner-latest")).toBeTruthy());
    const titles = [...document.querySelectorAll(".u-title")].map((t) => t.textContent);
    expect(titles[0]).toBe("updates per env step (UTD): held vs target");
    expect(document.body.textContent).toContain("held (last ~30 s)");
    expect(screen.getByTestId("learner-latest").textContent).toContain("updates per env step 0.25");
    const why = screen.getByTestId("utd-behind").textContent ?? "";
    expect(why).toContain("The learner is behind: it held 0.25 updates per env step against a target of 1");
    expect(why).toContain("making 2.5 updates/s while the robot sent 10 env steps/s");
    expect(why).toContain("needs 10 updates/s");
    expect(why).toContain("learner.cqn.hidden_dim");
  });

  it("says nothing alarming while the learner keeps up, and plots no UTD for older learners", async () => {
    await renderPage(client([], [sample(1, 0, 0, keepingUp), sample(2, 1, 600, keepingUp)]));
    await waitFor(() => expect(screen.getByTestId("utd-status")).toBeTruthy());
    expect(screen.getByTestId("utd-status").textContent).toBe("UTD 0.99 held, target 1");
    expect(screen.queryByTestId("utd-behind")).toBeNull();
    cleanup();
    await renderPage(client([], [sample(1, 0, 0), sample(2, 1, 600)]));
    await waitFor(() => expect(screen.getByTestId("learner-latest")).toBeTruthy());
    expect(screen.queryByTestId("utd-status")).toBeNull();
    const titles = [...document.querySelectorAll(".u-title")].map((t) => t.textContent);
    expect(titles).not.toContain("updates per env step (UTD): held vs target");
  });

  it("describes no target and a window without env steps", () => {
    expect(utdStatus(sample(1, 0, 0, { utd_held: 3.5, env_steps_per_s: 10 }))?.text).toBe(
      "UTD 3.5 held, no target (as fast as it can)");
    expect(utdStatus(sample(1, 0, 0, { utd_target: 2 }))?.text).toBe("UTD: no env steps in the last window; target 2");
    expect(learnerCurves([sample(1, 0, 0, behind)]).utdHeld).toEqual([0.25]);
  });
});
