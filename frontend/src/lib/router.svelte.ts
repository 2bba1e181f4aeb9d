// A hash router: "#/episodes/12" -> { page: "episodes", id: 12 }. Hash routes need no
// server fallback, so the service can serve dist/ as plain static files.

export type Page =
  | "live"
  | "fleet"
  | "runs"
  | "episodes"
  | "preferences"
  | "reward-models"
  | "learning"
  | "calibration"
  | "users"
  | "audit";

export const PAGES: { page: Page; title: string; adminOnly?: boolean }[] = [
  { page: "live", title: "Live" },
  { page: "fleet", title: "Fleet" },
  { page: "runs", title: "Runs" },
  { page: "episodes", title: "Episodes" },
  { page: "preferences", title: "Preferences" },
  { page: "reward-models", title: "Reward models" },
  { page: "learning", title: "Learning" },
  { page: "calibration", title: "Calibration" },
  { page: "users", title: "Users", adminOnly: true },
  { page: "audit", title: "Audit", adminOnly: true },
];

export interface Route {
  page: Page;
  id: number | null;
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?");
  const [first, second] = path.split("/");
  const page = (PAGES.find((p) => p.page === first)?.page ?? "live") as Page;
  const id = second && /^\d+$/.test(second) ? Number(second) : null;
  return { page, id, query: new URLSearchParams(search) };
}

class Router {
  route = $state<Route>(parseHash(typeof location === "undefined" ? "" : location.hash));

  constructor() {
    if (typeof window !== "undefined") {
      window.addEventListener("hashchange", () => {
        this.route = parseHash(location.hash);
      });
    }
  }

  go(hash: string): void {
    location.hash = hash;
  }
}

export const router = new Router();
