"""Learning from what a real rig has (`learning_pixels`): CQN from the task's pixel config's
cameras (or --cameras) and the arm's proprioception, with success from a classifier trained
on operator-style labels.

Per (task, encoder, seed), on the sim, in-process (the sim stepped directly, one update per
environment step as the reference makes, actions through the robot's safety filter):

1. Demonstrations, as `robolearn demos collect` stores them from a pixel config: the scripted
   expert, the cameras at 84x84, the demonstration ending five frames after the sim says the
   task is done (the sim standing in for the demonstrator); plus noisy-expert, near-goal
   (the expert steered to hold a few cm beside the goal) and random episodes for the
   labeller. Seeds disjoint from every training and evaluation scene.
2. Labels: `robolearn reward label-sim` marks, through the service's label API, the success
   frames of stored episodes (at most 200 in all) and every frame of a few failed ones; the
   classifier trains on them with `rewards.classifier.unmarked: failure`. This is the only
   use of the sim's success verdict outside evaluation.
3. Learning: the learner the task's pixel config runs (`configs/sim_<task>_pixels.yaml`: its
   sizes, batches and n-step), with --encoder. The agent sees the cameras and proprioception
   only. Every recorded step's reward and end come from the classifier's two-frame success
   streak (the actor's reward path); the stored demonstrations reach the replay judged by
   the same classifier (the learner's path: `load_from_store` with `EpisodeJudge`).
   At --review-at env steps (default 20% and 50% of the run) the operator reviews the
   successes the classifier claimed since (`label-sim --outcome success`: a claim the sim
   never saw come true is marked failure, a true one its success frames, within the 200
   positives), the classifier trains again, and the run goes on with it: the buffers are
   refilled from the store judged by the new version, as a learner started again with
   `robolearn up --continue` does.
4. Evaluation: greedy episodes on unseen scenes, scored by the sim's success (the measuring
   instrument), --eval-episodes (>= 20) a point.

    python -m benchmarks.bench_learning_pixels --task reach --encoder pretrained --seeds 0 1 2
    python -m benchmarks.bench_learning_pixels --task reach --encoder scratch --seeds 0 \\
        --checkpoint-dir data/bench_pixels --max-wall-s 4800   # again to go on
    python -m benchmarks.bench_learning_pixels --quick     # the whole path, 60 steps

Long runs go in sittings: with --checkpoint-dir every recorded episode is stored and the
agent is saved at each evaluation; the same command resumes from there (the buffers are
rebuilt from the stored episodes, judged by the same classifier) and the result is appended
once every seed has its steps. Floors: reach >= 90 % within 5k env steps, pick_cube >= 70 %
within 20k, drawer_open >= 80 % within 20k (3 seeds, 20 demos).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sqlalchemy import func, select

import robolearn.rewards  # noqa: F401  (loads torch._dynamo before the sim renderer)
from benchmarks.results import append_result
from robolearn.actionspace import ActionScale
from robolearn.actor.env import PROPRIO_DIM
from robolearn.cli.main import main as cli
from robolearn.config import SafetyConfig, load_config, parse_config
from robolearn.config.cqn import CQNConfig
from robolearn.config.rewards import ClassifierConfig, RewardsConfig
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.judge import EpisodeJudge
from robolearn.learn.observation import FrameStacker
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer, load_from_store
from robolearn.rewards.classifier import train_classifier
from robolearn.rewards.service import RewardService
from robolearn.safety import SafetyFilter
from robolearn.sim import SIM_CAMERAS, PandaSim
from robolearn.store import Store
from robolearn.store.models import Label

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
IMAGE = 84
EPISODE_STEPS = {"reach": 50, "pick_cube": 100, "drawer_open": 100}
FLOORS = {"reach": (5_000, 0.9), "pick_cube": (20_000, 0.7), "drawer_open": (20_000, 0.8)}
DEMO_DONE_FRAMES = 5  # the demonstrator says "done" this many frames after the success
SUCCESS_FRAMES = 2  # the run's rewards.success_frames
MAX_POSITIVES = 200
LABEL_CONFIG = "labelling.yaml"  # the labeller's view of the data (its sim, its cameras)
NOISY_EPISODES, NEAR_EPISODES, RANDOM_EPISODES = 4, 8, 4  # the labeller's other episodes
NEAR_BIAS = (1.1, 1.6)  # action units added to the expert's: it holds ~3.5-5 cm off the goal
DEMO_RUN = "demos"
# Scene seeds: labelling 3M+, demos 1M+, exploration seed*100k+, evaluation 2M+.
LABEL_SEEDS, DEMO_SEEDS, EVAL_SEEDS = 3_000_000, 1_000_000, 2_000_000


class Runner:
    """One seed's sim, agent, buffers and classifier reward."""

    def __init__(self, task: str, seed: int, cqn: CQNConfig, device: str, rewards: RewardsConfig,
                 store: Store, cameras: tuple[str, ...], utd: int = 1) -> None:
        self.task, self.seed, self.store, self.cameras = task, seed, store, cameras
        self.sim = PandaSim(task, image_size=(IMAGE, IMAGE), cameras=cameras)
        self.safety = SafetyFilter(SafetyConfig(), ActionScale())
        self.spec = ObsSpec(cameras=cameras, image_hw=(IMAGE, IMAGE), frame_stack=1,
                            low_dim=PROPRIO_DIM)
        torch.manual_seed(seed)
        self.agent = CQNAgent(cqn, self.spec, 4, device)
        encoder = getattr(self.agent, "frame_encoder", None)
        self.stacker = FrameStacker(self.spec, encoder)
        self.rewards = rewards
        self.max_steps = EPISODE_STEPS[task]
        self.name = f"bench_learning_pixels_{seed}"
        known = [run.id for run in store.list_runs() if run.name == self.name]
        self.run_id = known[0] if known else store.create_run(
            self.name, {"rewards": rewards.model_dump(mode="json")})
        self.false_successes = 0  # the classifier's successes the sim disagrees with
        self.utd = utd  # updates per environment step
        self.reload()

    def reload(self) -> None:
        """The newest classifier as the reward, and the buffers refilled from the store with
        every stored episode judged by it (as a learner started again with --continue)."""
        cqn, seed = self.agent.cfg, self.seed
        kw = {"nstep": cqn.nstep, "discount": cqn.discount,
              "frame_encoder": getattr(self.agent, "frame_encoder", None)}
        self.online = ReplayBuffer(self.spec, 4, 100_000, seed=seed, **kw)
        self.demos = ReplayBuffer(self.spec, 4, 50_000, seed=seed + 1, is_demo=True, **kw)
        self.replay = DemoAndOnline(self.online, self.demos, cqn.batch_size,
                                    cqn.demo_batch_size)
        self.service = RewardService(self.rewards, store=self.store)
        self.streak = self.service.new_streak()
        judge_cfg = parse_config({"name": "judge", "data_dir": str(self.store.data_dir),
                                  "robot": {"kind": "sim", "task": self.task},
                                  "rewards": self.rewards.model_dump(mode="json")})
        training = [run.id for run in self.store.list_runs()
                    if run.name in (DEMO_RUN, self.name)]
        judge = (EpisodeJudge(judge_cfg, self.store) if self.rewards.sparse == "classifier"
                 else None)  # the sim_success ablation: the stored verdicts are the sim's
        load_from_store(self.store, self.online, self.demos, task=self.task,
                        cameras=self.cameras,
                        run_ids=training, judge=judge)

    def observe(self) -> dict[str, np.ndarray]:
        return {**{c: self.sim.render(c) for c in self.cameras}, "proprio": self.sim.proprio()}

    def episode(self, scene: int, policy: str, step: int = 0, record: bool = True,
                update: bool = False) -> tuple[bool, int]:
        """One episode; recorded ones are judged by the classifier and stored."""
        self.sim.reset(scene)
        self.agent.reset()
        self.stacker.reset()
        self.streak.start_episode()
        obs = self.observe()
        rgb, low = self.stacker.push(obs)
        writer = None
        if record:
            self.replay.start_episode({c: obs[c] for c in self.cameras}, low)
            writer = self.store.begin_episode(self.run_id, self.task, list(self.cameras),
                                              seed=scene, policy=policy)
        for t in range(self.max_steps):
            if policy == "expert":
                action = self.sim.expert_action()
            else:
                action = self.agent.act(rgb, low, step + t, eval_mode=(policy == "greedy"))
            sent = self.safety.filter(action, self.sim.state().ee_pos_m, estop=False)
            assert sent.command is not None
            self.sim.apply_command(sent.command)
            self.sim.advance(0.1)
            before = obs
            obs = self.observe()
            rgb, low = self.stacker.push(obs)
            if not record:
                if self.sim.success():
                    return True, t + 1
                continue
            out = self.service.score({c: obs[c][None] for c in self.cameras}, self.task,
                                     streak=self.streak,
                                     sim_success=np.array([self.sim.success()]))
            success = bool(out.success[0])
            self.false_successes += success and not self.sim.success()
            last = success or t == self.max_steps - 1
            self.replay.add(sent.action, float(out.reward[0]),
                            {c: obs[c] for c in self.cameras},
                            low, terminated=success, truncated=last and not success)
            assert writer is not None
            # The sim's verdict is logged beside the classifier's (evaluate_sim_success): only
            # the stand-in operator's review reads it.
            writer.add_step({c: before[c] for c in self.cameras}, before["proprio"], sent.action,
                            float(out.reward[0]), success,
                            scalars={"classifier_prob": float(out.values.get(
                                         "classifier_prob", out.success.astype(float))[0]),
                                     "sim_success": float(self.sim.success())})
            if update and len(self.online) >= self.agent.cfg.batch_size:
                for _ in range(self.utd):
                    self.agent.update(self.replay.sample())
            if last:
                writer.finish({c: obs[c] for c in self.cameras}, obs["proprio"],
                              "success" if success else "timeout")
                return success, t + 1
        return False, self.max_steps


