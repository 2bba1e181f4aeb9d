// Preferences while training: after a replay in sim (the newest run is then a replay run),
// queries from the training run arrive on the Preferences page while the run records, the
// operator answers them with the keyboard, the service retrains after every 3 answers and
// the page shows the agreement with held-out answers, then its curve over versions. The
// database checks (no query from the replay run) are in pytest.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

const EPISODE = process.env.E2E_EPISODE ?? "1";
const ANSWERS = Number(process.env.E2E_ANSWERS ?? "6");
const KEYS = ["ArrowLeft", "ArrowRight"]; // strict answers: each one can be held out and scored

const count = async (page: import("playwright-core").Page, id: string) => Number(await page.getByTestId(id).textContent());

test("preference queries arrive during a learning run and none come from replay runs", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/episodes/${EPISODE}`);
    await s.page.getByTestId("replay-start").click();
    await s.page.getByTestId("replay-comparison").waitFor({ timeout: 120_000 });

    await s.page.goto(`${URL}/#/preferences`);
    const status = s.page.getByTestId("loop-status");
    await expect.poll(() => status.getAttribute("data-collecting"), { timeout: 30_000 }).toBe("yes");
    await expect.poll(() => count(s.page, "loop-asked"), { timeout: 60_000 }).toBeGreaterThan(0);
    const episodesAtStart = await count(s.page, "loop-episodes");
    const askedAtStart = await count(s.page, "loop-asked");

    let last = "";
    for (let i = 0; i < ANSWERS; i++) {
      // The next pair, whenever the loop has made it (the page asks again by itself).
      const pair = s.page.locator(`[data-testid=pair]:not([data-query="${last}"])`);
      await pair.waitFor({ timeout: 60_000 });
      last = (await pair.getAttribute("data-query")) ?? "";
      if (i === 0) await shot(s.page, "prefs-training-pair");
      await s.page.keyboard.press(KEYS[i % KEYS.length]);
      await expect.poll(() => s.page.getByTestId("answered").textContent()).toBe(String(i + 1));
      if (i === 2) {
        // Three answers: the service retrains on its own and reports the held-out agreement.
        await expect
          .poll(() => s.page.getByTestId("agreement").textContent(), { timeout: 120_000 })
          .toMatch(/^\d+% on \d+ held-out answers? \(v\d+\)$/);
      }
    }
    // Six answers: a second measured version, so the agreement is drawn as a curve.
    await expect.poll(() => s.page.getByTestId("agreement-point").count(), { timeout: 120_000 }).toBeGreaterThanOrEqual(2);
    // The run kept recording, and its new episodes brought new queries.
    await expect.poll(() => count(s.page, "loop-episodes"), { timeout: 30_000 }).toBeGreaterThan(episodesAtStart);
    await expect.poll(() => count(s.page, "loop-asked"), { timeout: 30_000 }).toBeGreaterThan(askedAtStart);
    await shot(s.page, "prefs-training-agreement");
  } finally {
    await s.close();
  }
});
