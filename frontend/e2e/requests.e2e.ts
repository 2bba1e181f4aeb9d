// An operator request raised by the robot shows on every page; an operator answers it from
// the banner. The request is opened in the database by tests/frontend/ (as the actor would).
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

test("the robot's call for help shows on every page and an operator resolves it", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    for (const page of ["live", "episodes", "calibration"]) {
      await s.page.goto(`${URL}/#/${page}`);
      const banner = s.page.getByTestId("operator-request");
      await banner.waitFor({ timeout: 15_000 });
      expect(await banner.textContent()).toContain("e2e: success probability flat");
    }
    await shot(s.page, "operator-request");
    await s.page.getByRole("button", { name: "I reset it" }).click();
    await expect.poll(() => s.page.getByTestId("operator-request").count(), { timeout: 10_000 }).toBe(0);
    expect(await s.page.getByTestId("operator-requests-error").count()).toBe(0);
  } finally {
    await s.close();
  }
});
