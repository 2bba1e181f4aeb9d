"""Experiment tracking: a real learner run (sim driver, actor, tiny CQN) writes TensorBoard
event files that TensorBoard's own reader reads back, and a W&B offline run with the same
keys; a tracker that fails costs a warning, never the learner."""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import zmq
from sqlalchemy import select

from robolearn.config import load_config, parse_config
from robolearn.errors import ConfigError
from robolearn.learn.learner import Learner
from robolearn.learn.tracking import (
    EpisodeOutcome,
    TensorBoardBackend,
    Tracker,
    learner_values,
    shareable_config,
)
from robolearn.store import Store
from robolearn.store.learner_metrics import LearnerSample
from robolearn.store.models import LearnerMetrics
from tests.learn.test_learner_process import LOADED_MACHINE, TINY_CQN, spawn, stop

EPISODES, EPISODE_STEPS = 3, 8
# What every learner row and episode carries (the agent adds more losses with demos).
LEARNER_TAGS = {f"learner/{k}" for k in (
    "update_step", "env_steps", "episodes", "updates_per_s", "online_transitions",
    "demo_transitions", "online_episodes", "demo_episodes", "utd_behind", "critic_loss")}
EPISODE_TAGS = {f"episode/{k}" for k in (
    "env_steps", "steps", "episode_return", "success", "success_rate", "intervention")}


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in `logdir`, read with TensorBoard's own reader: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    acc = EventAccumulator(str(logdir), size_guidance={SCALARS: 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()[SCALARS]}


