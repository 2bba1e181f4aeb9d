"""Reset-free benchmark: drawer_open <-> drawer_close from states on the CPU, against a
reset-every-episode baseline at the same number of environment steps.

Both modes train ONE CQN agent conditioned on the direction (a one-hot appended to the
low-dim state, as the actor does in reset-free runs; the layout is the learner's own,
`robolearn.learn.observation.state_spec`, object offsets from the hand included) from the
same scripted demos of both directions and a sparse success reward: a head start of
--pretrain-updates updates on the demos alone, then one update per --update-every
environment steps. The loop is
synchronous and in-process (sim stepped directly, actions through the same safety filter as
on the robot), as in bench_learning.py, so it measures sample efficiency and human effort in
simulated time, not the real-time system.

- reset_free: one world for the whole run. The actor's own decision logic
  (`robolearn.actor.reset_free`: DirectionScheduler + ProgressMonitor) picks each episode's
  direction and detects a stuck robot; an escalation is resolved by an emulated human reset
  (the sim's reset) and counted.
- reset_every_episode: the baseline; every episode starts from the direction's reset state,
  directions alternate. It needs one (scripted) reset per episode, which a real robot does
  not have.

Reported per mode: success rate of each direction over time (training episodes, in windows
of simulated minutes), final greedy evaluations of each direction (reset-free mode: in the
training world, chained by the scheduler; both modes: from re-randomised reset states), human
resets (escalations) and interventions per simulated hour (no teleop runs here, so
interventions are 0 by construction; the count is kept so real-run numbers compare).

Full run (the issue's two simulated hours at 10 Hz = 72,000 steps). At the reference's critic
(hidden 512), batch and one update per step it takes about 2.8 hours of this 2-core CPU per
mode, so it runs in sittings that each end after --max-wall-s and go on from a checkpoint when
the same command runs again. The recorded runs used a lighter learner, both modes at once, one
core each (0.07 s per step, 80-90 minutes per mode, plus about 7 minutes of head start):

    python -m benchmarks.bench_reset_free --steps 72000 --window-min 3 --threads 1 \
        --hidden-dim 256 --update-every 2 --stddev 0.1 --modes reset_free \
        --checkpoint-dir DIR

(and the same with --modes reset_every_episode for the baseline). The result line is
appended once the steps are done.

Floor (issue 7): >= 80% success in both directions by the end, <= 1 escalation per
simulated hour (reset-free mode).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.results import append_result
from robolearn.actionspace import ActionScale
from robolearn.actor.reset_free import (
    BACKWARD,
    DIRECTIONS,
    FORWARD,
    DirectionScheduler,
    ProgressMonitor,
    ResetFreeStats,
    direction_features,
)
from robolearn.actor.reset_free_session import HOME_TOL_RAD, LIFT_STEP_M, STILL_M
from robolearn.config import SafetyConfig
from robolearn.config.cqn import CQNConfig
from robolearn.config.reset_free import ResetFreeConfig
from robolearn.hardware.sim.driver import object_state
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.cqn.cpu import keep_freed_memory
from robolearn.learn.observation import low_dim_of, state_spec
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer
from robolearn.safety import SafetyFilter
from robolearn.sim import PandaSim
from robolearn.sim.model import HOME_Q_RAD

CONTROL_HZ = 10.0
FLOOR_SUCCESS, FLOOR_ESCALATIONS_PER_HOUR = 0.8, 1.0


class Trainer:
    """One direction-conditioned CQN agent and its replay, shared by both directions."""

    def __init__(self, rf: ResetFreeConfig, seed: int, cqn: CQNConfig,
                 update_every: int = 1) -> None:
        self.rf = rf
        self.batch = cqn.batch_size
        self.update_every = update_every
        self.tasks = {FORWARD: rf.forward_task, BACKWARD: rf.backward_task}
        self.sim = PandaSim(rf.forward_task, render=False)
        self.sim.reset(seed)
        self.eval_sim = PandaSim(rf.forward_task, render=False)
        self.safety_cfg = SafetyConfig()
        self.safety = SafetyFilter(self.safety_cfg, ActionScale())
        spec = self.spec = state_spec(rf.forward_task, directed=True)
        torch.manual_seed(seed)
        self.agent = CQNAgent(cqn, spec, 4, "cpu")
        kw = {"nstep": cqn.nstep, "discount": cqn.discount}
        self.online = ReplayBuffer(spec, 4, 200_000, seed=seed, **kw)
        self.demos = ReplayBuffer(spec, 4, 50_000, seed=seed + 1, is_demo=True, **kw)
        self.replay = DemoAndOnline(self.online, self.demos, cqn.batch_size,
                                    cqn.demo_batch_size)

    def low_dim(self, direction: str) -> np.ndarray:
        state = np.concatenate([object_state(self.sim), direction_features(direction)])
        return low_dim_of(self.spec, self.sim.proprio(), state)

    def step(self, action: np.ndarray) -> np.ndarray:
        result = self.safety.filter(action, self.sim.state().ee_pos_m, estop=False)
        assert result.command is not None
        self.sim.apply_command(result.command)
        self.sim.advance(1.0 / CONTROL_HZ)
        return result.action

    def episode(self, direction: str, policy: str, max_steps: int, *, env_step: int = 0,
                record: bool = True, update: bool = False,
                monitor: ProgressMonitor | None = None) -> tuple[bool, int, str]:
        """Run one episode from the world as it is; returns (success, steps, end_reason)."""
        self.agent.reset()
        if monitor is not None:
            monitor.start_episode()
        obs = self.low_dim(direction)
        if record:
            self.replay.start_episode(None, obs)
        for t in range(max_steps):
            if policy == "expert":
                a = self.sim.expert_action()
            else:
                a = self.agent.act(None, obs, env_step + t, eval_mode=(policy == "greedy"))
            sent = self.step(a)
            obs = self.low_dim(direction)
            success = bool(self.sim.success())
            stuck = (monitor.update(float(success), self.sim.ee_pos(), object_state(self.sim))
                     if monitor is not None else None)
            last = success or stuck is not None or t == max_steps - 1
            if record:
                self.replay.add(sent, float(success), None, obs, terminated=success,
                                truncated=last and not success)
            if (update and len(self.online) >= self.batch
                    and (env_step + t) % self.update_every == 0):
                self.agent.update(self.replay.sample())
            if success:
                return True, t + 1, "success"
            if stuck is not None:
                return False, t + 1, stuck
        return False, max_steps, "step_limit"

    def home_arm(self) -> None:
        """What the driver's `home` does between reset-free episodes: gripper open, joints to
        home (objects stay), in simulated time; bounded like the actor's wait."""
        widths: list[float] = []
        while len(widths) < 3 or max(widths[-3:]) - min(widths[-3:]) >= STILL_M:
            self.step(np.array([0.0, 0.0, 0.0, -1.0]))  # stay, gripper open
            widths.append(self.sim.gripper_width())
        lift_to = self.sim.ee_pos()[2] + self.rf.home_lift_m
        heights = [self.sim.ee_pos()[2]]
        while heights[-1] < lift_to - STILL_M and (
                len(heights) < 3 or max(heights[-3:]) - min(heights[-3:]) >= STILL_M):
            dz = min(lift_to - heights[-1], LIFT_STEP_M)
            self.step(np.array([0.0, 0.0, dz / ActionScale.xyz_m, -1.0]))
            heights.append(self.sim.ee_pos()[2])
        self.sim.home()
        for _ in range(int(self.rf.home_timeout_s * CONTROL_HZ)):
            self.sim.advance(1.0 / CONTROL_HZ)
            state = self.sim.state()
            if (np.max(np.abs(state.joint_pos_rad - HOME_Q_RAD)) < HOME_TOL_RAD
                    and np.max(np.abs(state.joint_vel_rad_s)) < HOME_TOL_RAD):
                return

    def start(self, direction: str, seed: int | None) -> None:
        """A reset to `direction`'s start state (seed), or a task switch (None)."""
        task = self.tasks[direction]
        if seed is None:
            self.sim.continue_episode(task)
            if self.rf.home_between_episodes:
                self.home_arm()
            return
        if self.sim.task != task:
            self.sim.continue_episode(task)
        self.sim.reset(seed)


