import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// `npm run dev` proxies the API and the live WebSocket to a local `robolearn serve`.
const backend = process.env.ROBOLEARN_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [svelte()],
  server: {
    proxy: {
      "/api": backend,
      "/ws": { target: backend.replace(/^http/, "ws"), ws: true },
    },
  },
  // The build lands inside the `server` package (package data), so an installed wheel serves
  // the UI it was built with; the directory is git-ignored.
  build: {
    outDir: "../server/ui",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 800,
  },
});
