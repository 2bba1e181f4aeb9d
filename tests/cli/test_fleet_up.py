"""`robolearn up` on a fleet config: two sim robots, each a driver and an actor process of its
own with its own keys, feeding one learner; one run, episodes tagged by robot."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
import yaml

from robolearn.store import Store
from robolearn.store.checkpoints import count_checkpoints
from robolearn.store.episodes import robot_summaries
from tests.cli.test_run_processes import CLI
from tests.learn.test_learner_process import TINY_CQN


def test_up_runs_every_robot_of_a_fleet_into_one_run_and_one_learner(write_config) -> None:
    path = write_config(
        actor={"observe_state": True, "episode_steps": 20, "episodes": 12,
               "policy": {"kind": "cqn"}},
        learner={"enabled": True, "observation": "state", "min_transitions": 10,
                 "utd": 0.5, "cqn": TINY_CQN},
        server={"enabled": False})
    raw = yaml.safe_load(path.read_text())
    raw["fleet"] = {"robots": [{"name": "left"}, {"name": "right"}]}
    path.write_text(yaml.safe_dump(raw))
    done = subprocess.run([*CLI, "up", str(path)], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    data = Path(raw["data_dir"])
    keys = sorted(p.name for p in (data / "keys").glob("*.key"))
    assert {"actor-left.key", "actor-right.key", "driver-left.key",
            "driver-right.key"} <= set(keys)
    assert "actor.key" not in keys and "driver.key" not in keys
    with Store.open(data) as store:
        [run] = store.list_runs()
        assert run.status == "finished"  # `up` ended it once both actors had finished
        episodes = store.list_episodes(run_id=run.id)
        by_robot: dict[str | None, list[int | None]] = {}
        for e in episodes:
            by_robot.setdefault(e.robot, []).append(e.seed)
        assert {r: sorted(s) for r, s in by_robot.items()} == {  # type: ignore[type-var]
            "left": list(range(12)), "right": list(range(1_000_000, 1_000_012))}
        with store.session() as db:
            summaries = robot_summaries(db, run.id)
            checkpoint_rows = count_checkpoints(db, run.id)
        assert [(s.robot, s.episodes, s.env_steps) for s in summaries] == [
            ("left", 12, sum(e.num_steps for e in episodes if e.robot == "left")),
            ("right", 12, sum(e.num_steps for e in episodes if e.robot == "right"))]
        assert all(s.robot_hours > 0 for s in summaries)
    # The learner took the robots' episodes and wrote its checkpoint on the way out.
    [ckpt] = list((data / "checkpoints").glob("ckpt_*.pt"))[-1:]
    counters = torch.load(ckpt, weights_only=True)["counters"]
    assert counters["episodes"] >= 2 and counters["update_step"] > 0
    assert checkpoint_rows >= 1  # recorded against the fleet's one run
