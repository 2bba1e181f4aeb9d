"""fleet_attention: one scripted operator supervising 4 reset-free sim robots; how often the
robots ask, how long they wait for the person, and the success rate the fleet holds.

Four robots practise drawer_open <-> drawer_close reset-free, each in its own MuJoCo world
(robolearn.sim.PandaSim, states only), stepped at 10 Hz in simulated time: every tick each
robot that is not waiting takes one control step (actions through the robot's safety filter,
the arm homed with the gripper open between episodes, as the actor does). Each robot decides
what comes next with the actor's own reset-free logic (`robolearn.actor.reset_free`:
DirectionScheduler + ProgressMonitor, config `configs/sim_drawer_reset_free.yaml`'s
reset_free section with a shorter no-progress window), and when it is stuck it asks for help
exactly as the actor does: `open_request(..., robot=...)` in a real SQLite store, then it
holds (no step, no command) until the request is closed.

The policy is a stand-in for a partly trained one: the sim's scripted expert with Gaussian
action noise (--noise), which on a fraction of episodes (--stall-p) stalls, holding still the
whole episode (a policy that freezes where it is unsure); a stalled episode makes no progress,
so the monitor ends it and the robot asks. Requests therefore come at a rate the scripted
policy sets; what this benchmark measures is what one person's attention does to them.

The operator is scripted with a fixed response time (--response-s): one person, one request
at a time, always the head of the same queue the Fleet page shows
(`robolearn.store.operator_requests.request_queue`: priority, then age), answered with
`resolve_request(..., "human_reset")` --response-s after taking it (in the sim the scene is
reset, as the actor does for a human reset). Every store call carries the simulated clock, so
the waits recorded in the store are in simulated seconds.

At --noise 0.3 --stall-p 0.05 (31 requests per robot-hour) four robots ask for about
one person-hour of 30-s answers per hour: the operator is saturated, waits grow with the
window and the robots hold for most of it (measured: 64% of robot time). The defaults
(--noise 0.2 --stall-p 0.02) are a lighter load one person can keep up with.

Metrics (the issue's names):
- requests_per_robot_hour: requests opened / (robots x simulated hours).
- wait_p50_s, wait_p99_s: each answered request's `waited_s` from the store (answered -
  opened: time in the queue plus the response time); `open_at_end` counts the unanswered.
- success_rate: successful / all episodes of the fleet over the window (and per robot);
  waiting_fraction: the share of robot time spent holding for the operator.

    python -m benchmarks.bench_fleet_attention       # 4 robots x 15 simulated min (~5 min)
    python -m benchmarks.bench_fleet_attention --hours 1 --response-s 60
    python -m benchmarks.bench_fleet_attention --quick  # smoke test, not recorded

The world steps about 100 control periods per second on one core of a 2-core machine, so
4 robots x 15 simulated minutes take about five minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.results import append_result
from robolearn.actionspace import ActionScale
from robolearn.actor.reset_free import (
    DirectionScheduler,
    ProgressMonitor,
)
from robolearn.actor.reset_free_session import HOME_TOL_RAD, LIFT_STEP_M, STILL_M
from robolearn.config import SafetyConfig
from robolearn.config.reset_free import ResetFreeConfig
from robolearn.hardware.sim.driver import object_state
from robolearn.safety import SafetyFilter
from robolearn.sim import PandaSim
from robolearn.sim.model import HOME_Q_RAD
from robolearn.store import Store
from robolearn.store.operator_requests import (
    list_requests,
    open_request,
    request_queue,
    resolve_request,
)

CONTROL_HZ = 10.0
TICK_S = 1.0 / CONTROL_HZ
POLL_TICKS = 2  # a holding robot checks the store every 0.2 s, as reset_free.request_poll_s


@dataclass
class Clock:
    """Simulated time, as a UTC datetime the store records."""

    start: dt.datetime
    ticks: int = 0

    @property
    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.ticks * TICK_S)


@dataclass
class Robot:
    name: str
    sim: PandaSim
    scheduler: DirectionScheduler
    monitor: ProgressMonitor
    rng: np.random.Generator
    episodes: int = 0
    successes: int = 0
    requests: int = 0
    steps: int = 0
    waiting_ticks: int = 0
    waiting_for: int | None = None  # the open request's id
    seed: int = 0
    outcomes: list[bool] = field(default_factory=list)


class Fleet:
    def __init__(self, args: argparse.Namespace, store: Store, run_id: int) -> None:
        self.args = args
        self.store = store
        self.run_id = run_id
        self.rf = ResetFreeConfig(
            enabled=True, forward_task="drawer_open", backward_task="drawer_close",
            home_between_episodes=True, max_retries=3, escalate_after_failures=25,
            stuck_steps=args.stuck_steps, on_stuck="operator")
        self.safety_cfg = SafetyConfig()
        self.safety = SafetyFilter(self.safety_cfg, ActionScale())
        self.clock = Clock(dt.datetime.now(dt.UTC).replace(microsecond=0))
        self.robots = []
        for i in range(args.robots):
            sim = PandaSim(self.rf.forward_task, render=False)
            seed = args.seed * 1000 + i * 100_000
            sim.reset(seed)
            self.robots.append(Robot(
                f"arm{i}", sim, DirectionScheduler(self.rf),
                ProgressMonitor(self.rf, self.safety_cfg.workspace_min_m,
                                self.safety_cfg.workspace_max_m),
                np.random.default_rng(seed), seed=seed))

    # One control step of one robot (the safety filter, then the sim for one period).
    def _step(self, r: Robot, action: np.ndarray) -> None:
        result = self.safety.filter(action, r.sim.state().ee_pos_m, estop=False)
        assert result.command is not None
        r.sim.apply_command(result.command)
        r.sim.advance(TICK_S)
        r.steps += 1

    def _home(self, r: Robot) -> Iterator[None]:
        """Open the gripper, lift, go home (objects stay): the actor's motion between
        reset-free episodes, one control period per yield."""
        widths: list[float] = []
        while len(widths) < 3 or max(widths[-3:]) - min(widths[-3:]) >= STILL_M:
            self._step(r, np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32))
            widths.append(r.sim.gripper_width())
            yield
        lift_to = r.sim.ee_pos()[2] + self.rf.home_lift_m
        heights = [r.sim.ee_pos()[2]]
        while heights[-1] < lift_to - STILL_M and (
                len(heights) < 3 or max(heights[-3:]) - min(heights[-3:]) >= STILL_M):
            dz = min(lift_to - heights[-1], LIFT_STEP_M)
            self._step(r, np.array([0.0, 0.0, dz / ActionScale.xyz_m, -1.0], dtype=np.float32))
            heights.append(r.sim.ee_pos()[2])
            yield
        r.sim.home()
        for _ in range(int(self.rf.home_timeout_s * CONTROL_HZ)):
            r.sim.advance(TICK_S)
            yield
            state = r.sim.state()
            if (np.max(np.abs(state.joint_pos_rad - HOME_Q_RAD)) < HOME_TOL_RAD
                    and np.max(np.abs(state.joint_vel_rad_s)) < HOME_TOL_RAD):
                return

    def _episode(self, r: Robot) -> Iterator[None]:
        """One episode of the robot's current direction from the world as it is; then the
        scheduler's decision, the request when stuck (held until answered), the next start."""
        r.monitor.start_episode()
        stall = r.rng.random() < self.args.stall_p
        success, reason = False, "step_limit"
        for _ in range(self.args.episode_steps):
            if stall:
                action = np.zeros(4, dtype=np.float32)
            else:
                action = r.sim.expert_action() + r.rng.normal(0.0, self.args.noise, 4)
                action = np.clip(action, -1.0, 1.0).astype(np.float32)
            self._step(r, action)
            yield
            success = bool(r.sim.success())
            stuck = r.monitor.update(float(success), r.sim.ee_pos(), object_state(r.sim))
            if success:
                reason = "success"
                break
            if stuck is not None:
                reason = stuck
                break
        r.episodes += 1
        r.successes += int(success)
        r.outcomes.append(success)
        if success:
            r.monitor.reset()
        decision = r.scheduler.after_episode(success, reason, r.monitor.moved_objects)
        if decision.escalate:
            with self.store.session() as db:
                rec = open_request(db, self.run_id, decision.reason,
                                   f"{decision.reason} during {decision.direction}",
                                   robot=r.name, now=self.clock.now)
                db.commit()
            r.requests += 1
            r.waiting_for = rec.id
            while r.waiting_for is not None:  # holds: no step, no command
                r.waiting_ticks += 1
                yield
            r.scheduler.resolved()
            r.monitor.reset()
            r.seed += 1
            r.sim.continue_episode(r.scheduler.task)
            r.sim.reset(r.seed)  # the human reset, emulated by the sim's reset
            return
        r.sim.continue_episode(decision.task)
        yield from self._home(r)
        if r.sim.success():  # already done where the world stands: the other one runs
            r.sim.continue_episode(r.scheduler.skip_done().task)

    def _life(self, r: Robot) -> Iterator[None]:
        while True:
            yield from self._episode(r)

    def _poll(self) -> None:
        """Holding robots see their request closed (the actor polls the store)."""
        waiting = {r.waiting_for: r for r in self.robots if r.waiting_for is not None}
        if not waiting:
            return
        with self.store.session() as db:
            still_open = {q.id for q in request_queue(db, self.run_id)}
        for rid, r in waiting.items():
            if rid not in still_open:
                r.waiting_for = None

    def run(self, robot_hours: float) -> dict[str, Any]:
        ticks = int(robot_hours * 3600 * CONTROL_HZ)
        lives = [self._life(r) for r in self.robots]
        busy_until: int | None = None  # the operator's current request ends at this tick
        taking: int | None = None
        response_ticks = round(self.args.response_s * CONTROL_HZ)
        t0 = time.monotonic()
        for tick in range(ticks):
            self.clock.ticks = tick
            if taking is not None and busy_until is not None and tick >= busy_until:
                with self.store.session() as db:
                    resolve_request(db, taking, "human_reset", None, now=self.clock.now)
                    db.commit()
                taking = None
            if taking is None:
                with self.store.session() as db:
                    queue = request_queue(db, self.run_id, limit=1)
                if queue:  # the head of the queue: most urgent, then oldest
                    taking, busy_until = queue[0].id, tick + response_ticks
            if tick % POLL_TICKS == 0:
                self._poll()
            for life in lives:
                next(life)
            if tick and tick % (600 * CONTROL_HZ) == 0:
                print(f"  {tick / CONTROL_HZ / 60:.0f} sim min: "
                      f"{sum(r.requests for r in self.robots)} requests, "
                      f"{time.monotonic() - t0:.0f} s", flush=True)
        self.clock.ticks = ticks
        return self._metrics(ticks, time.monotonic() - t0)

    def _metrics(self, ticks: int, wall_s: float) -> dict[str, Any]:
        with self.store.session() as db:
            every = list_requests(db, run_id=self.run_id, status=None, limit=100_000)
        waits = np.array([r.waited_s() for r in every if r.resolved_at is not None])
        hours = ticks / CONTROL_HZ / 3600
        episodes = sum(r.episodes for r in self.robots)

        def pct(q: float) -> float | None:
            return round(float(np.percentile(waits, q)), 1) if waits.size else None

        return {
            "robots": len(self.robots),
            "sim_hours_per_robot": round(hours, 3),
            "requests": len(every),
            "requests_per_robot_hour": round(len(every) / (hours * len(self.robots)), 2),
            "wait_p50_s": pct(50), "wait_p99_s": pct(99),
            "wait_max_s": round(float(waits.max()), 1) if waits.size else None,
            "answered": int(waits.size), "open_at_end": len(every) - int(waits.size),
            "success_rate": round(sum(r.successes for r in self.robots) / episodes, 4)
            if episodes else None,
            "episodes": episodes,
            "per_robot": {r.name: {
                "episodes": r.episodes, "requests": r.requests,
                "success_rate": round(r.successes / r.episodes, 4) if r.episodes else None,
                "waiting_fraction": round(r.waiting_ticks / ticks, 4)}
                for r in self.robots},
            "waiting_fraction": round(sum(r.waiting_ticks for r in self.robots)
                                      / (ticks * len(self.robots)), 4),
            "wall_s": round(wall_s, 1),
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--robots", type=int, default=4)
    p.add_argument("--hours", type=float, default=0.25,
                   help="simulated hours each robot practises (the window)")
    p.add_argument("--response-s", type=float, default=30.0,
                   help="the operator's fixed time from taking a request to answering it")
    p.add_argument("--noise", type=float, default=0.2,
                   help="std of the Gaussian noise on the expert's actions (units of the "
                   "action range)")
    p.add_argument("--stall-p", type=float, default=0.02,
                   help="probability an episode's policy stalls (holds still throughout)")
    p.add_argument("--episode-steps", type=int, default=80)
    p.add_argument("--stuck-steps", type=int, default=40,
                   help="reset_free.stuck_steps: steps without progress that count as stuck")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="2 robots, 2 simulated minutes; printed, never recorded")
    args = p.parse_args(argv)
    if args.quick:
        args.robots, args.hours = 2, 2 / 60
    # Every request is logged as a warning (right for a run); here they are the workload.
    logging.getLogger("robolearn.store.operator_requests").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench_fleet_attention_") as tmp:
        with Store.open(Path(tmp) / "data") as store:
            run_id = store.create_run("fleet_attention", {})
            fleet = Fleet(args, store, run_id)
            print(f"fleet_attention: {args.robots} robots x {args.hours} simulated h, "
                  f"operator response {args.response_s} s", flush=True)
            metrics = fleet.run(args.hours)
    context = {"robots": args.robots, "hours": args.hours, "response_s": args.response_s,
               "noise": args.noise, "stall_p": args.stall_p,
               "episode_steps": args.episode_steps, "stuck_steps": args.stuck_steps,
               "seed": args.seed, "task": "drawer_open<->drawer_close",
               "operator": "one person, fixed response time, head of request_queue",
               "clock": "simulated, 10 Hz"}
    if args.quick:
        print({"benchmark": "fleet_attention", "metrics": metrics, "context": context})
        return metrics
    record = append_result("fleet_attention", metrics, **context)
    print(record)
    return metrics


if __name__ == "__main__":
    main()
