"""A learner on a host without the actors' disks: it keeps what it receives and resumes with
the same episodes from its own copy, passing over stored episodes whose files are elsewhere
(real sockets, files and SQLite)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.config import RunConfig, parse_config
from robolearn.errors import StoreError
from robolearn.learn.learner import ARCHIVE_DIRNAME, Learner
from robolearn.protocol import Pusher
from robolearn.store import Store
from tests.conftest import run_config_dict
from tests.learn.test_learner_faults import transition
from tests.learn.test_learner_process import TINY_CQN
from tests.server.conftest import record_episode


def learner_cfg(tmp_path: Path, sock_dir: Path, **learner: object) -> RunConfig:
    return parse_config(run_config_dict(
        sock_dir, tmp_path / "learner-host",
        actor={"observe_state": True, "episode_steps": 8},
        learner={"enabled": True, "observation": "state", "min_transitions": 10**9,
                 "utd": None, "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN,
                 **learner}))


def receive(learner: Learner, cfg: RunConfig, ids: list[int]) -> None:
    """An actor elsewhere sends whole episodes and, for each, the id its store gave it."""
    ctx = zmq.Context()
    addr = cfg.learner.transitions_address
    push = Pusher(ctx, addr, "actor", security=cfg.socket_security(addr, "actor"))
    low, dim = learner.spec.low_dim, learner.action_dim
    rng = np.random.default_rng(0)
    try:
        time.sleep(0.3)
        for episode_id in ids:
            for t in range(8):
                body, arrays = transition(f"e{episode_id}", t, low, dim, last=t == 7,
                                          intervention=False)
                arrays["next_low_dim"] = rng.normal(size=low).astype(np.float32)
                body["recorded"] = True
                push.send("transition", body, arrays)
            push.send("episode_stored", {"episode": f"e{episode_id}", "episode_id": episode_id})
        before = learner.counters.episodes
        deadline = time.monotonic() + 30
        while learner.counters.episodes < before + len(ids) and time.monotonic() < deadline:
            learner.drain(0.2)
        assert learner.counters.episodes == before + len(ids)
    finally:
        push.close()
        ctx.term()


def test_a_resumed_learner_has_the_episodes_it_received_without_the_actors_disk(
        tmp_path: Path, sock_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = learner_cfg(tmp_path, sock_dir, keep_received=True)
    ctx = zmq.Context()
    first = Learner(cfg, ctx)
    try:
        first.start()
        receive(first, cfg, [11, 12, 13])
        first.save_checkpoint()
        held = (first.online.episode_ids, len(first.online), len(first.demos))
        second = first.online.episode(first.online.episode_keys[1])
        assert second is not None
        lows = second.low_dim.copy()
    finally:
        first.close()  # writes what it still has queued
        ctx.term()
    kept = cfg.data_dir / ARCHIVE_DIRNAME
    assert sorted(p.name for p in kept.iterdir()) == ["11.npz", "12.npz", "13.npz"]
    # No episode of these is in the learner host's store: they were recorded elsewhere.
    with Store.open(cfg.data_dir) as store:
        assert store.list_episodes() == []

    ctx = zmq.Context()
    resumed = Learner(cfg, ctx, resume=True)
    try:
        resumed.start()
        assert (resumed.online.episode_ids, len(resumed.online), len(resumed.demos)) == held
        second = resumed.online.episode(resumed.online.episode_keys[1])
        assert second is not None
        np.testing.assert_array_equal(second.low_dim, lows)
        assert resumed.counters.episodes == 3
        receive(resumed, cfg, [14])  # and it goes on taking new ones
        assert len(resumed.online.episode_ids) == 4
    finally:
        resumed.close()
        ctx.term()

    (kept / "13.npz").write_bytes(b"not an npz")  # a damaged copy is passed over, loudly
    ctx = zmq.Context()
    again = Learner(cfg, ctx, resume=True)
    try:
        with caplog.at_level(logging.ERROR):
            again.start()
        assert "13.npz is damaged" in caplog.text
        assert 13 not in again.online.episode_ids and 12 in again.online.episode_ids
    finally:
        again.close()
        ctx.term()


def test_stored_episodes_whose_files_are_on_another_host_are_passed_over(
        tmp_path: Path, sock_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One database for the fleet (here a SQLite file both hosts name by URL), episode
    files on the recording host's disk only."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Store.open(tmp_path / "robot-host", url) as store:
        run = store.create_run("r", {})
        record_episode(store, run)
    cfg = learner_cfg(tmp_path, sock_dir, keep_received=True)
    cfg = parse_config({**cfg.model_dump(mode="json"), "database_url": url})
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        with caplog.at_level(logging.WARNING):
            learner.start()
        assert "1 stored episodes have their files on another host" in caplog.text
        assert len(learner.online) == 0
    finally:
        learner.close()
        ctx.term()
    # Without keeping its own copies a missing file is still the error it always was.
    strict = parse_config({**cfg.model_dump(mode="json"),
                           "learner": {**cfg.learner.model_dump(mode="json"),
                                       "keep_received": False}})
    ctx = zmq.Context()
    learner = Learner(strict, ctx)
    try:
        with pytest.raises(StoreError, match="is missing"):
            learner.start()
    finally:
        learner.close()
        ctx.term()