def collect_demos(tr: Trainer, per_direction: int, max_steps: int, seed: int) -> None:
    """Chained expert episodes (forward, backward, ...) in one world: demos from the start
    states a reset-free run meets; a failed one triggers a reset and is not kept."""
    got = dict.fromkeys(DIRECTIONS, 0)
    tr.start(FORWARD, seed)
    direction, k = FORWARD, 0
    while min(got.values()) < per_direction:
        ok, _, _ = tr.episode(direction, "expert", max_steps)
        got[direction] += ok
        k += 1
        direction = BACKWARD if direction == FORWARD else FORWARD
        tr.start(direction, None if ok else seed + 10_000 + k)


def pretrain(tr: Trainer, updates: int) -> None:
    """Updates on the demos alone before the first practice episode: what the learner
    process does with learner.pretrain_updates while the actor holds the arm still."""
    for _ in range(updates):
        tr.agent.update(tr.replay.sample())


def evaluate_in_place(tr: Trainer, rf: ResetFreeConfig, episodes: int, max_steps: int,
                      seed: int) -> dict[str, Any]:
    """Greedy success of each direction where the robot practised: the training world as the
    run left it, episodes chained reset-free by the same scheduler (switch on success, retry
    on failure, arm homed in between), until each direction has had `episodes` tries.
    Escalations still cost an emulated human reset, counted. Run after training."""
    scheduler = DirectionScheduler(rf)
    monitor = ProgressMonitor(rf, tr.safety_cfg.workspace_min_m, tr.safety_cfg.workspace_max_m)
    tries = {d: [0, 0] for d in DIRECTIONS}  # [episodes, successes]
    direction, escalations, k = scheduler.direction, 0, 0
    tr.start(direction, None)
    while min(t[0] for t in tries.values()) < episodes and k < 8 * episodes:
        ok, _, reason = tr.episode(direction, "greedy", max_steps, record=False,
                                   monitor=monitor)
        tries[direction][0] += 1
        tries[direction][1] += int(ok)
        k += 1
        direction, escalated, _ = next_start(tr, scheduler, monitor, ok, reason,
                                             reset_seed=4_000_000 + seed * 1000 + k)
        escalations += escalated
    return {**{d: (t[1] / t[0] if t[0] else None) for d, t in tries.items()},
            "episodes": {d: t[0] for d, t in tries.items()}, "escalations": escalations}


