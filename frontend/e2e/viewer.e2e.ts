// A viewer sees data and the e-stop, but no control that acts on the robot or the labels.
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

const EPISODE = process.env.E2E_EPISODE ?? "1";

test("a viewer sees no control buttons", async () => {
  const s = await open();
  try {
    await login(s.page, "viewer");
    await s.page.goto(`${URL}/#/live`);
    await s.page.getByTestId("socket-state").waitFor();
    expect(await s.page.getByTestId("act-controls").count()).toBe(0);
    for (const name of ["Pause", "Resume", "Take over", "Release e-stop"]) {
      expect(await s.page.getByRole("button", { name }).count()).toBe(0);
    }
    // The e-stop stays: stopping never moves the robot, and anyone watching may need it.
    expect(await s.page.getByTestId("estop").isVisible()).toBe(true);
    await shot(s.page, "viewer-live");

    await s.page.goto(`${URL}/#/episodes/${EPISODE}`);
    await s.page.getByTestId("video").first().waitFor({ timeout: 15_000 });
    expect(await s.page.getByTestId("label-frame").count()).toBe(0);
    await s.page.getByText("Replay in sim").first().waitFor();
    expect(await s.page.getByTestId("replay-start").count()).toBe(0);

    await s.page.goto(`${URL}/#/runs`);
    await s.page.getByTestId("runs").waitFor();
    expect(await s.page.getByRole("button", { name: "Start" }).count()).toBe(0);
    expect(await s.page.getByTestId("start-run").count()).toBe(0);

    await s.page.goto(`${URL}/#/preferences`);
    await expect.poll(() => s.page.getByTestId("empty").textContent()).toContain("operator account");
    expect(await s.page.getByRole("link", { name: "Users" }).count()).toBe(0);
  } finally {
    await s.close();
  }
});
