"""A run split across "hosts" with `robolearn up --role`: the learner's part and the robots'
part as separate `up` processes with separate data directories, sharing only the database
and the run's keys, as hosts without a shared disk would."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from robolearn.cli.up import parts_of
from robolearn.config import parse_config
from robolearn.errors import ConfigError
from robolearn.store import Store
from tests.cli.test_run_processes import CLI, spawn, stop, wait_for
from tests.conftest import run_config_dict
from tests.learn.test_learner_process import TINY_CQN

EPISODES = 5


def host_config(tmp_path: Path, sock_dir: Path, host: str) -> Path:
    raw = run_config_dict(
        sock_dir, tmp_path / host,
        actor={"observe_state": True, "episode_steps": 20, "episodes": EPISODES,
               "policy": {"kind": "cqn"}},
        learner={"enabled": True, "observation": "state", "min_transitions": 10,
                 "utd": 0.5, "cqn": TINY_CQN, "keep_received": True},
        server={"enabled": False})
    raw.update(database_url=f"sqlite:///{tmp_path / 'fleet.db'}",
               security={"keys_dir": str(tmp_path / "keys")},
               fleet={"robots": [{"name": "left"}, {"name": "right"}]})
    path = tmp_path / f"{host}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_roles_pick_the_parts_and_refuse_unknown_ones(tmp_path: Path, sock_dir: Path) -> None:
    cfg = parse_config(yaml.safe_load(host_config(tmp_path, sock_dir, "h").read_text()))
    every = parts_of(cfg, None)
    assert every.robots == ("left", "right") and every.learner and every.owner
    robots = parts_of(cfg, ["robot:right"])
    assert robots.robots == ("right",) and not robots.learner and not robots.owner
    assert parts_of(cfg, ["learner"]).owner and parts_of(cfg, ["learner"]).robots == ()
    with pytest.raises(ConfigError, match="no fleet robot 'middle'"):
        parts_of(cfg, ["robot:middle"])
    with pytest.raises(ConfigError, match=r"server\.enabled is false"):
        parts_of(cfg, ["service"])
    with pytest.raises(ConfigError, match="expected learner, service, robots"):
        parts_of(cfg, ["everything"])


def test_a_learner_host_resumes_with_every_episode_after_the_robot_host_is_gone(
        tmp_path: Path, sock_dir: Path) -> None:
    learner_cfg = host_config(tmp_path, sock_dir, "learner-host")
    robot_cfg = host_config(tmp_path, sock_dir, "robot-host")
    done = subprocess.run([*CLI, "keys", "create", str(learner_cfg)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # A robots' part with no run to join says so and starts nothing.
    early = subprocess.run([*CLI, "up", str(robot_cfg), "--role", "robots"],
                           capture_output=True, text=True, timeout=60)
    assert early.returncode != 0 and "start the part with the learner first" in early.stderr

    learner = spawn("up", str(learner_cfg), "--role", "learner")
    try:
        def runs() -> list:
            with Store.open(tmp_path / "learner-host",
                            f"sqlite:///{tmp_path / 'fleet.db'}") as store:
                return store.list_runs()

        wait_for(lambda: (tmp_path / "fleet.db").exists() and len(runs()) == 1, 60,
                 "the learner's part to create the run")
        # Its learner is listening once it has opened its trackers (after binding).
        wait_for(lambda: (tmp_path / "learner-host" / "tensorboard").is_dir(), 120,
                 "the learner to start")
        robots = subprocess.run([*CLI, "up", str(robot_cfg), "--role", "robots"],
                                capture_output=True, text=True, timeout=240)
        assert robots.returncode == 0, robots.stderr[-3000:]
        assert "joining run" in robots.stdout
        kept = tmp_path / "learner-host" / "learner_episodes"
        wait_for(lambda: len(list(kept.glob("*.npz"))) == 2 * EPISODES, 60,
                 "the learner to keep every episode it received")
        [run] = runs()
        assert run.status == "running"  # the robots' part left the learner's run live
    finally:
        assert stop(learner) == 0
    [run] = runs()
    assert run.status == "stopped"  # its owner, the learner's part, ended it
    with Store.open(tmp_path / "learner-host", f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        episodes = store.list_episodes(run_id=run.id)
    assert sorted({e.robot for e in episodes}) == ["left", "right"]
    assert len(episodes) == 2 * EPISODES
    # The episode files are on the robot host only; the learner host holds its own copies.
    assert not list((tmp_path / "learner-host").glob("runs/**/*.npz"))
    shutil.rmtree(tmp_path / "robot-host")  # that host is gone

    log = tmp_path / "again.log"
    with open(log, "w") as out:
        again = subprocess.Popen([*CLI[:-2], "--log-level", "info", "up", str(learner_cfg),
                                  "--role", "learner", "--continue"], stderr=out)
    try:
        wait_for(lambda: again.poll() is not None
                 or f"loaded {2 * EPISODES} episodes this learner kept" in log.read_text(),
                 120, "the resumed learner to load the episodes it kept")
        assert again.poll() is None, log.read_text()[-3000:]
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(60) == 0
    newest = sorted((tmp_path / "learner-host" / "checkpoints").glob("ckpt_*.pt"))[-1]
    state = torch.load(newest, weights_only=True)
    assert sorted(state["online"]["episode_ids"]) == sorted(e.id for e in episodes)
