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

test("while the stack's run lives nothing else starts; a new run is created from an allowed config", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/runs`);
    const form = s.page.getByTestId("start-run");
    await form.waitFor();
    expect(await s.page.locator("textarea").count()).toBe(0); // no pasted configs
    // The stack's run, started as `robolearn up` starts one, is live and not this service's.
    const live = s.page.locator("[data-testid=runs] tbody tr", { hasText: "robolearn up (pid" });
    await expect.poll(() => live.count(), { timeout: 15_000 }).toBe(1);
    expect(await live.getByTestId("processes").textContent()).toContain(": running");
    expect(await live.getByRole("button", { name: "Stop" }).isDisabled()).toBe(true);
    expect(await live.getByRole("button", { name: "Stop" }).getAttribute("title")).toContain("Ctrl-C");
    expect(await live.getByRole("button", { name: "Start" }).isDisabled()).toBe(true);
    expect(await s.page.getByTestId("run-active").textContent()).toContain("one robot, one run");
    expect(await s.page.getByRole("button", { name: "Create and start" }).isDisabled()).toBe(true);
    // Created for later, with one of the safe settings changed.
    const select = s.page.getByLabel("run config");
    await expect.poll(() => select.locator("option").count()).toBeGreaterThan(0);
    await select.selectOption("e2e_sim");
    await s.page.getByLabel("run name").fill("from the ui");
    await s.page.getByText("Change a setting").click();
    await s.page.getByLabel("actor.episodes", { exact: true }).fill("3");
    await s.page.getByRole("button", { name: "Create (start later)" }).click();
    const row = s.page.locator("[data-testid=runs] tbody tr", { hasText: "from the ui" });
    await expect.poll(() => row.count(), { timeout: 15_000 }).toBe(1);
    expect(await row.textContent()).toContain("created");
    const start = row.getByRole("button", { name: "Start" });
    expect(await start.isDisabled()).toBe(true);
    expect(await start.getAttribute("title")).toContain("stop it first");
    expect(await s.page.getByTestId("error").count()).toBe(0);
    await shot(s.page, "runs-one-at-a-time");
  } finally {
    await s.close();
  }
});

test("an admin reads on the Audit page who created that run, filtered by action", async () => {
  const s = await open();
  try {
    await login(s.page, "admin");
    await s.page.goto(`${URL}/#/audit`);
    await s.page.getByTestId("audit-page").waitFor();
    await s.page.getByLabel("action").fill("run.create");
    await s.page.getByRole("button", { name: "Filter" }).click();
    const rows = s.page.locator("[data-testid=audit] tbody tr");
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(1);
    const row = await rows.first().textContent();
    expect(row).toContain("operator");
    expect(row).toContain("run.create");
    expect(row).toContain("e2e_sim");
    expect(await s.page.getByTestId("audit-range").textContent()).toContain("1–1 of 1");
    await shot(s.page, "audit");
  } finally {
    await s.close();
  }
});

