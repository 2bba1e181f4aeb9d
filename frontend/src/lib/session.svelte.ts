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

  /** The account still has its one-time password: only the change form may be shown. */
  get mustChangePassword(): boolean {
    return this.user?.must_change_password === true;
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

  /** Replace the password; the service ends every session of the user, so log in again
   * with the new one (the page carries on without a second login form). */
  async changePassword(current: string, next: string): Promise<void> {
    const username = this.user?.username;
    await call(api.POST("/api/auth/password", { body: { current_password: current, new_password: next } }));
    if (username) await this.login(username, next);
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