def evaluate(tr: Trainer, episodes: int, max_steps: int, seed: int) -> dict[str, float]:
    """Greedy success of each direction from reset states (the cabinet pose re-randomised),
    in a second world, so evaluation never disturbs the training world. A reset-free run
    practises one cabinet pose, so this measures generalisation beyond what it practised."""
    train_sim, tr.sim = tr.sim, tr.eval_sim
    try:
        out = {}
        for direction in DIRECTIONS:
            wins = 0
            for i in range(episodes):
                tr.start(direction, 3_000_000 + seed * 1000 + i)
                wins += tr.episode(direction, "greedy", max_steps, record=False)[0]
            out[direction] = wins / episodes
    finally:
        tr.sim = train_sim
    return out


@dataclass
class Run:
    """Everything one mode's training carries from step to step: what a checkpoint holds
    (with the torch RNG), so a run longer than one sitting resumes exactly where it was."""

    mode: str
    trainer: Trainer
    scheduler: DirectionScheduler
    monitor: ProgressMonitor
    stats: ResetFreeStats
    ep_seed: int
    direction: str = FORWARD
    env_steps: int = 0
    resets: int = 1
    skipped: int = 0
    wall_s: float = 0.0  # training wall time, all sittings together
    sittings: int = 1
    windows: list[dict[str, Any]] = field(default_factory=list)
    current: dict[str, list[int]] = field(  # [episodes, successes] in this window
        default_factory=lambda: {d: [0, 0] for d in DIRECTIONS})
    result: dict[str, Any] | None = None  # set once the mode has finished and evaluated
    recorded: bool = False  # its result line is in benchmarks/results.jsonl