def record_labelling_episodes(task: str, seed: int, store: Store, demos: int,
                              cameras: tuple[str, ...]) -> None:
    """The demonstrations and the labeller's other episodes, stored as a pixel config's
    `demos collect` stores them (the sim's verdict kept per step, as it is logged)."""
    sim = PandaSim(task, image_size=(IMAGE, IMAGE), cameras=cameras)
    safety = SafetyFilter(SafetyConfig(), ActionScale())
    runs = {kind: store.create_run(kind, {"rewards": {"sparse": "sim_success"}})
            for kind in (DEMO_RUN, "labelling")}  # only the demos are training data
    rng = np.random.default_rng(seed)
    plan = ([("expert", 0.0, True)] * demos + [("expert", 0.3, False)] * NOISY_EPISODES
            + [("near", 0.0, False)] * NEAR_EPISODES + [("random", 0.0, False)] * RANDOM_EPISODES)
    for k, (policy, noise, is_demo) in enumerate(plan):
        scene = (DEMO_SEEDS if is_demo else LABEL_SEEDS) + seed * 1000 + k
        sim.reset(scene)
        # "near": the operator steers to a point beside the goal and holds there, so the
        # classifier sees the near misses the learner will produce (HIL-SERL's practice of
        # collecting negatives around the goal).
        direction = rng.normal(size=3)
        bias = np.clip(direction / np.linalg.norm(direction) * rng.uniform(*NEAR_BIAS),
                       -0.95, 0.95)  # under the expert's full scale: it still converges
        frames = {c: sim.render(c) for c in cameras}
        proprio, streak = sim.proprio(), 0
        run = runs[DEMO_RUN if is_demo else "labelling"]
        with store.begin_episode(run, task, list(cameras), seed=scene, is_demo=is_demo,
                                 policy=policy) as writer:
            for _ in range(EPISODE_STEPS[task]):
                if policy == "random":
                    action = rng.uniform(-1, 1, 4).astype(np.float32)
                else:
                    action = sim.expert_action()
                    if policy == "near":
                        action[:3] += bias
                action = np.clip(action + noise * rng.normal(size=4), -1, 1).astype(np.float32)
                sent = safety.filter(action, sim.state().ee_pos_m, estop=False)
                sim.apply_command(sent.command)
                sim.advance(0.1)
                done = bool(sim.success())
                writer.add_step(frames, proprio, sent.action, float(done), done,
                                scalars={"sim_success": float(done)})
                frames, proprio = {c: sim.render(c) for c in cameras}, sim.proprio()
                streak = streak + 1 if done else 0
                if streak >= DEMO_DONE_FRAMES:
                    break
            writer.finish(frames, proprio, "success" if streak else "timeout")


