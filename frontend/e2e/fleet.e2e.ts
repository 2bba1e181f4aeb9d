// The Fleet page with two robots: a card each with its live picture; 2 then T takes the
// second robot over and T hands it back; Esc stops every robot, and both cards show it.
// Then J opens a preference query from the queue. The pytest side
// (tests/frontend/test_fleet_ui.py) checks each robot's latch at its actor and the answer.
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

// A pending preference query (seeded by the pytest side, E2E_PREF_QUERY, from robot
// E2E_PREF_ROBOT's clips) waits in the same queue: J opens it on the Preferences page, which
// claims it; answering it there takes it off the queue.
const PREF_QUERY = process.env.E2E_PREF_QUERY;

test.skipIf(!PREF_QUERY)("J opens the queue's preference query; answering it takes it off the queue", async () => {
  const s = await open();
  const key = `preference_query:${PREF_QUERY}`;
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/fleet`);
    const items = s.page.getByTestId("queued-request");
    await s.page.locator(`[data-testid="queued-request"][data-key="${key}"]`).waitFor({ timeout: 15_000 });
    expect(await items.first().getAttribute("data-key")).toBe(key); // the first in line
    expect(await items.first().getAttribute("data-robot")).toBe(process.env.E2E_PREF_ROBOT);
    expect(await items.first().textContent()).toContain("preference query");
    await shot(s.page, "fleet-preference-queued");

    await s.page.keyboard.press("j");
    await expect.poll(() => s.page.evaluate(() => location.hash)).toBe(`#/preferences?query=${PREF_QUERY}`);
    const pair = s.page.getByTestId("pair");
    await pair.waitFor({ timeout: 15_000 });
    expect(await pair.getAttribute("data-query")).toBe(PREF_QUERY);
    expect(await pair.getAttribute("data-from-queue")).toBe("yes");
    await shot(s.page, "fleet-preference-opened");
    await s.page.keyboard.press("ArrowLeft");
    await expect.poll(() => s.page.getByTestId("answered").textContent()).toBe("1");
    await expect.poll(() => s.page.evaluate(() => location.hash)).toBe("#/preferences");

    await s.page.goto(`${URL}/#/fleet`);
    await s.page.getByTestId("robot-card").first().waitFor({ timeout: 15_000 });
    await expect.poll(() => s.page.locator(`[data-key="${key}"]`).count(), { timeout: 10_000 }).toBe(0);
  } finally {
    await s.close();
  }
});
