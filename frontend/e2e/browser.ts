// Launch Debian's Chromium through playwright-core (browsers cannot be downloaded here) and
// log in through the real login page. The service and its data are prepared by
// tests/frontend/ (pytest), which passes them in the environment.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { expect } from "vitest";

export const URL = need("E2E_URL");
export const PASSWORD = need("E2E_PASSWORD");
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(tmpdir(), "robolearn-e2e");

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests through pytest tests/frontend/`);
  return value;
}

export interface Session {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function open(): Promise<Session> {
  const profile = mkdtempSync(join(tmpdir(), "rl-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.E2E_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The service's Content-Security-Policy must allow everything the built UI does (live
  // frames from blob:, the WebSocket, videos, inline style attributes): a blocked load is
  // only a console message, so it is caught here.
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) errors.push(m.text());
  });
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      expect(errors, "uncaught errors in the page").toEqual([]);
    },
  };
}

export async function login(page: Page, username: string, password = PASSWORD): Promise<void> {
  await page.goto(URL + "/");
  await page.getByLabel("User name").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("who").waitFor();
  expect(await page.getByTestId("who").textContent()).toContain(username);
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
