// The Learning page draws the run's curves: success and return against env steps from the
// recorded episodes, and updates/s, buffer sizes and critic loss from the learner's samples.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

test("the learning page plots episodes and learner samples", async () => {
  const s = await open();
  try {
    await login(s.page, "viewer");
    await s.page.goto(`${URL}/#/learning`);
    await s.page.getByTestId("learner-latest").waitFor({ timeout: 20_000 });
    const titles = await s.page.locator(".u-title").allTextContents();
    for (const title of ["return vs env steps", "updates per second", "replay buffer sizes (transitions)", "critic loss"]) {
      expect(titles).toContain(title);
    }
    expect(titles.some((t) => t.startsWith("success rate"))).toBe(true);
    // Drawn, not blank: every plot's canvas has a size.
    const canvases = s.page.locator(".u-wrap canvas");
    expect(await canvases.count()).toBe(titles.length);
    for (const box of await Promise.all((await canvases.all()).map((c) => c.boundingBox()))) {
      expect(box!.width).toBeGreaterThan(200);
    }
    expect(await s.page.getByTestId("learner-latest").textContent()).toContain("updates 6600");
    expect(await s.page.getByTestId("error").count()).toBe(0);
    await shot(s.page, "learning-curves");
  } finally {
    await s.close();
  }
});
