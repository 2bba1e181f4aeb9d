// Five preferences answered with the keyboard alone (the database check is in pytest).
import { expect, test } from "vitest";
import { login, open, shot, URL } from "./browser";

export const KEYS = ["ArrowLeft", "ArrowRight", "ArrowDown", "s", "ArrowLeft"];

test("five preferences are answered with ← → ↓ S ←", async () => {
  const s = await open();
  try {
    await login(s.page, "operator");
    await s.page.goto(`${URL}/#/preferences`);
    for (const [i, key] of KEYS.entries()) {
      const pair = s.page.getByTestId("pair");
      await pair.waitFor({ timeout: 15_000 });
      const id = await pair.getAttribute("data-query");
      if (i === 0) await shot(s.page, "preferences-pair");
      await s.page.keyboard.press(key);
      await expect.poll(() => s.page.getByTestId("answered").textContent()).toBe(String(i + 1));
      await expect.poll(() => s.page.getByTestId("pair").getAttribute("data-query")).not.toBe(id);
    }
    // U undoes the last answer and Space replays: neither answers anything.
    await s.page.keyboard.press("u");
    await expect.poll(() => s.page.getByTestId("answered").textContent()).toBe("4");
    await s.page.keyboard.press("ArrowLeft");
    await expect.poll(() => s.page.getByTestId("answered").textContent()).toBe("5");
    await shot(s.page, "preferences-done");
  } finally {
    await s.close();
  }
});
