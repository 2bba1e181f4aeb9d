// A takeover whose browser dies ends by itself: the operator takes over on the Live page,
// drives with a held key, and the browser is killed (SIGKILL, no "End takeover", no page
// unload, no key released). The pytest side (tests/frontend/test_ui.py) then checks at the
// actor that the deadman ended the takeover, and in the audit log who started it.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

const KILLED_AT = process.env.E2E_KILLED_AT;

/** Chromium's browser process: playwright-core starts it as a child of this process. */
function chromiumPid(): number {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // "pid (comm) state ppid ...": comm may hold spaces, so parse after its last ")".
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(ppid) === process.pid && state !== "Z" && comm.includes("chrom")) found.push(Number(entry));
  }
  expect(found, "one Chromium browser process started by this test").toHaveLength(1);
  return found[0];
}

test("a takeover whose browser is killed mid-drive ends by itself", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/live`);
    await s.page.getByTestId("socket-state").waitFor();
    const takeOver = s.page.getByTestId("act-controls").getByRole("button", { name: "Take over" });
    await takeOver.waitFor();
    await expect.poll(() => takeOver.isEnabled(), { timeout: 10_000 }).toBe(true);
    await takeOver.click();
    const banner = s.page.getByTestId("takeover-banner");
    await banner.waitFor({ timeout: 10_000 });
    await expect(s.page.getByRole("button", { name: "End takeover" }).isVisible()).resolves.toBe(true);

    // While the page is open it keeps the takeover alive (teleop several times a second),
    // well past the actor's deadman (actor.takeover_timeout_ms, 1.5 s by default).
    await s.page.waitForTimeout(2500);
    expect(await banner.isVisible()).toBe(true);
    // W held: forward at full speed, the gripper open.
    await s.page.keyboard.down("w");
    await expect
      .poll(() => banner.textContent(), { timeout: 5_000 })
      .toContain("[1.00, 0.00, 0.00, 0.00, -1.00]");
    await s.page.waitForTimeout(1000);
    expect(await banner.isVisible()).toBe(true);
    await shot(s.page, "takeover-driving");

    // The browser dies with W still held: no keyup, no "End takeover", no unload handler.
    const pid = chromiumPid();
    const closed = new Promise<void>((resolve) => s.context.once("close", () => resolve()));
    if (KILLED_AT) writeFileSync(KILLED_AT, String(Date.now()));
    try {
      process.kill(-pid, "SIGKILL"); // its whole process group: renderers too
    } catch {
      process.kill(pid, "SIGKILL");
    }
    await closed;
  } finally {
    await s.close(); // a no-op for the dead browser but its profile and the page-error check
  }
});
