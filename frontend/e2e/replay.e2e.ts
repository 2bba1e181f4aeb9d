// Replay a sim-recorded episode in the sim from its detail page, follow the job, and see
// the logged and replayed videos side by side with the tracking-error chart.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

const EPISODE = process.env.E2E_REPLAY_EPISODE ?? process.env.E2E_EPISODE ?? "1";

test("an operator replays an episode in sim and sees the comparison", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/episodes/${EPISODE}`);
    await s.page.getByTestId("empty").filter({ hasText: "Not replayed yet" }).waitFor({ timeout: 15_000 });
    await s.page.getByTestId("replay-mode").selectOption("joints");
    await s.page.getByTestId("replay-start").click();
    await expect.poll(() => s.page.getByTestId("replay-job").textContent()).toMatch(/queued|running|done/);
    // The child process starts MuJoCo, replays, renders and encodes: seconds, not minutes.
    const comparison = s.page.getByTestId("replay-comparison");
    await comparison.waitFor({ timeout: 90_000 });
    expect(await s.page.getByTestId("replay-job").textContent()).toContain("done");
    expect(await s.page.getByTestId("replay-video-source").count()).toBe(2);
    expect(await s.page.getByTestId("replay-video-replay").count()).toBe(2);
    // The chart is drawn: uPlot renders into a canvas inside the tracking-chart box.
    await s.page.locator("[data-testid=tracking-chart] canvas").waitFor({ timeout: 10_000 });
    const mean = Number((await s.page.getByTestId("tracking-mean").textContent())?.replace(" mm", ""));
    const max = Number((await s.page.getByTestId("tracking-max").textContent())?.replace(" mm", ""));
    // Joint mode follows the logged joints: the end effector stays within a centimetre.
    expect(mean).toBeGreaterThanOrEqual(0);
    expect(max).toBeGreaterThanOrEqual(mean);
    expect(max).toBeLessThan(10);
    const replayed = s.page.getByTestId("replay-video-replay").first();
    await expect
      .poll(() => replayed.evaluate((v: HTMLVideoElement) => v.readyState), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(2);
    await s.page.getByTestId("replay-play").click();
    await expect
      .poll(() => replayed.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 10_000 })
      .toBeGreaterThan(0.2);
    await shot(s.page, "episode-replay");
    // The list names the stored replay; a viewer would see it too, without the button.
    expect(await s.page.getByTestId("replay-item").count()).toBe(1);
    // The replay's own page compares it with its source too.
    await comparison.getByRole("link").first().click();
    await s.page.getByText(`This episode replays episode #${EPISODE}`).waitFor({ timeout: 15_000 });
    await s.page.getByTestId("replay-comparison").waitFor({ timeout: 15_000 });
    expect(await s.page.getByTestId("replay-refusal").textContent()).toContain("itself a replay");
  } finally {
    await s.close();
  }
});
