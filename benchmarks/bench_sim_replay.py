"""Joint-mode replay fidelity and speed on the MuJoCo sim.

    python -m benchmarks.bench_sim_replay --quick

Records scripted-expert episodes of every task in-process (seeded, 84x84 front + wrist),
replays each in joint and action mode, and reports the end-effector tracking error (mean and
max, mm), how often the replay reproduced the logged outcome, and replayed control steps
per second of wall time (the replay is stored, videos included). Appends to
benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.results import append_result
from robolearn.playback import MujocoBackend, replay_episode
from robolearn.sim import TASKS
from robolearn.store import Store


def _record(store: Store, task: str, seed: int, steps: int) -> int:
    sim = MujocoBackend(task, cameras=("front", "wrist"), image_size=(84, 84), control_hz=10.0)
    run_id = store.create_run(f"bench {task}", {"actor": {"control_hz": 10.0}})
    obs, success = sim.reset(seed), False
    with store.begin_episode(run_id, task, ["front", "wrist"], seed=seed) as writer:
        for _ in range(steps):
            action = sim.sim.expert_action()
            next_obs = sim.apply_action(action)
            success = sim.success()
            writer.add_step(obs.images, obs.proprio, action, float(success), success,
                            joint_pos=obs.joint_pos_rad)
            obs = next_obs
            if success:
                break
        episode_id = writer.finish(obs.images, obs.proprio, "success" if success else "failure",
                                   final_joint_pos=obs.joint_pos_rad)
    return episode_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one seed per task")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
        ids = [(task, _record(store, task, seed, args.steps))
               for task in TASKS for seed in range(seeds)]
        for mode in ("joints", "actions"):
            errors, same, steps = [], 0, 0
            start = time.perf_counter()
            for _task, episode_id in ids:
                report = replay_episode(store, episode_id, mode=mode)
                errors.append(report.tracking_error_m)
                same += report.replay_success == report.source_success
                steps += report.steps
            wall = time.perf_counter() - start
            flat = np.concatenate(errors)
            metrics.update({
                f"{mode}_error_mean_mm": float(flat.mean() * 1e3),
                f"{mode}_error_max_mm": float(flat.max() * 1e3),
                f"{mode}_outcome_reproduced": same / len(ids),
                f"{mode}_steps_per_s": steps / wall,
            })
    print(append_result("sim_replay", metrics, episodes=len(ids), image_size=[84, 84]))


if __name__ == "__main__":
    main()