def classifier_config(task: str, seed: int, cameras: tuple[str, ...]) -> ClassifierConfig:
    return ClassifierConfig(source="labels", unmarked="failure", cameras=cameras, task=task,
                            seed=seed)


def label_counts(store: Store) -> dict[str, int]:
    """Frames marked per class so far (the positives count against MAX_POSITIVES)."""
    with store.session() as db:
        rows = db.execute(select(Label.label, func.count()).group_by(Label.label)).all()
    return {"success": 0, "failure": 0, **{label: n for label, n in rows}}


def train_reward(task: str, seed: int, data_dir: Path, demos: int,
                 cameras: tuple[str, ...]) -> dict[str, Any]:
    """Demonstrations, labels through the service's API, the classifier. Returns its report."""
    config = data_dir / LABEL_CONFIG
    config.write_text(yaml.safe_dump({"name": "labelling", "data_dir": str(data_dir),
                                      "robot": {"kind": "sim", "task": task},
                                      "cameras": [{"kind": "sim", "name": c, "width": IMAGE,
                                                   "height": IMAGE} for c in cameras]}))
    with Store.open(data_dir) as store:
        record_labelling_episodes(task, seed, store, demos, cameras)
    if cli(["--log-level", "warning", "reward", "label-sim", str(config), "--all-episodes",
            "--max-positives", str(MAX_POSITIVES), "--failure-episodes",
            str(NOISY_EPISODES + NEAR_EPISODES + RANDOM_EPISODES)]) != 0:
        raise RuntimeError("label-sim marked no success frame")
    with Store.open(data_dir) as store:
        report = train_classifier(store, classifier_config(task, seed, cameras))
    return report.model_dump(exclude={"pr_curve", "roc_curve"})


