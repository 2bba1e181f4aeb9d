// Background jobs of the service (replays, classifier training): progress parsing and a
// poller that stops by itself once the job is done or failed.
import type { Schemas } from "../api/client";

export type Job = Schemas["JobPublic"];

/** How often a running job is asked for its status. */
export const JOB_POLL_MS = 1000;

export interface Progress {
  done: number;
  total: number;
}

/** "step 4/10" (or "encode 64/128") -> { done: 4, total: 10 }; null when there is none. */
export function jobProgress(detail: string): Progress | null {
  const match = /(\d+)\s*\/\s*(\d+)\s*$/.exec(detail.trim());
  if (!match) return null;
  const done = Number(match[1]);
  const total = Number(match[2]);
  if (total <= 0 || done > total) return null;
  return { done, total };
}

export function finished(job: Job): boolean {
  return job.status === "done" || job.status === "failed";
}

/**
 * Poll `fetch` every `intervalMs` and hand each answer to `update` until the job is done or
 * failed (or the fetch fails: `fail` gets its error). Returns a function that stops polling,
 * for a page that goes away first. Only one request is in flight at a time.
 */
export function pollJob(
  fetch: () => Promise<Job>,
  update: (job: Job) => void,
  fail: (error: Error) => void,
  intervalMs: number = JOB_POLL_MS,
): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const step = async () => {
    try {
      const job = await fetch();
      if (stopped) return;
      update(job);
      if (!finished(job)) timer = setTimeout(step, intervalMs);
    } catch (e) {
      if (!stopped) fail(e as Error);
    }
  };
  timer = setTimeout(step, intervalMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
