// Log in (a wrong password first), then open every page and save its screenshot.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

test("a wrong password is refused with the service's message, then login works", async () => {
  const s = await open();
  try {
    await s.page.goto(URL + "/");
    await shot(s.page, "login");
    await s.page.getByLabel("User name").fill("admin");
    await s.page.getByLabel("Password").fill("not the password");
    await s.page.getByRole("button", { name: "Log in" }).click();
    await expect.poll(() => s.page.getByTestId("login-error").textContent()).toContain("wrong user name or password");
    await login(s.page, "admin");
    await expect.poll(() => s.page.getByTestId("estop").isVisible()).toBe(true);
  } finally {
    await s.close();
  }
});

test("every page renders its data, and its screenshot is saved", async () => {
  const s = await open();
  // Nothing a page asks for is missing (the favicon included).
  const missing: string[] = [];
  s.page.on("response", (r) => {
    if (r.status() >= 400 && !r.url().includes("/api/")) missing.push(`${r.status()} ${r.url()}`);
  });
  try {
    await login(s.page, "admin");
    const pages: [string, string][] = [
      ["live", "socket-state"],
      ["runs", "runs"],
      ["episodes", "episode-table"],
      ["preferences", "pair"],
      ["reward-models", "empty"],
      ["learning", "chart"],
      ["calibration", "calibration"],
      ["users", "users"],
      ["audit", "audit-page"],
    ];
    for (const [name, testid] of pages) {
      await s.page.goto(`${URL}/#/${name}`);
      await s.page.getByTestId(testid).first().waitFor({ timeout: 20_000 });
      // The e-stop is on every page.
      expect(await s.page.getByTestId("estop").isVisible()).toBe(true);
      expect(await s.page.getByTestId("error").count()).toBe(0);
      await shot(s.page, name);
    }
    expect(missing).toEqual([]);
  } finally {
    await s.close();
  }
});

test("the calibration page shows each stored result, and an older version on request", async () => {
  const s = await open();
  try {
    await login(s.page, "viewer");
    await s.page.goto(`${URL}/#/calibration`);
    await s.page.getByTestId("calibration").first().waitFor({ timeout: 20_000 });
    expect(await s.page.getByTestId("calibration").count()).toBe(3);
    expect(await s.page.locator("[data-testid=per-view] tbody tr").count()).toBe(9);
    expect(await s.page.locator("[data-testid=per-view]").textContent()).toContain("not used: 6 corners (need 8)");
    expect(await s.page.locator("[data-testid=methods] tbody tr").first().textContent()).toContain("park ✓");
    expect(await s.page.locator("[data-testid=workspace] tbody tr").count()).toBe(3);
    expect(await s.page.getByTestId("intrinsics").textContent()).toContain("fx 88.4");
    const version = s.page.getByLabel("intrinsics wrist version");
    const older = await version.locator("option").nth(1).getAttribute("value");
    await version.selectOption(older!);
    await s.page.getByTestId("old-version").waitFor({ timeout: 10_000 });
    expect(await s.page.getByTestId("intrinsics").textContent()).toContain("fx 88.0");
    await shot(s.page, "calibration-versions");
    // The live panel shows the running sim's first camera: its frame, and no board there.
    await s.page.getByTestId("live-image").waitFor({ timeout: 20_000 });
    expect(await s.page.getByTestId("corner-count").textContent()).toBe("0 corners");
    expect(await s.page.getByTestId("live-problem").textContent()).toContain("board not in view");
    expect(await s.page.getByTestId("capture").isDisabled()).toBe(true); // a viewer
  } finally {
    await s.close();
  }
});