def run_seed(task: str, encoder: str, seed: int, steps: int, eval_every: int,
             eval_episodes: int, demos: int, cqn: CQNConfig, device: str, data_dir: Path,
             max_wall_s: float | None, review_at: list[int], cameras: tuple[str, ...],
             reward: str = "classifier", utd: int = 1) -> dict[str, Any] | None:
    """One seed, resumed from `data_dir` if it holds a sitting. None: the wall budget ran
    out first (the state is saved)."""
    state_path = data_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if state is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        if reward == "classifier":
            classifier = train_reward(task, seed, data_dir, demos, cameras)
        else:  # the privileged ablation: demos only, no labels, no classifier
            with Store.open(data_dir) as store:
                record_labelling_episodes(task, seed, store, demos, cameras)
            classifier = None
        state = {"classifier": classifier, "label_s": round(time.monotonic() - t0, 1),
                 "env_steps": 0, "episodes": 0, "curve": [], "curve_wall": [], "wall_s": 0.0,
                 "false_successes": 0, "reviews": []}
    rewards = RewardsConfig(sparse=reward, success_frames=SUCCESS_FRAMES,  # type: ignore[arg-type]
                            evaluate_sim_success=False)
    sitting_t0, wall_before = time.monotonic(), state["wall_s"]
    with Store.open(data_dir) as store:
        r = Runner(task, seed, cqn, device, rewards, store, cameras, utd)
        agent_path = data_dir / "agent.pt"
        if agent_path.exists():
            r.agent.load_state_dict(torch.load(agent_path, map_location=device))

        def wall() -> float:
            return wall_before + time.monotonic() - sitting_t0

        def evaluate() -> None:
            wins = sum(r.episode(EVAL_SEEDS + seed * 1000 + i, "greedy", record=False)[0]
                       for i in range(eval_episodes))
            state["curve"].append([state["env_steps"], wins / eval_episodes])
            state["curve_wall"].append([round(wall(), 1), wins / eval_episodes])
            state["wall_s"] = round(wall(), 1)
            state["false_successes"] += r.false_successes
            r.false_successes = 0
            torch.save(r.agent.state_dict(), agent_path)
            state_path.write_text(json.dumps(state))
            print(f"{task}/{encoder} seed {seed}: {state['env_steps']} steps, greedy success "
                  f"{wins / eval_episodes:.2f}, {state['wall_s']:.0f} s", flush=True)

        def review() -> None:
            """The operator reviews the successes the classifier claimed since the last
            review, marks the false ones, trains it again; the run goes on with it."""
            t0 = time.monotonic()
            before = label_counts(store)
            budget = MAX_POSITIVES - before["success"]
            cli(["--log-level", "warning", "reward", "label-sim", str(data_dir / LABEL_CONFIG),
                 "--outcome", "success", "--max-positives", str(max(budget, 1)),
                 "--failure-episodes", "100000"])
            after = label_counts(store)
            done = {"env_steps": state["env_steps"],
                    "success_frames": after["success"] - before["success"],
                    "failure_frames": after["failure"] - before["failure"], "classifier": None}
            if after != before:  # nothing new marked: the classifier stays as it is
                report = train_classifier(store, classifier_config(task, seed, cameras))
                done["classifier"] = report.model_dump(exclude={"pr_curve", "roc_curve"})
                r.reload()
            done["wall_s"] = round(time.monotonic() - t0, 1)
            state["reviews"].append(done)
            state_path.write_text(json.dumps(state))
            print(f"{task}/{encoder} seed {seed}: review at {state['env_steps']} steps: "
                  f"{done['failure_frames']} failure and {done['success_frames']} success "
                  f"frames marked", flush=True)

        if not state["curve"]:
            evaluate()
        next_eval = (state["env_steps"] // eval_every + 1) * eval_every
        while state["env_steps"] < steps:
            if max_wall_s is not None and time.monotonic() - sitting_t0 > max_wall_s:
                return None
            due = [at for at in review_at if at <= state["env_steps"]
                   and reward == "classifier"]
            if due and max(due) > state.get("reviewed_at", -1):
                state["reviewed_at"] = max(due)  # saved with the review
                review()
            _, n = r.episode(seed * 100_000 + state["episodes"], "explore",
                             step=state["env_steps"], update=True)
            state["episodes"] += 1
            state["env_steps"] += n
            if state["env_steps"] >= next_eval or state["env_steps"] >= steps:
                evaluate()
                next_eval += eval_every
    return {"curve": state["curve"], "curve_wall": state["curve_wall"],
            "wall_s": state["wall_s"], "label_s": state["label_s"],
            "final_success": state["curve"][-1][1], "classifier": state["classifier"],
            "false_successes": state["false_successes"], "reviews": state.get("reviews", [])}


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="reach", choices=sorted(EPISODE_STEPS))
    p.add_argument("--encoder", default="pretrained", choices=["pretrained", "scratch"])
    p.add_argument("--steps", type=int, help="env steps per seed (default: the task's floor)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--critic-streams", choices=["separate", "shared"], default="separate")
    p.add_argument("--reward", choices=["classifier", "sim_success"], default="classifier",
                   help="sim_success: the privileged ablation (the sim's verdict as reward, no "
                   "classifier), to tell the classifier's share of the result from the "
                   "learner's; its lines say privileged_state true")
    p.add_argument("--review-at", type=int, nargs="*",
                   help="env steps at which the operator reviews the classifier's claimed "
                   "successes and trains it again (default: at 20%% and 50%% of --steps; "
                   "none: no review)")
    p.add_argument("--utd", type=int, default=1,
                   help="updates per environment step (the reference makes 1; more trades "
                   "compute for fewer robot steps)")
    p.add_argument("--cqn", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="override fields of the task config's learner.cqn for an ablation "
                   "(e.g. feature_shift_pad=0 pretrained_stride=8); recorded in the line")
    p.add_argument("--cameras", help="comma-separated sim cameras (default: the task's pixel "
                   "config's), e.g. front,wrist for the earlier pair; recorded in the line")
    p.add_argument("--checkpoint-dir", type=Path,
                   help="keep each seed's sitting here (default: a temporary directory)")
    p.add_argument("--max-wall-s", type=float,
                   help="stop this sitting after this many seconds (state kept for the next)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: reach, 4 demos, 60 steps at batch 32+32, one seed")
    args = p.parse_args(argv)
    batch = {}
    if args.quick:  # the whole path, not learning: a few small updates
        args.task, args.steps, args.seeds, args.eval_every = "reach", 60, [0], 30
        args.eval_episodes, args.demos, batch = 2, 4, {"batch_size": 32, "demo_batch_size": 32}
    steps = args.steps or FLOORS[args.task][0]
    review_at = (args.review_at if args.review_at is not None
                 else [steps // 5, steps // 2])
    if args.threads:
        torch.set_num_threads(args.threads)
    # The learner the task's pixel config runs (sizes, n-step, ...), with this encoder.
    run_cfg = load_config(CONFIGS / f"sim_{args.task}_pixels.yaml")
    overrides = {key: yaml.safe_load(value)
                 for key, value in (item.split("=", 1) for item in args.cqn)}
    # Validated as the config would be: a typo or a bad value is an error, not ignored.
    cqn = CQNConfig.model_validate({
        **run_cfg.learner.cqn.model_dump(), **overrides,
        "frame_stack": 1, "encoder": args.encoder, "critic_streams": args.critic_streams,
        **batch})
    default_cameras = tuple(c.name for c in run_cfg.cameras)
    cameras = (tuple(c.strip() for c in args.cameras.split(",") if c.strip()) if args.cameras
               else default_cameras)
    if not cameras or any(c not in SIM_CAMERAS for c in cameras):
        p.error(f"--cameras: choose from {list(SIM_CAMERAS)}, got {args.cameras!r}")
    root = args.checkpoint_dir or Path(tempfile.mkdtemp(prefix="bench_learning_pixels-"))
    per_seed: dict[str, Any] = {}
    for seed in args.seeds:
        out = run_seed(args.task, args.encoder, seed, steps, args.eval_every,
                       args.eval_episodes, args.demos, cqn, args.device,
                       root / (f"{args.task}_{args.encoder}_{args.critic_streams}"
                               f"{'' if args.reward == 'classifier' else '_' + args.reward}"
                               f"{''.join('_' + o for o in args.cqn)}"
                               f"{'' if args.utd == 1 else f'_utd{args.utd}'}"
                               f"{'' if cameras == default_cameras else '_' + '+'.join(cameras)}"
                               f"_seed{seed}"),
                       args.max_wall_s, review_at, cameras, args.reward, args.utd)
        if out is None:
            print(f"sitting over: run the same command again to go on (state in {root})")
            return None
        per_seed[str(seed)] = out
    finals = [v["final_success"] for v in per_seed.values()]
    floor = FLOORS[args.task]
    metrics = {"task": args.task, "encoder": args.encoder, "reward": args.reward,
               "privileged_state": args.reward != "classifier", "env_steps": steps,
               "seeds": per_seed,
               "mean_final_success": float(np.mean(finals))}
    rec = append_result("learning_pixels", metrics, demos=args.demos,
                        eval_episodes=args.eval_episodes, cameras=list(cameras), image=IMAGE,
                        device=args.device, threads=torch.get_num_threads(),
                        hidden_dim=cqn.hidden_dim, batch=[cqn.batch_size, cqn.demo_batch_size],
                        near_goal_episodes=NEAR_EPISODES, review_at=review_at,
                        critic_streams=args.critic_streams, cqn_overrides=overrides,
                        utd=args.utd,
                        max_positive_labels=MAX_POSITIVES,
                        success_frames=SUCCESS_FRAMES, quick=args.quick, floor=floor,
                        floor_met=(not args.quick and steps <= floor[0]
                                   and args.reward == "classifier"
                                   and len(finals) >= 3 and min(finals) >= floor[1]))
    print(rec)
    return rec


if __name__ == "__main__":
    main()
