// The reward-model loop in the browser: label success (hold L) and failure (hold F, whole
// episodes) frames, see the missing-class advice, train with progress, read the held-out
// metrics and ROC curve, deploy the version to the run, and see its probability next to the
// labels on an episode, where one click labels a disagreement. Then a viewer only looks.
import type { Page } from "playwright-core";
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

const EPISODES = (process.env.E2E_EPISODES ?? "").split(",").map(Number);
const [MIXED_A, MIXED_B, FAILED_C, FAILED_D] = EPISODES;

async function openEpisode(page: Page, id: number): Promise<void> {
  await page.goto(`${URL}/#/episodes/${id}`);
  await page.getByTestId("scrubber").waitFor({ timeout: 15_000 });
  // Keys go to the page, not to a focused control.
  await page.locator("h1").click();
}

async function seek(page: Page, frame: number): Promise<void> {
  await page.getByTestId("scrubber").fill(String(frame));
  await expect.poll(() => page.getByTestId("frame").textContent()).toContain(`frame ${frame} /`);
  await page.locator("h1").click();
}

/** Hold `key` while stepping from `from` over `steps` more frames with the arrow key. */
async function holdOver(page: Page, key: string, from: number, steps: number): Promise<void> {
  await seek(page, from);
  await page.keyboard.down(key);
  await expect.poll(() => page.getByTestId("labelling").textContent()).toContain("labelling");
  for (let i = 0; i < steps; i++) {
    await page.keyboard.press("ArrowRight");
    await page.waitForTimeout(50);
  }
  await page.keyboard.up(key);
  await expect.poll(() => page.getByTestId("labelling").count()).toBe(0);
}

async function counts(page: Page): Promise<string> {
  return (await page.getByTestId("label-counts").textContent()) ?? "";
}

test("label both classes, train, read the metrics, deploy, see the probability", async () => {
  expect(EPISODES.length, "E2E_EPISODES: four complete episode ids").toBe(4);
  const s = await open();
  const page = s.page;
  try {
    await login(page, "operator");

    // Success frames only: the page says what is missing and training is refused with it.
    await openEpisode(page, MIXED_A);
    await holdOver(page, "l", 16, 4);
    await expect.poll(() => counts(page)).toContain("5 success");
    await page.goto(`${URL}/#/reward-models`);
    await expect.poll(() => page.getByTestId("missing-class").textContent()).toContain("Mark failure frames");
    await page.getByTestId("train").click();
    await expect.poll(() => page.getByTestId("train-error").textContent()).toContain("0 failure frames");
    await shot(page, "reward-loop-missing-class");

    // Failure frames: hold F, one frame by button, whole failed episodes.
    await openEpisode(page, MIXED_A);
    await holdOver(page, "f", 0, 5);
    await expect.poll(() => counts(page)).toContain("6 failure");
    await openEpisode(page, MIXED_B);
    await seek(page, 0);
    await page.getByTestId("label-frame-failure").click();
    await seek(page, 20);
    await page.getByTestId("label-frame").click();
    await expect.poll(() => counts(page)).toContain("1 success");
    for (const id of [FAILED_C, FAILED_D]) {
      await openEpisode(page, id);
      await page.getByTestId("label-episode-failure").click();
      await expect.poll(() => counts(page)).toContain("21 failure");
    }
    await shot(page, "reward-loop-labelled");

    // Train with progress; the held-out metrics, the ROC curve and the versions table.
    await page.goto(`${URL}/#/reward-models`);
    await expect.poll(() => page.getByTestId("count-failure").textContent()).toBe("49");
    expect(await page.getByTestId("count-success").textContent()).toBe("6");
    expect(await page.getByTestId("missing-class").count()).toBe(0);
    await page.getByTestId("train").click();
    await expect.poll(() => page.getByTestId("job").textContent(), { timeout: 180_000, interval: 500 }).toContain("done");
    await page.getByTestId("roc-curve").waitFor({ timeout: 10_000 });
    const accuracy = await page.locator("[data-metric=accuracy]").textContent();
    expect(Number(accuracy)).toBeGreaterThanOrEqual(0);
    expect(Number(await page.locator("[data-metric=auroc]").textContent())).toBeGreaterThanOrEqual(0);
    expect(await page.locator("[data-testid=versions] tbody tr").count()).toBe(1);
    await shot(page, "reward-loop-metrics");

    // Deploy v1 to the stack's run: it runs, so the page says a restart is needed.
    await page.getByTestId("deploy-classifier").click();
    await expect.poll(() => page.getByTestId("deployed-source").textContent()).toContain("classifier v1");
    expect(await page.getByTestId("deploy-note").textContent()).toContain("Stop the run and start it again");
    expect(await page.getByTestId("deploy-clip").isDisabled()).toBe(true);
    expect(await page.getByTestId("clip-status").textContent()).toContain("not configured");
    await shot(page, "reward-loop-deployed");

    // The deployed version's probability next to the labels; one click labels frame 10
    // (unlabelled) with the class the classifier got wrong by the operator's judgement.
    await openEpisode(page, MIXED_A);
    await expect.poll(() => page.getByTestId("success-source").textContent()).toContain("classifier v1");
    await page.getByTestId("score-episode").click();
    await expect.poll(() => page.getByTestId("probability-origin").textContent(), { timeout: 60_000 }).toContain("v1");
    await seek(page, 10);
    const p = Number(await page.getByTestId("probability").textContent());
    expect(p).toBeGreaterThanOrEqual(0);
    expect(p).toBeLessThanOrEqual(1);
    const fix = page.locator("[data-testid=mark-false-positive], [data-testid=mark-false-negative]");
    expect(await fix.count()).toBe(1);
    const before = await counts(page);
    await fix.click();
    await expect.poll(() => counts(page)).not.toBe(before);
    expect(await page.getByTestId("frame-probability").textContent()).not.toContain("your label none");
    await shot(page, "reward-loop-probability");
  } finally {
    await s.close();
  }

  // A viewer sees the counts, metrics and probability, and no control that changes them.
  const v = await open();
  try {
    await login(v.page, "viewer");
    await v.page.goto(`${URL}/#/reward-models`);
    await v.page.getByTestId("roc-curve").waitFor({ timeout: 15_000 });
    for (const id of ["train", "deploy-classifier", "deploy-clip"]) {
      expect(await v.page.getByTestId(id).count()).toBe(0);
    }
    await openEpisode(v.page, MIXED_A);
    await v.page.getByTestId("score-episode").click();
    await v.page.getByTestId("probability").waitFor({ timeout: 60_000 });
    expect(await v.page.locator("[data-testid=mark-false-positive], [data-testid=mark-false-negative]").count()).toBe(0);
    expect(await v.page.getByTestId("label-episode-failure").count()).toBe(0);
  } finally {
    await v.close();
  }
}, 300_000); // training inside waits up to 180 s on a loaded machine: the test must outlast it
