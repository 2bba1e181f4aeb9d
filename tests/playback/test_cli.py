"""`robolearn replay` end to end in-process: the stored replay, the JSON summary, and a real
learner checkpoint evaluated on the replayed states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from robolearn.cli.main import main
from robolearn.store import Store
from tests.playback.recording import record_sim_episode

WRITE_CHECKPOINT_THEN_REPLAY = """
import sys, torch
from robolearn.config import load_config
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.observation import obs_spec_for
cfg = load_config(sys.argv[1])
torch.manual_seed(0)
agent = CQNAgent(cfg.learner.cqn, obs_spec_for(cfg), cfg.actor.action_scale.action_dim, "cpu")
torch.save({"config": cfg.model_dump(mode="json"), "agent": agent.state_dict(),
            "counters": {}}, sys.argv[2])
from robolearn.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_replay_command_stores_and_reports(tmp_path: Path, capsys) -> None:
    with Store.open(tmp_path / "data") as store:
        source_id = record_sim_episode(store, "pick_cube", seed=3)
    assert main(["replay", str(source_id), "--data-dir", str(tmp_path / "data")]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["tracking_error_max_m"] < 0.01 and summary["replay_success"]
    with Store.open(tmp_path / "data") as store:
        replay = store.get_episode(summary["replay_episode_id"])
    assert replay.source_episode_id == source_id


def test_replay_command_refuses_bad_input_with_exit_2(tmp_path: Path, capsys) -> None:
    with Store.open(tmp_path / "data") as store:
        source_id = record_sim_episode(store, "reach", seed=0, max_steps=2, joints=False)
    data_dir = str(tmp_path / "data")
    assert main(["replay", str(source_id), "--data-dir", data_dir]) == 2  # no joints logged
    assert main(["replay", "999", "--data-dir", data_dir]) == 2
    assert main(["replay", "1", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert main(["replay", str(source_id), "--data-dir", data_dir,
                 "--policy", str(tmp_path / "missing.pt")]) == 2
    with Store.open(tmp_path / "data") as store:
        assert len(store.list_runs()) == 1  # nothing new


def test_replay_evaluates_a_learner_checkpoint(tmp_path: Path, write_config) -> None:
    config = write_config(robot={"task": "pick_cube"}, actor={"observe_state": True},
                          learner={"observation": "state"})
    checkpoint = tmp_path / "ckpt.pt"
    with Store.open(tmp_path / "rec") as store:
        source_id = record_sim_episode(store, "pick_cube", seed=3)
    # Torch's compiler stack (loaded by the optimiser) cannot load into a process that
    # already rendered with MuJoCo's EGL, as earlier tests in this one did: the checkpoint
    # is written, then replayed, in a fresh process (the CLI builds the policy before it
    # renders anything).
    done = subprocess.run(
        [sys.executable, "-c", WRITE_CHECKPOINT_THEN_REPLAY, str(config), str(checkpoint),
         "replay", str(source_id), "--data-dir", str(tmp_path / "rec"), "--mode", "actions",
         "--no-store", "--policy", str(checkpoint)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = _last_json(done.stdout)
    assert summary["replay_episode_id"] is None
    assert summary["tracking_error_max_m"] < 1e-5
    assert summary["policy"]["policy"] == str(checkpoint)
    assert 0.0 <= summary["policy"]["gripper_agreement"] <= 1.0
    assert summary["policy"]["action_mae"] > 0  # an untrained critic does not copy the expert


@pytest.mark.parametrize("argv", [["replay", "--help"], ["dataset", "--help"]])
def test_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "Example" in capsys.readouterr().out
