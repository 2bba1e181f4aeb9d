import { afterEach, describe, expect, it, vi } from "vitest";
import { jobProgress, pollJob, type Job } from "./jobs";

const job = (status: Job["status"], detail = ""): Job => ({ job: "j1", status, detail, result: {} });

describe("jobProgress", () => {
  it("reads the last k/n of a job's detail", () => {
    expect(jobProgress("step 4/10")).toEqual({ done: 4, total: 10 });
    expect(jobProgress("encode 64 / 128")).toEqual({ done: 64, total: 128 });
  });

  it("gives null for text without a sane fraction", () => {
    expect(jobProgress("")).toBeNull();
    expect(jobProgress("finished")).toBeNull();
    expect(jobProgress("step 11/10")).toBeNull();
    expect(jobProgress("step 1/0")).toBeNull();
  });
});

describe("pollJob", () => {
  afterEach(() => vi.useRealTimers());

  it("polls until the job is done, one request at a time", async () => {
    vi.useFakeTimers();
    const answers = [job("queued"), job("running", "step 1/2"), job("done")];
    const fetch = vi.fn(async () => answers.shift()!);
    const seen: string[] = [];
    pollJob(fetch, (j) => seen.push(j.status), () => {}, 100);
    await vi.advanceTimersByTimeAsync(1000);
    expect(seen).toEqual(["queued", "running", "done"]);
    expect(fetch).toHaveBeenCalledTimes(3);
  });

  it("stops when told, and reports a failed request instead of retrying it", async () => {
    vi.useFakeTimers();
    const fetch = vi.fn(async () => job("running"));
    const stop = pollJob(fetch, () => {}, () => {}, 100);
    await vi.advanceTimersByTimeAsync(250);
    stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(fetch).toHaveBeenCalledTimes(2);

    const fail = vi.fn();
    const broken = vi.fn(async () => {
      throw new Error("service down");
    });
    pollJob(broken, () => {}, fail, 100);
    await vi.advanceTimersByTimeAsync(1000);
    expect(broken).toHaveBeenCalledTimes(1);
    expect(fail).toHaveBeenCalledWith(new Error("service down"));
  });
});
