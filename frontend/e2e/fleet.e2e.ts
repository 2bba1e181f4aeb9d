// The Fleet page with two robots: a card each with its live picture; 2 then T takes the
// second robot over and T hands it back; Esc stops every robot, and both cards show it.
// The pytest side (tests/frontend/test_fleet_ui.py) checks each robot's latch at its actor.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

test("fleet cards, a keyboard takeover of one robot, and Esc stopping all", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/fleet`);
    const card = (robot: string) => s.page.locator(`[data-testid="robot-card"][data-robot="${robot}"]`);
    try {
      for (const robot of ["left", "right"]) {
        await card(robot).getByTestId("thumb").waitFor({ timeout: 30_000 });
      }
    } finally {
      await shot(s.page, "fleet-first");
    }
    expect(await s.page.getByTestId("robot-card").count()).toBe(2);

    await s.page.keyboard.press("2");
    await expect.poll(() => card("right").getAttribute("aria-selected")).toBe("true");
    await s.page.keyboard.press("t");
    await card("right").getByTestId("taken-over").waitFor({ timeout: 10_000 });
    expect(await card("left").getByTestId("taken-over").count()).toBe(0);
    await shot(s.page, "fleet-takeover");
    await s.page.keyboard.press("t");
    await expect.poll(() => card("right").getByTestId("taken-over").count(), { timeout: 10_000 }).toBe(0);

    await s.page.keyboard.press("Escape");
    for (const robot of ["left", "right"]) {
      await expect.poll(() => card(robot).getByTestId("state").textContent(), { timeout: 15_000 }).toContain("estop");
    }
    await shot(s.page, "fleet-estop");
  } finally {
    await s.close();
  }
});
