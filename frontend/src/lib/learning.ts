// The Learning page's data: the run summary, the learner's periodic samples and the
// per-episode curve, fetched page by page and turned into chart series. A client object,
// so the page's tests pass their own.
import { api, call, type Schemas } from "../api/client";
import { parseUtc } from "./time";

export type RunSummary = Schemas["RunMetrics"];
export type LearnerPoint = Schemas["LearnerMetricsPoint"];
export type EpisodePoint = Schemas["EpisodePoint"];
type Paged<T> = { items: T[]; next_after_id: number | null };

/** Rows per request, and at most this many requests per series (a day at 5 s per row). */
export const PAGE = 5000;
export const MAX_PAGES = 4;

export interface LearningClient {
  runs(): Promise<Schemas["RunPublic"][]>;
  summary(runId: number): Promise<RunSummary>;
  learner(runId: number, afterId: number): Promise<Paged<LearnerPoint>>;
  episodes(runId: number, afterId: number): Promise<Paged<EpisodePoint>>;
}

const run = (runId: number) => ({ run_id: runId });

export const apiLearning: LearningClient = {
  runs: () => call(api.GET("/api/runs")),
  summary: (runId) => call(api.GET("/api/metrics/runs/{run_id}", { params: { path: run(runId) } })),
  learner: (runId, afterId) =>
    call(api.GET("/api/metrics/runs/{run_id}/learner", { params: { path: run(runId), query: { after_id: afterId, limit: PAGE } } })),
  episodes: (runId, afterId) =>
    call(api.GET("/api/metrics/runs/{run_id}/episodes", { params: { path: run(runId), query: { after_id: afterId, limit: PAGE } } })),
};

/** Every row of a paged series, oldest first (stops after `maxPages` requests). */
export async function fetchAll<T>(page: (afterId: number) => Promise<Paged<T>>, maxPages = MAX_PAGES): Promise<T[]> {
  const rows: T[] = [];
  let after = 0;
  for (let i = 0; i < maxPages; i++) {
    const p = await page(after);
    rows.push(...p.items);
    if (p.next_after_id === null) break;
    after = p.next_after_id;
  }
  return rows;
}

/** Mean of the last `window` values at each index (fewer at the start). */
export function rollingMean(values: number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  values.forEach((v, i) => {
    sum += v;
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  });
  return out;
}

export interface EpisodeSeries {
  x: number[];
  success: number[];
  ret: number[];
  retMean: number[];
}

/** Success rate and return against env steps, training and evaluation episodes apart
 * (demos are not the policy's own episodes and are left out). */
export function episodeCurves(points: EpisodePoint[], window: number): { train: EpisodeSeries; evaluation: EpisodeSeries } {
  const series = (eps: EpisodePoint[]): EpisodeSeries => {
    const ret = eps.map((e) => e.episode_return);
    return {
      x: eps.map((e) => e.env_steps),
      success: rollingMean(eps.map((e) => (e.success ? 1 : 0)), window),
      ret,
      retMean: rollingMean(ret, window),
    };
  };
  const own = points.filter((e) => !e.is_demo);
  return { train: series(own.filter((e) => !e.is_eval)), evaluation: series(own.filter((e) => e.is_eval)) };
}

export interface LearnerSeries {
  minutes: number[];
  updatesPerS: number[];
  online: number[];
  demo: number[];
  criticLoss: (number | null)[];
  utdHeld: (number | null)[];
  utdTarget: (number | null)[];
  /** Some sample has a UTD held or a target to plot (older learners recorded neither). */
  hasUtd: boolean;
  latest: LearnerPoint | null;
}

/** The learner's samples as chart series against minutes since the first sample: wall time
 * always rises, while a learner restarted without --resume counts updates and env steps
 * from zero again. */
export function learnerCurves(points: LearnerPoint[]): LearnerSeries {
  const t0 = points.length ? parseUtc(points[0].created_at) : 0;
  return {
    minutes: points.map((p) => (parseUtc(p.created_at) - t0) / 60_000),
    updatesPerS: points.map((p) => p.updates_per_s),
    online: points.map((p) => p.online_transitions),
    demo: points.map((p) => p.demo_transitions),
    criticLoss: points.map((p) => p.scalars.critic_loss ?? null),
    utdHeld: points.map((p) => p.utd_held),
    utdTarget: points.map((p) => p.utd_target),
    hasUtd: points.some((p) => p.utd_held !== null || p.utd_target !== null),
    latest: points.at(-1) ?? null,
  };
}

const num = (v: number, digits = 2) => v.toFixed(digits).replace(/\.?0+$/, "");

/** What a learner sample says about the updates per env step (UTD) it held against its
 * target: null when it recorded neither; `behind` with an explanation of what that means
 * and what would help when it could not keep up. */
export function utdStatus(p: LearnerPoint): { behind: boolean; text: string } | null {
  if (p.utd_held === null && p.utd_target === null) return null;
  const target = p.utd_target === null ? "no target (as fast as it can)" : `target ${num(p.utd_target)}`;
  if (p.utd_held === null) return { behind: false, text: `UTD: no env steps in the last window; ${target}` };
  const held = `UTD ${num(p.utd_held)} held`;
  if (!p.utd_behind || p.utd_target === null) return { behind: false, text: `${held}, ${target}` };
  const stepsPerS = p.env_steps_per_s ?? 0;
  return {
    behind: true,
    text:
      `The learner is behind: it held ${num(p.utd_held)} updates per env step against a target of ` +
      `${num(p.utd_target)}, making ${num(p.utd_held * stepsPerS, 1)} updates/s while the robot sent ` +
      `${num(stepsPerS, 1)} env steps/s (holding the target needs ${num(p.utd_target * stepsPerS, 1)} updates/s). ` +
      "The robot collects experience faster than the learner learns from it, so each step is trained on " +
      "less than the target asks. A cheaper update (smaller learner.cqn.hidden_dim, batch_size, " +
      "demo_batch_size), fewer other processes on the learner's cores, a GPU, or a lower learner.utd " +
      "lets it keep up.",
  };
}
