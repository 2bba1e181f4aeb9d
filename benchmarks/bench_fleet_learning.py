"""Fleet learning: pick_cube learned by 4 sim robots against 1 robot at the same total env
steps; greedy success against wall-clock and against env steps.

Each fleet size runs as `robolearn up` runs a fleet (robolearn.processes.ProcessGroup, the
same config as `benchmarks.bench_fleet`: sim robots on states at 10 Hz, headless, make run's
learner), from the same 20 scripted demos (collected once through the real driver and
actor, copied into each run's data dir), until the learner has received `--env-steps`
transitions from all robots together. While it runs, the benchmark keeps the learner's
published weights about `--points` times over the run's expected length (the stream every
actor follows, with the env steps and updates they were trained on), and the last. After
the run, with the run's processes gone, each kept version is evaluated greedily on the same
`--eval-episodes` sim scenes, in this process (the sim stepped directly, actions through the
run's safety filter), so evaluation never competes with the run for the cores and costs it
no env steps.

    python -m benchmarks.bench_fleet_learning                   # 1 and 4 robots, 3,000 steps
    python -m benchmarks.bench_fleet_learning --robots 1,2,4 --env-steps 4000
    python -m benchmarks.bench_fleet_learning --quick           # smoke test, not recorded

The result is a `fleet` line whose `metrics.learning` holds, per fleet size, the curve
`[[wall_s, env_steps, updates, greedy_success], ...]` (wall_s from the first robot's first
step), the wall-clock to the env-step budget and the updates the learner made in it. Robots
add env steps per second; on a machine where the learner is already the bottleneck they do
not add updates, and the curves show what that costs per env step and what it buys per
second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.bench_fleet import (
    DEFAULT_CONFIG,
    REPO,
    Listener,
    fleet_config,
    fleet_sizes,
    wait_quiet,
)
from benchmarks.results import append_result
from robolearn.config import RunConfig, parse_config
from robolearn.config.fleet import robot_views
from robolearn.hardware.sim.driver import object_state
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.observation import FrameStacker, obs_spec_for
from robolearn.learn.weights import unpack_policy
from robolearn.processes import ProcessGroup, use_private_addresses
from robolearn.protocol.messages import Weights
from robolearn.protocol.observation import Observation
from robolearn.safety import SafetyFilter
from robolearn.sim import PandaSim

EPISODE_STEPS = {"reach": 50, "pick_cube": 100}
EVAL_SEED = 2_000_000  # scenes no demo or training episode starts from


# -- demos ----------------------------------------------------------------------------------
def collect_demos(cfg: RunConfig, n: int, into: Path, log_level: str) -> Path:
    """`n` successful scripted demos of the fleet's task, recorded through a sim driver and
    an actor with the fleet's observation layout, into the data dir `into`."""
    from robolearn.cli.demos import collect

    raw = cfg.model_dump(mode="json")
    with tempfile.TemporaryDirectory(prefix="rl-fleet-demos-") as sock_dir:
        use_private_addresses(raw, Path(sock_dir))
        raw["name"] = "fleet_learning_demos"
        raw["data_dir"] = str(into)
        raw["actor"].update(policy={"kind": "expert"}, record=True)
        raw["learner"]["enabled"] = False
        if collect(parse_config(raw), n, 3 * n, threading.Event(), log_level) != 0:
            raise RuntimeError(f"fewer than {n} successful {cfg.robot.task} demos in "
                               f"{3 * n} attempts")
    return into


