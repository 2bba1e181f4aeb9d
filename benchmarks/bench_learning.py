"""Learning benchmark: CQN from 20 scripted demos and a sparse success reward, on the sim.

Success rate of greedy evaluation episodes against environment steps, per task and seed.
Runs from states on the CPU (proprio + the sim's object positions, the same low-dim vector
the actor sends the learner with `learner.observation: state`). The loop is synchronous and
in-process (sim stepped directly, one CQN update per environment step, as the reference
does), so it measures sample efficiency, not the real-time system; actions pass the same
safety filter as on the robot.

    python -m benchmarks.bench_learning --task reach --steps 5000 --seeds 0 1 2
    python -m benchmarks.bench_learning --task pick_cube --steps 30000 --seeds 0
    python -m benchmarks.bench_learning --quick          # 600 steps of reach, one seed
    python -m benchmarks.bench_learning --critic-streams shared   # the earlier critic trunk

Floors (issue 3): reach >= 90% within 5k steps; pick_cube >= 60% within 30k steps.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.results import append_result
from robolearn.actionspace import ActionScale
from robolearn.config import SafetyConfig
from robolearn.config.cqn import CQNConfig
from robolearn.errors import RewardModelError
from robolearn.hardware.sim.driver import object_state
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.cqn.cpu import keep_freed_memory
from robolearn.learn.observation import low_dim_of, state_spec
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer
from robolearn.safety import SafetyFilter
from robolearn.sim import PandaSim

EPISODE_STEPS = {"reach": 50, "push_cube": 100, "pick_cube": 100, "drawer_open": 100,
                 "drawer_close": 100}
FLOORS = {"reach": (5_000, 0.9), "pick_cube": (30_000, 0.6)}

Judge = Callable[[PandaSim], bool]
"""Success verdict on the sim's current state for recorded (demo and training) episodes:
their reward, termination and demo routing. Default: the sim's own success. Evaluation
episodes always use the sim's success (bench_reward_e2e plugs a learned classifier in). A
judge with a `start_episode()` method has it called before every recorded episode."""


def sim_success(sim: PandaSim) -> bool:
    return bool(sim.success())


class Runner:
    def __init__(self, task: str, seed: int, cqn: CQNConfig, judge: Judge = sim_success,
                 sim: PandaSim | None = None) -> None:
        """sim: a PandaSim of `task` to use (one that renders, for a pixel judge)."""
        self.task = task
        self.judge = judge
        self.sim = sim or PandaSim(task, render=False)
        self.safety = SafetyFilter(SafetyConfig(), ActionScale())
        self.sim.reset(seed)
        spec = self.spec = state_spec(task)
        torch.manual_seed(seed)
        self.agent = CQNAgent(cqn, spec, 4, "cpu")
        kw = {"nstep": cqn.nstep, "discount": cqn.discount}
        self.online = ReplayBuffer(spec, 4, 200_000, seed=seed, **kw)
        self.demos = ReplayBuffer(spec, 4, 50_000, seed=seed + 1, is_demo=True, **kw)
        self.replay = DemoAndOnline(self.online, self.demos, cqn.batch_size, cqn.demo_batch_size)
        self.max_steps = EPISODE_STEPS[task]

    def low_dim(self) -> np.ndarray:
        return low_dim_of(self.spec, self.sim.proprio(), object_state(self.sim))

    def _step(self, action: np.ndarray) -> np.ndarray:
        result = self.safety.filter(action, self.sim.state().ee_pos_m, estop=False)
        assert result.command is not None
        self.sim.apply_command(result.command)
        self.sim.advance(0.1)
        return result.action

    def episode(self, seed: int, policy: str, step: int = 0, record: bool = True,
                update: bool = False) -> tuple[bool, int]:
        self.sim.reset(seed)
        self.agent.reset()
        if record and hasattr(self.judge, "start_episode"):
            self.judge.start_episode()  # a stateful judge (success streak) starts afresh
        obs = self.low_dim()
        if record:
            self.replay.start_episode(None, obs)
        for t in range(self.max_steps):
            if policy == "expert":
                a = self.sim.expert_action()
            else:
                a = self.agent.act(None, obs, step + t, eval_mode=(policy == "greedy"))
            sent = self._step(a)
            obs = self.low_dim()
            success = self.judge(self.sim) if record else bool(self.sim.success())
            last = success or t == self.max_steps - 1
            if record:
                self.replay.add(sent, float(success), None, obs, terminated=success,
                                truncated=last and not success)
            if update and len(self.online) >= 256:
                self.agent.update(self.replay.sample())
            if success:
                return True, t + 1
        return False, self.max_steps


def run(task: str, seed: int, steps: int, eval_every: int, eval_episodes: int,
        demos: int, cqn: CQNConfig, judge: Judge = sim_success,
        sim: PandaSim | None = None) -> dict:
    r = Runner(task, seed, cqn, judge, sim)
    demo_seed = 1_000_000 + seed * 1000
    got = 0
    while got < demos:  # demos go to the demo buffer as successes (DemoAndOnline relabels)
        if demo_seed - 1_000_000 - seed * 1000 >= 10 * demos:
            # A judge that rejects the expert would otherwise loop here for ever.
            raise RewardModelError(f"{task} seed {seed}: only {got} of {demos} expert "
                                   f"episodes judged successful in {10 * demos} tries; "
                                   "check the judge on expert rollouts")
        ok, _ = r.episode(demo_seed, "expert")
        demo_seed += 1
        got += ok
    curve: list[tuple[int, float]] = []
    env_steps, ep_seed, t0 = 0, seed * 100_000, time.monotonic()

    def evaluate() -> float:
        wins = sum(r.episode(2_000_000 + seed * 1000 + i, "greedy", record=False)[0]
                   for i in range(eval_episodes))
        return wins / eval_episodes

    curve.append((0, evaluate()))
    next_eval = eval_every
    while env_steps < steps:
        _, n = r.episode(ep_seed, "explore", step=env_steps, update=True)
        ep_seed += 1
        env_steps += n
        if env_steps >= next_eval:
            curve.append((env_steps, evaluate()))
            print(f"{task} seed {seed}: {env_steps} steps, success {curve[-1][1]:.2f}, "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
            next_eval += eval_every
    return {"curve": curve, "wall_s": round(time.monotonic() - t0, 1),
            "final_success": curve[-1][1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="reach", choices=sorted(EPISODE_STEPS))
    p.add_argument("--steps", type=int, default=5000, help="environment steps per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--quick", action="store_true", help="reach, 600 steps, one seed")
    p.add_argument("--critic-streams", choices=["separate", "shared"], default="separate",
                   help="critic layout (learner.cqn.critic_streams): the reference's separate "
                   "value and advantage streams, or the earlier shared trunk")
    args = p.parse_args()
    if args.quick:
        args.task, args.steps, args.seeds, args.eval_every = "reach", 600, [0], 300
        args.eval_episodes = 10
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    cqn = CQNConfig(frame_stack=1, critic_streams=args.critic_streams)
    per_seed = {str(s): run(args.task, s, args.steps, args.eval_every, args.eval_episodes,
                            args.demos, cqn) for s in args.seeds}
    finals = [v["final_success"] for v in per_seed.values()]
    floor = FLOORS.get(args.task)
    metrics = {"task": args.task, "env_steps": args.steps, "seeds": per_seed,
               "mean_final_success": float(np.mean(finals))}
    rec = append_result("learning_states", metrics, demos=args.demos,
                        eval_episodes=args.eval_episodes, observation="state+ee_offsets",
                        device="cpu", threads=torch.get_num_threads(),
                        critic_streams=args.critic_streams,
                        floor=floor, floor_met=(floor is not None and args.steps <= floor[0]
                                                and min(finals) >= floor[1]))
    print(rec)


if __name__ == "__main__":
    main()
