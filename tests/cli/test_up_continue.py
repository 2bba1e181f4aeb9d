"""`robolearn up --continue` (what `make run` does): a second start goes on with the first
run — its row, its learner's checkpoint and counters, scenes it has not seen — with real
processes on the sim; a run the new config's learner cannot continue is left alone."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from robolearn.config import load_config
from robolearn.learn.learner import latest_checkpoint
from robolearn.store import Store

CLI = [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning"]
TINY_CQN = {"frame_stack": 1, "batch_size": 16, "demo_batch_size": 16, "hidden_dim": 32,
            "feature_dim": 16, "atoms": 11}


def cqn_run(write_config, sock_dir: Path, **cqn: int) -> Path:
    return write_config(
        actor={"observe_state": True, "episode_steps": 8, "policy": {"kind": "cqn"},
               "end_on_success": False, "max_obs_age_ms": 1000.0},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 3, "checkpoint_every": 10_000, "utd": None,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": {**TINY_CQN, **cqn}},
    )


def complete_episodes(data: Path) -> int:
    if not (data / "robolearn.db").exists():
        return 0
    with Store.open(data) as store:
        return len(store.list_episodes())


def sitting(config: Path, new_episodes: int, timeout_s: float = 180.0) -> str:
    """`up --continue` until it stored `new_episodes` more complete episodes, then SIGTERM
    (the learner checkpoints on the way out). Returns what `up` printed."""
    data = Path(yaml.safe_load(config.read_text())["data_dir"])
    goal = complete_episodes(data) + new_episodes
    up = subprocess.Popen([*CLI, "up", str(config), "--continue"], stdout=subprocess.PIPE,
                          text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert up.poll() is None, f"up exited early with {up.returncode}"
            assert time.monotonic() < deadline, f"fewer than {new_episodes} new episodes"
            if complete_episodes(data) >= goal:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # the newest transitions reach the learner
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    return out


def saved_counters(config: Path) -> dict[str, int]:
    ckpt = latest_checkpoint(load_config(config).data_dir / "checkpoints")
    assert ckpt is not None
    return torch.load(ckpt, weights_only=False)["counters"]


def test_a_second_start_continues_the_run_its_learner_and_its_scenes(
    write_config, sock_dir: Path,
) -> None:
    config = cqn_run(write_config, sock_dir)
    first = sitting(config, new_episodes=4)
    assert "starting a new run: no earlier run named" in first
    before = saved_counters(config)
    assert before["update_step"] > 0
    data = load_config(config).data_dir
    with Store.open(data) as store:
        (run,) = store.list_runs()
        seeds_before = {e.seed for e in store.list_episodes(run_id=run.id, status=None)}

    again = sitting(config, new_episodes=3)
    assert f"continuing run {run.id} " in again
    after = saved_counters(config)
    assert after["update_step"] > before["update_step"]  # on from the checkpoint, not 0
    assert after["env_steps"] > before["env_steps"]
    with Store.open(data) as store:
        assert [r.id for r in store.list_runs()] == [run.id]  # no second run
        episodes = store.list_episodes(run_id=run.id, status=None)
    seeds_after = [e.seed for e in episodes if e.seed not in seeds_before]
    assert len(seeds_after) >= 3 and min(seeds_after) > max(seeds_before)


def test_a_run_of_another_learner_is_not_continued(write_config, sock_dir: Path) -> None:
    sitting(cqn_run(write_config, sock_dir), new_episodes=2)
    wider = cqn_run(write_config, sock_dir, hidden_dim=48)  # same name and data, new critic
    out = sitting(wider, new_episodes=1)
    assert "starting a new run" in out and "another learner" in out
    with Store.open(load_config(wider).data_dir) as store:
        assert len(store.list_runs()) == 2