# Settings a resumed run must share with the run that wrote the checkpoint.
SAME_ON_RESUME = ("steps", "episode_steps", "demos", "seed", "hidden_dim", "batch",
                  "update_every", "precision", "stddev", "nstep", "window_min",
                  "pretrain_updates")


def new_run(mode: str, rf: ResetFreeConfig, args: argparse.Namespace, cqn: CQNConfig) -> Run:
    tr = Trainer(rf, args.seed, cqn, args.update_every)
    collect_demos(tr, args.demos, args.episode_steps, 1_000_000 + args.seed)
    pretrain(tr, args.pretrain_updates)
    run = Run(mode, tr, DirectionScheduler(rf),
              ProgressMonitor(rf, tr.safety_cfg.workspace_min_m, tr.safety_cfg.workspace_max_m),
              ResetFreeStats(CONTROL_HZ), ep_seed=args.seed * 100_000)
    tr.start(FORWARD, run.ep_seed)
    return run


def save_checkpoint(run: Run, path: Path, args: argparse.Namespace) -> None:
    """Atomically: a crash while writing leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"run": run, "torch_rng": torch.get_rng_state(),
                "settings": {k: getattr(args, k) for k in SAME_ON_RESUME}}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, args: argparse.Namespace) -> Run:
    saved = torch.load(path, weights_only=False)  # our own file, written by save_checkpoint
    wanted = {k: getattr(args, k) for k in SAME_ON_RESUME}
    if saved["settings"] != wanted:
        differ = {k: (saved["settings"].get(k), v) for k, v in wanted.items()
                  if saved["settings"].get(k) != v}
        raise SystemExit(f"{path}: written with other settings (checkpoint, now): {differ}")
    torch.set_rng_state(saved["torch_rng"])
    run: Run = saved["run"]
    run.sittings += 1
    print(f"{run.mode}: resumed from {path} at {run.env_steps} steps "
          f"({run.wall_s:.0f} s of training so far)", flush=True)
    return run


def train(run: Run, args: argparse.Namespace, checkpoint: Path | None) -> bool:
    """Practise until `args.steps` environment steps or this sitting's wall budget; True
    when the step count is reached. Checkpoints every `args.checkpoint_every_s`."""
    tr, mode = run.trainer, run.mode
    window_steps = int(args.window_min * 60 * CONTROL_HZ)
    t0 = last_save = time.monotonic()
    wall_at_start = run.wall_s
    while run.env_steps < args.steps and time.monotonic() - t0 < args.max_wall_s:
        ok, n, reason = tr.episode(run.direction, "explore", args.episode_steps,
                                   env_step=run.env_steps, update=True,
                                   monitor=run.monitor if mode == "reset_free" else None)
        run.env_steps += n
        run.stats.record_episode(run.direction, ok, n)
        run.current[run.direction][0] += 1
        run.current[run.direction][1] += int(ok)
        run.wall_s = wall_at_start + time.monotonic() - t0
        if run.env_steps // window_steps > len(run.windows):
            run.windows.append({"sim_min": round(run.env_steps / CONTROL_HZ / 60, 1), **{
                f"{d}_success": (c[1] / c[0] if c[0] else None)
                for d, c in run.current.items()}})
            run.current = {d: [0, 0] for d in DIRECTIONS}
            print(f"{mode}: {run.env_steps} steps, {run.windows[-1]}, escalations "
                  f"{run.stats.escalations}, {run.wall_s:.0f} s", flush=True)
        run.ep_seed += 1
        if mode == "reset_every_episode":
            run.direction = BACKWARD if run.direction == FORWARD else FORWARD
            tr.start(run.direction, run.ep_seed)
            run.resets += 1
        else:
            next_episode_reset_free(run, ok, reason)
        if checkpoint is not None and time.monotonic() - last_save > args.checkpoint_every_s:
            save_checkpoint(run, checkpoint, args)
            last_save = time.monotonic()
    return run.env_steps >= args.steps


def next_start(tr: Trainer, scheduler: DirectionScheduler, monitor: ProgressMonitor, ok: bool,
               reason: str, reset_seed: int) -> tuple[str, bool, bool]:
    """The actor's decision after a reset-free episode, carried out in the world: switch on
    success, retry otherwise, escalate when stuck (the emulated person resets the world to
    `reset_seed`'s start state). Returns (next direction, escalated, skipped because already
    done)."""
    if ok:
        monitor.reset()
    decision = scheduler.after_episode(ok, reason, monitor.moved_objects)
    if decision.escalate:
        scheduler.resolved()
        monitor.reset()
        tr.start(decision.direction, reset_seed)
        return decision.direction, True, False
    tr.start(decision.direction, None)
    if tr.sim.success():
        # Already done where the world stands (the other direction failed to undo it):
        # switch back without a free success, as the actor does.
        direction = scheduler.skip_done().direction
        tr.start(direction, None)
        return direction, False, True
    return decision.direction, False, False


def next_episode_reset_free(run: Run, ok: bool, reason: str) -> None:
    """`next_start` for a training run, counting escalations (human resets) and skips."""
    run.direction, escalated, skipped = next_start(
        run.trainer, run.scheduler, run.monitor, ok, reason, reset_seed=run.ep_seed)
    run.stats.escalations += escalated
    run.stats.human_resets += escalated
    run.resets += escalated
    run.skipped += skipped


def finish(run: Run, rf: ResetFreeConfig, args: argparse.Namespace) -> dict[str, Any]:
    tr = run.trainer
    in_place = (evaluate_in_place(tr, rf, args.eval_episodes, args.episode_steps, args.seed)
                if run.mode == "reset_free" else None)
    final = evaluate(tr, args.eval_episodes, args.episode_steps, args.seed)
    summary = run.stats.summary()
    return {
        "env_steps": run.env_steps, "sim_hours": summary["hours"], "windows": run.windows,
        "final_greedy_success": final, "greedy_in_place": in_place, "training_success": {
            d: summary[f"{d}_success_rate"] for d in DIRECTIONS},
        "episodes": {d: summary[f"{d}_episodes"] for d in DIRECTIONS},
        "resets": run.resets, "escalations": run.stats.escalations,
        "skipped_already_done": run.skipped,
        "human_resets_per_hour": summary["human_resets_per_hour"],
        "interventions_per_hour": summary["interventions_per_hour"],
        "wall_s": round(run.wall_s, 1), "sittings": run.sittings,
    }


def checkpoint_path(args: argparse.Namespace, mode: str) -> Path | None:
    return (Path(args.checkpoint_dir) / f"{mode}_seed{args.seed}.pt"
            if args.checkpoint_dir else None)


def run_mode(mode: str, rf: ResetFreeConfig, args: argparse.Namespace,
             cqn: CQNConfig) -> Run:
    """One mode, from its checkpoint when there is one. Its `result` stays None when this
    sitting's wall budget ran out first (the checkpoint then holds the run; without a
    checkpoint directory the partial run is evaluated instead)."""
    checkpoint = checkpoint_path(args, mode)
    if checkpoint is not None and checkpoint.exists():
        run = load_checkpoint(checkpoint, args)
    else:
        run = new_run(mode, rf, args, cqn)
    if run.result is None:
        reached = train(run, args, checkpoint)
        if not reached and checkpoint is not None:
            save_checkpoint(run, checkpoint, args)
            print(f"{mode}: wall budget spent at {run.env_steps} steps; checkpoint "
                  f"{checkpoint}: run again with the same flags to go on", flush=True)
            return run
        run.result = finish(run, rf, args)
        if checkpoint is not None:
            save_checkpoint(run, checkpoint, args)
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=72_000,
                   help="environment steps per mode (72,000 = two simulated hours at 10 Hz)")
    p.add_argument("--episode-steps", type=int, default=50)
    p.add_argument("--demos", type=int, default=10, help="expert demos per direction")
    p.add_argument("--eval-episodes", type=int, default=20, help="per direction, at the end")
    p.add_argument("--window-min", type=float, default=10.0,
                   help="success-over-time window, simulated minutes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", nargs="+", default=["reset_free", "reset_every_episode"],
                   choices=["reset_free", "reset_every_episode"])
    p.add_argument("--hidden-dim", type=int, default=CQNConfig().hidden_dim,
                   help="critic MLP width (256 makes the two-hour run fit a CPU)")
    p.add_argument("--batch", type=int, default=CQNConfig().batch_size,
                   help="online and demo samples per update, each")
    p.add_argument("--update-every", type=int, default=1,
                   help="one CQN update every N environment steps (4 makes the two-hour "
                   "run fit a CPU core in about an hour)")
    p.add_argument("--pretrain-updates", type=int, default=4000,
                   help="CQN updates on the demos before the first practice episode")
    p.add_argument("--max-wall-s", type=float, default=float("inf"),
                   help="stop training after this much wall time in this sitting: with "
                   "--checkpoint-dir the run is saved to go on later, without it what was "
                   "reached is evaluated and recorded (full_length false)")
    p.add_argument("--stddev", type=float, default=CQNConfig().stddev,
                   help="exploration noise (CQNConfig.stddev; the reference RLBench value is "
                   "0.01, its DMC value 0.1)")
    p.add_argument("--nstep", type=int, default=CQNConfig().nstep,
                   help="n of the n-step return (CQNConfig.nstep; the reference RLBench value "
                   "is 1, its DMC value 3)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="CQN network precision (bf16 autocast: 1.7x faster updates here, "
                   "learning parity with fp32 not shown; see CQNConfig.precision)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="keep each mode's run in DIR/<mode>_seed<N>.pt: saved every "
                   "--checkpoint-every-s and when --max-wall-s is spent, resumed by running "
                   "the same command again; the result is recorded once the steps are done")
    p.add_argument("--checkpoint-every-s", type=float, default=600.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    rf = ResetFreeConfig(enabled=True, forward_task="drawer_open", backward_task="drawer_close")
    cqn = CQNConfig(frame_stack=1, hidden_dim=args.hidden_dim, batch_size=args.batch,
                    demo_batch_size=args.batch, precision=args.precision,
                    stddev=args.stddev, nstep=args.nstep)
    runs = {mode: run_mode(mode, rf, args, cqn) for mode in args.modes}
    if any(r.result is None for r in runs.values()):
        return  # to be continued from the checkpoints; nothing recorded yet
    if all(r.recorded for r in runs.values()):
        print("these runs are finished and already recorded in benchmarks/results.jsonl")
        return
    results = {m: r.result for m, r in runs.items() if r.result is not None}
    rfm = results.get("reset_free")
    floor_met = None
    if rfm is not None:
        # The measure: each direction's success rate over time (practice episodes,
        # per window); "by the end" = the last window. Greedy numbers are reported beside it.
        hours = rfm["sim_hours"] or 0.0
        last = rfm["windows"][-1] if rfm["windows"] else {}
        floor_met = (all((last.get(f"{d}_success") or 0.0) >= FLOOR_SUCCESS for d in DIRECTIONS)
                     and (rfm["escalations"] / hours if hours else 0.0)
                     <= FLOOR_ESCALATIONS_PER_HOUR)
    rec = append_result("reset_free_drawer", results, steps=args.steps,
                        episode_steps=args.episode_steps, demos_per_direction=args.demos,
                        eval_episodes=args.eval_episodes, seed=args.seed,
                        observation="state+ee_offsets",
                        device="cpu", threads=torch.get_num_threads(),
                        hidden_dim=args.hidden_dim, batch=args.batch,
                        update_every=args.update_every, precision=args.precision,
                        stddev=args.stddev, nstep=args.nstep,
                        pretrain_updates=args.pretrain_updates, drawer_stops="stiff",
                        home_between_episodes=rf.home_between_episodes,
                        floor={"success": FLOOR_SUCCESS,
                               "escalations_per_hour": FLOOR_ESCALATIONS_PER_HOUR},
                        floor_met=floor_met,
                        full_length=min(r["env_steps"] for r in results.values()) >= 72_000,
                        max_wall_s=None if args.max_wall_s == float("inf") else args.max_wall_s)
    for mode, run in runs.items():
        run.recorded = True
        if (path := checkpoint_path(args, mode)) is not None:
            save_checkpoint(run, path, args)
    print(rec)


if __name__ == "__main__":
    main()
