// Who is logged in. Null: show the login page. Any 401 from the API logs the page out.
import { api, call, onUnauthorized, type User } from "../api/client";

class Session {
  user = $state<User | null>(null);
  checked = $state(false);
  error = $state<string | null>(null);

  get canAct(): boolean {
    return this.user !== null && this.user.role !== "viewer";
  }

  get isAdmin(): boolean {
    return this.user?.role === "admin";
  }

  /** Ask the service whether the browser still has a valid session. */
  async restore(): Promise<void> {
    try {
      this.user = await call(api.GET("/api/auth/me"));
      this.error = null;
    } catch (e) {
      this.user = null;
      const status = (e as { status?: number }).status;
      this.error = status === 401 ? null : (e as Error).message;
    } finally {
      this.checked = true;
    }
  }

  async login(username: string, password: string): Promise<void> {
    const body = await call(api.POST("/api/auth/login", { body: { username, password } }));
    this.user = body.user;
    this.error = null;
  }

  async logout(): Promise<void> {
    try {
      await call(api.POST("/api/auth/logout"));
    } finally {
      this.user = null;
    }
  }
}

export const session = new Session();
onUnauthorized(() => {
  session.user = null;
});
