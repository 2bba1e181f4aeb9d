"""UTD accounting in a real `robolearn up` (sim driver, learner and actor as processes): the
learner reports the updates per env step it held, consistent with the counters it reports,
and a target above what it can reach is reported as behind, to the actor's telemetry and in
the learner metrics rows. The learner process runs at the configured lower priority."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
import zmq
from sqlalchemy import select

from robolearn.config import parse_config
from robolearn.config.sockets import run_keys
from robolearn.protocol import Message, Subscriber
from robolearn.store import Store
from robolearn.store.models import LearnerMetrics

CLI = [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning"]

TINY_CQN = {"frame_stack": 1, "batch_size": 16, "demo_batch_size": 16, "hidden_dim": 32,
            "feature_dim": 16, "atoms": 11}
# Far above what any learner makes per env step at 10 Hz: it can only be behind.
UNREACHABLE_UTD = 10_000.0
LEARNER_NICE = 3


@pytest.fixture
def config(write_config, sock_dir: Path) -> Path:
    return write_config(
        cameras=[{"kind": "sim", "name": "front", "width": 32, "height": 32, "fps": 10}],
        actor={"observe_state": True, "episode_steps": 8, "policy": {"kind": "cqn"},
               "end_on_success": False, "max_obs_age_ms": 1000.0, "live_fps": 0},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 5, "checkpoint_every": 100_000, "utd": UNREACHABLE_UTD,
                 "metrics_every_s": 1.0, "threads": 1, "nice": LEARNER_NICE,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN},
        server={"enabled": False},
    )


def wait_for(sub: Subscriber, kind: str, predicate, timeout_s: float, what: str) -> Message:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = sub.wait_new(kind, timeout_s=5.0)
        if msg is not None and predicate(msg.body):
            return msg
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_the_learner_reports_the_utd_it_held_and_that_it_is_behind(config: Path) -> None:
    raw = yaml.safe_load(config.read_text())
    cfg = parse_config(raw)
    run_keys(cfg, create=True)  # `up` takes these; the test listens as the actor does
    ctx = zmq.Context()
    status = Subscriber(ctx, cfg.learner.weights_address, types=("learner_status",),
                        security=cfg.socket_security(cfg.learner.weights_address, "actor"))
    telemetry = Subscriber(ctx, cfg.actor.telemetry_address, types=("telemetry",),
                           security=cfg.socket_security(cfg.actor.telemetry_address,
                                                        "operator"))
    up = subprocess.Popen([*CLI, "up", str(config)])
    try:
        msg = wait_for(status, "learner_status",
                       lambda b: b.get("utd_held") is not None and b["utd_window_env_steps"] > 0
                       and b["utd_window_updates"] > 0, 180,
                       "a learner_status with a UTD measured over steps and updates")
        body = msg.body
        assert body["utd_target"] == UNREACHABLE_UTD
        assert body["utd_held"] == pytest.approx(
            body["utd_window_updates"] / body["utd_window_env_steps"])
        assert body["updates_per_s"] == pytest.approx(
            body["utd_window_updates"] / body["utd_window_s"])
        assert body["env_steps_per_s"] == pytest.approx(
            body["utd_window_env_steps"] / body["utd_window_s"])
        # Its counters bound the window's: no more updates or steps than it ever made or got.
        assert body["utd_window_updates"] <= body["update_step"]
        assert body["updates_owed"] > 0
        behind = wait_for(status, "learner_status", lambda b: b.get("utd_behind") is True, 120,
                          "the learner saying it cannot hold its target")
        assert behind.body["utd_held"] < UNREACHABLE_UTD
        # The actor forwards what the learner said to its telemetry (the Live page).
        seen = wait_for(telemetry, "telemetry",
                        lambda b: b["values"].get("learner_behind") is True, 60,
                        "telemetry saying the learner is behind")
        values = seen.body["values"]
        assert values["learner_utd_target"] == UNREACHABLE_UTD
        assert 0 < values["learner_utd_held"] < UNREACHABLE_UTD
        (learner,) = [p for p in psutil.Process(up.pid).children(recursive=True)
                      if "learner" in p.cmdline()]
        assert learner.nice() == psutil.Process().nice() + LEARNER_NICE
    finally:
        status.close()
        telemetry.close()
        ctx.term()
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
    with Store.open(cfg.data_dir) as store, store.session() as db:
        rows = list(db.scalars(select(LearnerMetrics).order_by(LearnerMetrics.id)))
    assert rows and all(r.utd_target == UNREACHABLE_UTD for r in rows)
    assert any(r.utd_behind and r.utd_held is not None and r.utd_held < UNREACHABLE_UTD
               for r in rows)
