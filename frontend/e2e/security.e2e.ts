// The one-time password must be replaced before anything else, and new runs are chosen
// from the configs the deployment allows (the stack's own run holds the robot meanwhile).
import { expect, test } from "vitest";
import { login, open, PASSWORD, shot, URL } from "./browser";

test("an account with a one-time password sees only the change-password form until it changes it", async () => {
  const s = await open();
  try {
    await s.page.goto(URL + "/");
    await s.page.getByLabel("User name").fill("fresh");
    await s.page.getByLabel("Password").fill(PASSWORD);
    await s.page.getByRole("button", { name: "Log in" }).click();
    const form = s.page.getByTestId("change-password");
    await form.waitFor();
    expect(await s.page.getByRole("navigation").count()).toBe(0); // no page to go to
    await shot(s.page, "change-password");
    await s.page.getByLabel("Current (one-time) password").fill(PASSWORD);
    await s.page.getByLabel("New password", { exact: true }).fill("fresh and new password");
    await s.page.getByLabel("New password again").fill("something else entirely");
    await s.page.getByRole("button", { name: "Change password" }).click();
    await expect.poll(() => s.page.getByTestId("change-password-error").textContent()).toContain("differ");
    await s.page.getByLabel("New password again").fill("fresh and new password");
    await s.page.getByRole("button", { name: "Change password" }).click();
    await s.page.getByTestId("who").waitFor({ timeout: 15_000 });
    expect(await s.page.getByTestId("who").textContent()).toContain("fresh");
    expect(await form.count()).toBe(0);
  } finally {
    await s.close();
  }
});

test("a run is created from an allowed config; starting it while the robot is held says by whom", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/runs`);
    const form = s.page.getByTestId("start-run");
    await form.waitFor();
    expect(await s.page.locator("textarea").count()).toBe(0); // no pasted configs any more
    const select = s.page.getByLabel("run config");
    await expect.poll(() => select.locator("option").count()).toBeGreaterThan(0);
    await select.selectOption("e2e_sim");
    await s.page.getByLabel("run name").fill("from the ui");
    await s.page.getByRole("button", { name: "Create and start" }).click();
    await expect.poll(() => s.page.getByTestId("error").first().textContent(), { timeout: 15_000 }).toContain("is in use by");
    expect(await s.page.getByTestId("error").first().textContent()).toContain("e2e stack");
    await expect.poll(() => s.page.getByTestId("runs").textContent()).toContain("from the ui");
    await shot(s.page, "runs-robot-busy");
  } finally {
    await s.close();
  }
});
