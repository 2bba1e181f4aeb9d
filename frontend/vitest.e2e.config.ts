import { defineConfig } from "vitest/config";

// End-to-end tests: Debian's Chromium driven by playwright-core against a real service.
// They need the environment prepared by tests/frontend/ (pytest); run them through it.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
