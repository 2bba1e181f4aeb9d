// The live page shows camera frames that keep updating; the e-stop key latches the robot
// and the page shows the latch the service confirmed.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

test("live frames update, and Esc latches the e-stop with a confirmation", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/live`);
    await s.page.getByTestId("socket-state").waitFor();
    const frame = s.page.getByTestId("live-frame").first();
    try {
      await frame.waitFor({ timeout: 20_000 });
    } finally {
      await shot(s.page, "live-first");
    }
    const first = Number(await frame.getAttribute("data-step"));
    await expect
      .poll(async () => Number(await frame.getAttribute("data-step")), { timeout: 10_000 })
      .not.toBe(first);
    expect(await s.page.getByTestId("live-frame").count()).toBe(2);
    await expect.poll(() => s.page.getByTestId("actor-health").textContent()).toContain("running");
    await shot(s.page, "live-running");

    await s.page.keyboard.press("Escape");
    await expect.poll(() => s.page.getByTestId("estop-state").textContent(), { timeout: 10_000 }).toContain("LATCHED");
    await expect.poll(() => s.page.getByTestId("live-estop").textContent(), { timeout: 10_000 }).toBe("LATCHED");
    await shot(s.page, "live-estop-latched");
  } finally {
    await s.close();
  }
});