def wandb_history(path: Path) -> list[dict[str, float]]:
    """The history rows of a W&B run file (`run-<id>.wandb`).

    The file is a record log in LevelDB's layout after a 7-byte header: 32 KiB blocks of
    chunks, each with a 7-byte header (crc32, length, type: full/first/middle/last); a
    record is a serialized `wandb_internal_pb2.Record`.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, pending, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                # A key with a "/" comes as its parts (nested_key).
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No network, no account, nothing written outside the test's folder.
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for var, name in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"),
                      ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / name))


def test_a_learner_run_writes_tensorboard_events_and_a_wandb_offline_run(
        write_config, sock_dir: Path, wandb_offline: None) -> None:
    path = write_config(
        actor={"observe_state": True, "episode_steps": EPISODE_STEPS,
               "policy": {"kind": "cqn"}, "end_on_success": False, **LOADED_MACHINE},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 3, "checkpoint_every": 10_000, "utd": None,
                 "metrics_every_s": 0.2,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN,
                 "tracking": {"wandb": {"enabled": True, "mode": "offline",
                                        "project": "robolearn-test"}}},
    )
    cfg = load_config(path)
    driver = spawn("driver", str(path))
    learner = spawn("learner", str(path))
    actor = spawn("actor", str(path), "--episodes", str(EPISODES))
    try:
        assert actor.wait(180) == 0
        time.sleep(1.0)  # the last transitions reach the learner
        assert stop(learner) == 0  # SIGTERM: a last row, then the trackers close
    finally:
        for proc in (actor, learner, driver):
            stop(proc)

    # TensorBoard: one subdirectory for the one learner process, under the run's name.
    (logdir,) = (cfg.data_dir / "tensorboard" / cfg.name).iterdir()
    scalars = tensorboard_scalars(logdir)
    assert LEARNER_TAGS | EPISODE_TAGS <= set(scalars), sorted(scalars)
    assert all(t.startswith(("learner/", "episode/")) for t in scalars)
    for tag in LEARNER_TAGS:
        steps = [s for s, _ in scalars[tag]]
        assert steps == sorted(steps), tag
    losses = scalars["learner/critic_loss"]
    assert len(losses) >= 2 and losses[-1][0] > losses[0][0] > 0
    # Each episode at the environment steps received with it, its values as sent.
    expected_steps = [EPISODE_STEPS * (i + 1) for i in range(EPISODES)]
    assert [s for s, _ in scalars["episode/episode_return"]] == expected_steps
    assert [v for _, v in scalars["episode/steps"]] == [EPISODE_STEPS] * EPISODES
    assert all(v in (0.0, 1.0) for _, v in scalars["episode/success"])
    # The same numbers as the store's rows, which the Learning page plots.
    with Store.open(cfg.data_dir) as store, store.session() as db:
        rows = list(db.scalars(select(LearnerMetrics).order_by(LearnerMetrics.id)))
    assert [v for _, v in scalars["learner/update_step"]] == [r.update_step for r in rows]
    assert [v for _, v in scalars["learner/online_transitions"]] == [
        r.online_transitions for r in rows]
    assert scalars["learner/env_steps"][-1][1] == EPISODES * EPISODE_STEPS

    # W&B offline: the run's files under the data dir, with the same keys.
    (run_file,) = (cfg.data_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = wandb_history(run_file)
    keys = {k for row in history for k in row if not k.startswith("_")}
    assert keys == set(scalars)
    logged = [row["learner/update_step"] for row in history if "learner/critic_loss" in row]
    assert logged == [s for s, _ in losses]
    episodes = [row for row in history if "episode/episode_return" in row]
    assert [row["episode/env_steps"] for row in episodes] == expected_steps


def test_an_unwritable_tensorboard_dir_costs_a_warning_not_the_learner(
        write_config, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory's parent should be")
    path = write_config(
        actor={"observe_state": True},
        learner={"observation": "state", "cqn": TINY_CQN,
                 "tracking": {"tensorboard": {"directory": str(blocker / "tb")}}},
    )
    cfg = load_config(path)
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        with caplog.at_level(logging.WARNING, logger="robolearn.learn.tracking"):
            learner.run(threading.Event(), max_updates=0)
        assert learner.metrics_writer is not None
        assert learner.metrics_writer.tracker is not None
        assert learner.metrics_writer.tracker.backends == []
    finally:
        learner.close()
        ctx.term()
    warned = [r.getMessage() for r in caplog.records if r.name == "robolearn.learn.tracking"]
    assert len(warned) == 1 and "TensorBoard" in warned[0] and "training goes on" in warned[0]
    assert str(blocker / "tb") in warned[0]
    # The store still got its row, and the learner its checkpoint.
    with Store.open(cfg.data_dir) as store, store.session() as db:
        assert db.scalars(select(LearnerMetrics)).first() is not None
    assert learner.last_checkpoint is not None


class _FailingBackend:
    """A backend whose disk fills up after `ok` writes."""

    name = "broken"

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.closed = False

    def log(self, group: str, values: Mapping[str, float], step: int) -> None:
        if self.ok <= 0:
            raise OSError(28, "No space left on device")
        self.ok -= 1

    def close(self) -> None:
        self.closed = True


def _sample(update_step: int) -> LearnerSample:
    return LearnerSample(session="s", update_step=update_step, env_steps=2 * update_step,
                         episodes=1, updates_per_s=5.0, online_transitions=10,
                         demo_transitions=0, online_episodes=1, demo_episodes=0,
                         scalars={"critic_loss": 0.5}, utd_target=1.0, utd_held=None)


def test_a_backend_failing_mid_run_is_dropped_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = _FailingBackend(ok=1)
    tensorboard = TensorBoardBackend(tmp_path / "tb")
    tracker = Tracker([broken, tensorboard])
    with caplog.at_level(logging.WARNING, logger="robolearn.learn.tracking"):
        for step in (1, 2, 3):
            tracker.learner(_sample(step))
        tracker.episode(EpisodeOutcome(env_steps=8, steps=8, episode_return=1.5,
                                       success=True, intervention=False))
    tracker.close()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "broken" in warned[0] and "No space left" in warned[0]
    assert broken.closed and tracker.backends == []
    # The other backend got everything.
    scalars = tensorboard_scalars(tmp_path / "tb")
    assert [s for s, _ in scalars["learner/critic_loss"]] == [1, 2, 3]
    assert scalars["episode/success_rate"] == [(8, 1.0)]
    assert "learner/utd_held" not in scalars  # None is left out, not written as 0


def test_learner_values_carry_the_learning_page_names() -> None:
    values = learner_values(_sample(7))
    assert values == {"update_step": 7.0, "env_steps": 14.0, "episodes": 1.0,
                      "updates_per_s": 5.0, "online_transitions": 10.0,
                      "demo_transitions": 0.0, "online_episodes": 1.0, "demo_episodes": 0.0,
                      "utd_behind": 0.0, "utd_target": 1.0, "critic_loss": 0.5}


def test_tracking_defaults_tensorboard_on_and_wandb_off(tmp_path: Path) -> None:
    cfg = parse_config({"name": "r", "data_dir": str(tmp_path)})
    tracking = cfg.learner.tracking
    assert tracking.tensorboard.enabled and tracking.tensorboard.directory is None
    assert not tracking.wandb.enabled and tracking.wandb.mode == "online"
    with pytest.raises(ConfigError, match=r"tracking\.mlflow"):
        parse_config({"name": "r", "learner": {"tracking": {"mlflow": {}}}})


def test_the_config_a_tracker_uploads_hides_the_database_password(tmp_path: Path) -> None:
    cfg = parse_config({"name": "r", "data_dir": str(tmp_path),
                        "database_url": "postgresql+psycopg://lab:hunter2@db.lab/robolearn"})
    shared = shareable_config(cfg)
    assert "hunter2" not in json.dumps(shared)
    assert shared["database_url"] == "postgresql+psycopg://lab:***@db.lab/robolearn"
    assert shared["learner"]["tracking"]["tensorboard"]["enabled"] is True


PROBE = """
import json, sys
import robolearn, robolearn.learn.tracking, robolearn.learn.metrics
from robolearn.cli.main import main
try:
    main(["--help"])
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_the_trackers_load_only_when_used() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert not loaded & {"tensorboard", "wandb"}