# -- one fleet size -------------------------------------------------------------------------
def run_to_budget(cfg: RunConfig, robots: int, env_steps: int, snapshot_every_s: float,
                  start_timeout_s: float, log_level: str) -> dict[str, Any]:
    """Run the fleet until the learner has received `env_steps` transitions; the weights it
    published along the way (one per `snapshot_every_s`, and the last) with their times."""
    group = ProcessGroup(cfg, log_level=log_level)
    listener = Listener(cfg, weights_every_s=snapshot_every_s)
    names = [str(v.robot_name) for v in robot_views(cfg)]
    t_start = time.monotonic()
    try:
        group.start_drivers()
        group.start_learner()
        group.start_actor()
        while True:
            if (done := group.exited()):
                raise RuntimeError(f"fleet of {robots}: process(es) exited: {done}")
            status = listener.latest_status()
            if status is not None and status.env_steps >= env_steps:
                break
            if (status is None or status.env_steps == 0) and \
                    time.monotonic() - t_start > start_timeout_s:
                raise RuntimeError(f"fleet of {robots}: no transition reached the learner in "
                                   f"{start_timeout_s:.0f} s")
            time.sleep(0.2)
        t_end_ns = time.monotonic_ns()
    finally:
        listener.close()  # first: what it kept ends at the budget
        group.stop()
    steps = [s for n in names for s in listener.steps[n]]
    if not steps:
        raise RuntimeError(f"fleet of {robots}: no actor telemetry heard")
    t0_ns = min(s.sent_ns for s in steps)  # the first robot's first step
    kept = list(listener.weights_kept)
    # The learner's newest weights when the budget was reached count as the last point.
    if listener.weights_last is not None and (
            not kept or kept[-1][1].version != listener.weights_last[1].version):
        kept.append(listener.weights_last)
    last_status = listener.latest_status()
    assert last_status is not None
    return {
        "robots": robots,
        "snapshots": [((t - t0_ns) / 1e9, w) for t, w in kept],
        "wall_s_to_budget": round((t_end_ns - t0_ns) / 1e9, 1),
        "up_s": round((t0_ns / 1e9) - t_start, 1),
        "env_steps": last_status.env_steps,
        "updates": last_status.update_step,
        "per_robot_env_steps": {n: (last_status.robots or {}).get(n, {}).get("env_steps")
                                for n in names},
        "utd_held_last": last_status.utd_held,
        "listener_errors": listener.errors,
    }


