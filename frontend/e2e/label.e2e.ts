// Play an episode's videos and label success frames by holding L while it plays.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

const EPISODE = process.env.E2E_EPISODE ?? "1";

test("an episode video plays and holding L labels the frames shown", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/episodes/${EPISODE}`);
    const video = s.page.getByTestId("video").first();
    await video.waitFor({ timeout: 15_000 });
    expect(await s.page.getByTestId("video").count()).toBe(2);
    await expect
      .poll(() => video.evaluate((v: HTMLVideoElement) => v.readyState), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(2);
    await s.page.locator("body").click({ position: { x: 5, y: 5 } });
    await s.page.keyboard.press(" ");
    await expect
      .poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 10_000 })
      .toBeGreaterThan(0.2);
    await s.page.keyboard.down("l");
    await expect.poll(() => s.page.getByTestId("labelling").textContent()).toContain("labelling");
    await s.page.waitForTimeout(400);
    await shot(s.page, "episode-labelling");
    await s.page.keyboard.up("l");
    await s.page.getByTestId("labels").waitFor({ timeout: 10_000 });
    expect(await s.page.locator("[data-testid=labels] tbody tr").count()).toBeGreaterThan(0);
    await shot(s.page, "episode-labelled");
  } finally {
    await s.close();
  }
});
