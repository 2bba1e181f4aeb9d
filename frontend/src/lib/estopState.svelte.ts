// The e-stop state shared by the always-visible button and the live page.
import { api, call, type Schemas } from "../api/client";

export type ControlStatus = Schemas["ControlStatus"];

class EstopState {
  /** Last status the actor confirmed (null: not known yet / actor unreachable). */
  status = $state<ControlStatus | null>(null);
  pending = $state(false);
  error = $state<string | null>(null);
  lastPressed = $state<number | null>(null);

  async press(): Promise<void> {
    this.lastPressed = Date.now();
    this.pending = true;
    try {
      this.status = await call(api.POST("/api/control/estop", { body: { reason: "web UI" } }));
      this.error = null;
    } catch (e) {
      this.error = `E-STOP NOT CONFIRMED: ${(e as Error).message}`;
    } finally {
      this.pending = false;
    }
  }

  async release(): Promise<void> {
    this.pending = true;
    try {
      this.status = await call(api.POST("/api/control/estop/release"));
      this.error = null;
    } catch (e) {
      this.error = (e as Error).message;
    } finally {
      this.pending = false;
    }
  }

  /** Record a status learned elsewhere (telemetry, a control reply). */
  update(status: ControlStatus): void {
    this.status = status;
  }
}

export const estop = new EstopState();
