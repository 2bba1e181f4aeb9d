// The one HTTP client of the UI, typed by the generated schema (src/api/schema.d.ts,
// `npm run gen`): a route or body that changes on the server breaks the type check here.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type User = Schemas["UserPublic"];
export type Role = User["role"];

const CSRF_COOKIE = "robolearn_csrf";
const CSRF_HEADER = "X-CSRF-Token";

/** A failed API call, with the service's own `detail` message (it says what to do). */
export class ApiError extends Error {
  constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function csrfToken(cookies: string = document.cookie): string {
  for (const part of cookies.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

// The session cookie is HttpOnly; the CSRF cookie is readable so every state-changing
// request can echo it (double submit), which is what the service checks.
const csrf: Middleware = {
  onRequest({ request }) {
    if (!["GET", "HEAD", "OPTIONS"].includes(request.method)) {
      request.headers.set(CSRF_HEADER, csrfToken());
    }
    return request;
  },
};

/** Listeners told when any call comes back 401, so the shell can show the login page. */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

const unauthorized: Middleware = {
  onResponse({ response, request }) {
    if (response.status === 401 && !request.url.endsWith("/api/auth/login")) {
      for (const listener of unauthorizedListeners) listener();
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "" });
api.use(csrf, unauthorized);

/** The message to show for an error body (FastAPI: `detail` string or validation list). */
export function detailOf(error: unknown, status: number): string {
  if (error && typeof error === "object" && "detail" in error) {
    const detail = (error as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const item = d as { loc?: unknown[]; msg?: string };
          // A model-level error (two fields together) has no field to name.
          const field = (item.loc ?? []).slice(1).join(".");
          return field ? `${field}: ${item.msg ?? "invalid"}` : (item.msg ?? "invalid");
        })
        .join("; ");
    }
  }
  if (status === 0) return "the operator service is not reachable; is `robolearn serve` running?";
  return `request failed with HTTP ${status}`;
}

/**
 * Unwrap an openapi-fetch result: the data, or an ApiError carrying the service's message.
 * A network failure (service down) becomes status 0 with a message saying so.
 */
export async function call<T>(
  request: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await request;
  } catch {
    throw new ApiError(0, detailOf(undefined, 0));
  }
  if (result.error !== undefined || !result.response.ok) {
    throw new ApiError(result.response.status, detailOf(result.error, result.response.status));
  }
  return result.data as T;
}