# -- evaluation -----------------------------------------------------------------------------
class Evaluator:
    """Greedy episodes of a weights version on fixed sim scenes, as the actor would act:
    the run's observation layout, frame stacker and safety filter; the sim stepped at the
    control rate in this process."""

    def __init__(self, cfg: RunConfig, episodes: int) -> None:
        self.cfg = cfg
        self.episodes = episodes
        self.task = cfg.robot.task
        self.sim = PandaSim(self.task, render=False)
        self.spec = obs_spec_for(cfg)
        if self.spec.pixels:
            raise SystemExit("bench_fleet_learning evaluates state policies only")
        self.agent = CQNAgent(cfg.learner.cqn, self.spec, cfg.actor.action_scale.action_dim,
                              "cpu")
        self.stacker = FrameStacker(self.spec, None)
        self.safety = SafetyFilter(cfg.safety, cfg.actor.action_scale)
        self.dt = 1.0 / cfg.actor.control_hz

    def _obs(self) -> dict[str, np.ndarray]:
        s = self.sim.state()
        return Observation(images={}, proprio=self.sim.proprio(),
                           joint_pos=np.asarray(s.joint_pos_rad, dtype=np.float32),
                           privileged=object_state(self.sim).astype(np.float32)).flat()

    def success_rate(self, weights: Weights) -> float:
        self.agent.load_policy_state_dict(unpack_policy(list(weights.layout), weights.blob))
        wins = 0
        for i in range(self.episodes):
            self.sim.reset(EVAL_SEED + i)
            self.agent.reset()
            self.stacker.reset()
            for t in range(self.cfg.actor.episode_steps):
                rgb, low = self.stacker.push(self._obs())
                action = self.agent.act(rgb, low, t, eval_mode=True)
                result = self.safety.filter(action, self.sim.state().ee_pos_m, estop=False)
                assert result.command is not None
                self.sim.apply_command(result.command)
                self.sim.advance(self.dt)
                if self.sim.success():
                    wins += 1
                    break
        return wins / self.episodes


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robots", type=fleet_sizes, default="1,4",
                   help="fleet sizes, comma-separated")
    p.add_argument("--task", choices=sorted(EPISODE_STEPS), default="pick_cube")
    p.add_argument("--env-steps", type=int, default=3000,
                   help="total env steps every fleet size learns from (all robots together)")
    p.add_argument("--demos", type=int, default=20, help="scripted demos every run starts with")
    p.add_argument("--points", type=int, default=8,
                   help="weights versions kept per run, spread over its expected length "
                   "(env steps / (robots x control rate)), each evaluated after the run, "
                   "plus the last; the sim steps about 3.5x faster than real time, so a "
                   "point costs about a minute")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help="the template: its learner and actor settings")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--quiet-wait", type=float, default=120.0,
                   help="s to wait, before each size, for the machine to go idle")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: reach, 2 demos, 300 env steps, 4 eval episodes; printed, "
                   "not appended to the results file")
    args = p.parse_args(argv)
    sizes: list[int] = args.robots
    overrides = list(args.overrides)
    if args.quick:
        args.task, args.demos, args.env_steps, args.eval_episodes = "reach", 2, 300, 4
        args.points = 3
        overrides += ["learner.min_transitions=50", "learner.publish_every=5"]
    overrides.append(f"actor.episode_steps={EPISODE_STEPS[args.task]}")
    # The one small camera is there because a run needs one; a state policy never reads
    # it. A frame late under load must not end an episode here and cost the run steps.
    overrides.append("actor.max_obs_age_ms=1000")
    torch.set_num_threads(1)
    load = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rl-fleet-learning-") as tmp:
        work = Path(tmp)
        template = fleet_config(args.config, overrides, work / "demo-run", 1, args.task)
        print(f"collecting {args.demos} {args.task} demos", flush=True)
        demos = collect_demos(template, args.demos, work / "demos", args.log_level)
        for n in sizes:
            if not args.quick:
                wait_quiet(args.quiet_wait)
            run_dir = work / f"fleet{n}"
            cfg = fleet_config(args.config, overrides, run_dir, n, args.task)
            shutil.copytree(demos, cfg.data_dir)
            print(f"fleet of {n}: learning {args.task} to {args.env_steps} env steps",
                  flush=True)
            snapshot_every_s = args.env_steps / (n * cfg.actor.control_hz) / args.points
            run = run_to_budget(cfg, n, args.env_steps, snapshot_every_s,
                                args.start_timeout, args.log_level)
            run["snapshot_every_s"] = round(snapshot_every_s, 1)
            evaluator = Evaluator(robot_views(cfg)[0], args.eval_episodes)
            curve = []
            for wall_s, w in run.pop("snapshots"):
                success = evaluator.success_rate(w)
                curve.append([round(wall_s, 1), w.env_steps, w.update_step, success])
                print(f"  {n} robot(s): {wall_s:6.0f} s  {w.env_steps:5d} env steps  "
                      f"{w.update_step:5d} updates  success {success:.2f}", flush=True)
            run["curve"] = curve
            run["final_success"] = curve[-1][3] if curve else None
            runs.append(run)
    lcfg = template.learner
    metrics = {"learning": {
        "task": args.task, "env_steps": args.env_steps, "runs": runs,
        "curve_fields": ["wall_s", "env_steps", "updates", "greedy_success"]}}
    context = {
        "mode": "learning", "demos": args.demos, "eval_episodes": args.eval_episodes,
        "points": args.points,
        "config": str(args.config.resolve().relative_to(REPO)
                      if args.config.resolve().is_relative_to(REPO) else args.config),
        "overrides": overrides, "control_hz": template.actor.control_hz,
        "observation": "state", "evaluation": "greedy, in-process sim after the run, "
        "the same scenes for every version",
        "learner": {"utd": lcfg.utd, "threads": lcfg.threads, "nice": lcfg.nice,
                    "hidden_dim": lcfg.cqn.hidden_dim, "batch_size": lcfg.cqn.batch_size,
                    "demo_batch_size": lcfg.cqn.demo_batch_size,
                    "min_transitions": lcfg.min_transitions},
        "load_avg_before": [round(x, 2) for x in load],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    for r in runs:
        print(f"{r['robots']} robot(s): {r['env_steps']} env steps in "
              f"{r['wall_s_to_budget']:.0f} s, {r['updates']} updates, final success "
              f"{r['final_success']}")
    if args.quick:
        print("--quick: not appended to the results file")
        return {"benchmark": "fleet", "metrics": metrics, "context": context}
    return append_result("fleet", metrics, **context)


if __name__ == "__main__":
    main()
