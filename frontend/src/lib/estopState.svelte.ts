// The e-stop state shared by the always-visible button and the live page.
import { api, call, type Schemas } from "../api/client";

export type ControlStatus = Schemas["ControlStatus"];

class EstopState {
  /** Last status the actor confirmed (null: not known yet / actor unreachable). For a
   * fleet: the e-stop of every robot's answer, `estop_latched` only while all are. */
  status = $state<ControlStatus | null>(null);
  pending = $state(false);
  error = $state<string | null>(null);
  lastPressed = $state<number | null>(null);

  /** Stop every robot (a fleet's too): the header button and the e-stop key. */
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

  /**
   * Release the e-stop of the run's one robot (`robot` null), or of ONE robot of a fleet:
   * the service requires a name there, and the other robots stay latched.
   *
   * Returns the released robot's status. Throws the service's error (and keeps it in
   * `error`) when the release is refused or unanswered.
   */
  async release(robot: string | null = null): Promise<ControlStatus> {
    this.pending = true;
    try {
      const params = { query: robot === null ? {} : { robot } };
      const status = await call(api.POST("/api/control/estop/release", { params }));
      if (robot === null) this.status = status;
      else this.updateRobot(status);
      this.error = null;
      return status;
    } catch (e) {
      this.error = (e as Error).message;
      throw e;
    } finally {
      this.pending = false;
    }
  }

  /** Record a status learned elsewhere (telemetry, a control reply) for the run's one robot. */
  update(status: ControlStatus): void {
    this.status = status;
  }

  /**
   * Record one fleet robot's status (its `robot` named). The header shows the stop of
   * every robot, so one robot's state never replaces it: it only updates that robot inside
   * an e-stop of all, which stays "latched" only while every robot is. (One robot released
   * after an e-stop of all: the header must not claim the fleet is still stopped.)
   */
  updateRobot(status: ControlStatus): void {
    const all = this.status;
    const name = status.robot;
    if (!all?.robots || name === null || name === undefined) return;
    if (!all.robots.some((r) => r.robot === name)) return;
    const robots = all.robots.map((r) =>
      r.robot === name ? { ...r, estop_latched: status.estop_latched, error: null } : r,
    );
    this.status = { ...all, robots, estop_latched: robots.every((r) => r.estop_latched) };
  }
}

export const estop = new EstopState();
