"""The learner as a real process between a real actor and the sim driver: weights reach the
actor, a learner crash and restart never stops the actor, and --resume restores the run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
import zmq
from sqlalchemy import select

from robolearn.config import load_config, parse_config
from robolearn.errors import ConfigError
from robolearn.learn.learner import Learner, latest_checkpoint
from robolearn.processes import run_episodes_on_sim
from robolearn.protocol import Subscriber

CLI = [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning"]

# A CI machine busy with other work can delay the driver's frames past the 250 ms default,
# which aborts episodes as stale; these tests check the learner, not the actor's freshness.
LOADED_MACHINE = {"max_obs_age_ms": 1000.0}

TINY_CQN = {"frame_stack": 1, "batch_size": 16, "demo_batch_size": 16, "hidden_dim": 32,
            "feature_dim": 16, "atoms": 11}


@pytest.fixture
def cqn_config(write_config, sock_dir: Path) -> Path:
    return write_config(
        actor={"observe_state": True, "episode_steps": 8, "policy": {"kind": "cqn"},
               "end_on_success": False, **LOADED_MACHINE},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 3, "checkpoint_every": 10_000, "utd": None,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN},
    )


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, *args])


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(30)


class Telemetry:
    """The actor's telemetry: newest step and policy weights version seen."""

    def __init__(self, raw: dict) -> None:
        cfg = parse_config(raw)
        address = cfg.actor.telemetry_address
        self.ctx = zmq.Context()
        self.sub = Subscriber(self.ctx, address, types=("telemetry",),
                              security=cfg.socket_security(address, "operator"))

    def next(self, timeout_s: float = 5.0) -> dict:
        msg = self.sub.wait_new("telemetry", timeout_s=timeout_s)
        assert msg is not None, "the actor stopped publishing telemetry"
        return dict(msg.body["values"])

    def wait_for(self, predicate, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            values = self.next(timeout_s=60.0)  # the first step waits for process start-up
            if predicate(values):
                return values
        raise AssertionError(f"timed out waiting for {what}")

    def close(self) -> None:
        self.sub.close()
        self.ctx.term()


def test_weights_reach_the_actor_and_a_learner_restart_never_stops_it(cqn_config: Path) -> None:
    raw = yaml.safe_load(cqn_config.read_text())
    driver = spawn("driver", str(cqn_config))
    learner = spawn("learner", str(cqn_config))
    actor = spawn("actor", str(cqn_config))
    tele = Telemetry(raw)
    try:
        first = tele.wait_for(lambda v: (v["policy_version"] or 0) >= 2, 120,
                              "a trained weight version at the actor")
        # Kill the learner hard: the actor keeps stepping on the weights it has.
        learner.send_signal(signal.SIGKILL)
        learner.wait(10)
        t0 = time.monotonic()
        steps = []
        while time.monotonic() - t0 < 3.0:
            steps.append(tele.next()["step"])
        assert actor.poll() is None
        assert steps[-1] - steps[0] >= 20  # ~10 Hz while the learner is gone
        # A new learner process: the actor picks up its weights (a new session, so even a
        # lower version number is newer).
        learner = spawn("learner", str(cqn_config))
        tele.wait_for(lambda v: v["step"] > steps[-1] + 5 and (v["policy_version"] or 0) >= 1
                      and v["policy_version"] != first["policy_version"], 120,
                      "weights from the restarted learner")
        assert actor.poll() is None
    finally:
        tele.close()
        for proc in (actor, learner, driver):
            stop(proc)


def test_resume_restores_counters_and_buffer_sizes(cqn_config: Path) -> None:
    cfg = load_config(cqn_config)
    driver = spawn("driver", str(cqn_config))
    learner = spawn("learner", str(cqn_config))
    actor = spawn("actor", str(cqn_config), "--episodes", "6")
    try:
        assert actor.wait(180) == 0
        time.sleep(1.0)  # the last transitions reach the learner
        assert stop(learner) == 0  # SIGTERM: checkpoint on the way out
    finally:
        for proc in (actor, learner, driver):
            stop(proc)
    ckpt = latest_checkpoint(cfg.data_dir / "checkpoints")
    assert ckpt is not None
    saved = torch.load(ckpt, weights_only=False)
    assert saved["counters"]["env_steps"] == 6 * 8
    assert saved["counters"]["update_step"] > 0

    ctx = zmq.Context()
    resumed = Learner(cfg, ctx, resume=True)
    try:
        resumed.start()
        assert vars(resumed.counters) == {**saved["counters"],
                                          "version": saved["counters"]["version"] + 1}
        assert saved["sizes"]["online_episodes"] == 6
        assert {"online": len(resumed.online), "demos": len(resumed.demos),
                "online_episodes": resumed.online.num_episodes,
                "demo_episodes": resumed.demos.num_episodes} == saved["sizes"]
        # It trains on from there.
        resumed.run(threading.Event(), max_updates=resumed.counters.update_step + 2)
        assert resumed.counters.update_step == saved["counters"]["update_step"] + 2
    finally:
        resumed.close()
        ctx.term()


def test_eval_runs_greedy_episodes_from_a_checkpoint(cqn_config: Path, tmp_path: Path) -> None:
    cfg = load_config(cqn_config)
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        ckpt = learner.save_checkpoint()
    finally:
        learner.close()
        ctx.term()
    out = tmp_path / "eval"
    proc = subprocess.run([*CLI, "eval", str(ckpt), "-n", "2", "--data-dir", str(out),
                           "--set", "actor.episode_steps=5"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["task"] == "reach"
    assert 0.0 <= summary["success_rate"] <= 1.0
    from robolearn.store import Store

    with Store.open(out) as store:
        eps = store.list_episodes()
    assert len(eps) == 2 and all(e.policy == "cqn-eval" for e in eps)


def test_a_checkpoint_of_another_observation_layout_is_refused_by_name(
        cqn_config: Path, tmp_path: Path) -> None:
    cfg = load_config(cqn_config)
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        ckpt = learner.save_checkpoint()
        # As written before the object offsets joined the state: reach's low-dim was 8 + 3.
        state = torch.load(ckpt, weights_only=False)
        state["obs_spec"] = {k: v for k, v in state["obs_spec"].items() if k != "ee_offsets"}
        state["obs_spec"]["low_dim"] = 11
        old = tmp_path / "ckpt_old.pt"
        torch.save(state, old)
        with pytest.raises(ConfigError, match=r"another observation layout.*ee_offsets"):
            learner.load_checkpoint(old)
        assert learner.counters.update_step == 0
    finally:
        learner.close()
        ctx.term()
    proc = subprocess.run([*CLI, "eval", str(old), "-n", "1", "--data-dir",
                           str(tmp_path / "eval")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "another observation layout" in proc.stderr
    assert "predates the object offsets" in proc.stderr
    assert not (tmp_path / "eval" / "robolearn.db").exists()
    # An actor whose policy refuses its checkpoint stops the run with that error (it hung
    # in zmq's context teardown on the sockets the half-built actor left open).
    raw = cfg.model_dump(mode="json")
    raw["actor"]["policy"] = {"kind": "cqn", "checkpoint": str(old)}
    raw["learner"]["enabled"] = False
    raw["data_dir"] = str(tmp_path / "run")
    failed: list[BaseException] = []

    def run() -> None:
        try:
            run_episodes_on_sim(parse_config(raw), 1, threading.Event(), lambda r: None)
        except BaseException as exc:  # handed to the test thread
            failed.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(120)
    assert not runner.is_alive(), "the run hung after the actor failed"
    assert len(failed) == 1 and isinstance(failed[0], ConfigError), failed


def test_eval_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    proc = subprocess.run([*CLI, "eval", str(bogus)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr


def test_learner_process_writes_metrics_the_api_serves(write_config, sock_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from robolearn.server.app import create_app
    from robolearn.store import Store
    from robolearn.store.models import LearnerMetrics
    from tests.server.conftest import SECRET, add_user, login

    path = write_config(
        actor={"observe_state": True, "episode_steps": 8, "policy": {"kind": "cqn"},
               "end_on_success": False, **LOADED_MACHINE},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 3, "checkpoint_every": 10_000, "utd": None,
                 "metrics_every_s": 0.2,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN},
        server={"development": True},
    )
    cfg = load_config(path)
    driver = spawn("driver", str(path))
    learner = spawn("learner", str(path))
    actor = spawn("actor", str(path), "--episodes", "4")
    try:
        assert actor.wait(180) == 0
        time.sleep(1.0)  # the last transitions reach the learner
        assert stop(learner) == 0  # SIGTERM writes a last row on the way out
    finally:
        for proc in (actor, learner, driver):
            stop(proc)

    with Store.open(cfg.data_dir) as store:
        (run,) = store.list_runs()  # the actor's run; the learner found it from its episodes
        with store.session() as db:
            rows = list(db.scalars(select(LearnerMetrics).order_by(LearnerMetrics.id)))
    assert rows, "the learner wrote no metrics rows"
    trained = [r for r in rows if r.run_id == run.id]
    assert trained and trained[-1].update_step > 0
    assert trained[-1].env_steps == 4 * 8
    # Exactly the 32 sent, also when the learner started after the actor stored episodes
    # (loaded from the store then, and their queued transitions dropped as duplicates).
    assert trained[-1].online_transitions == 4 * 8 and trained[-1].online_episodes == 4
    assert any(r.updates_per_s > 0 for r in trained)
    assert "critic_loss" in trained[-1].scalars
    assert [r.update_step for r in rows] == sorted(r.update_step for r in rows)

    app = create_app(cfg, token_secret=SECRET)
    try:
        with TestClient(app):
            add_user(app.state.services.store, "viewer", "viewer")
            viewer = login(app, "viewer")
            r = viewer.get(f"/api/metrics/runs/{run.id}/learner")
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            assert [i["id"] for i in items] == [r.id for r in trained]
            assert items[-1]["update_step"] == trained[-1].update_step
            curve = viewer.get(f"/api/metrics/runs/{run.id}/episodes").json()["items"]
            assert [i["env_steps"] for i in curve] == [8, 16, 24, 32]
            # The run's summary counts the checkpoint SIGTERM wrote and what the learner holds.
            summary = viewer.get(f"/api/metrics/runs/{run.id}").json()
            assert summary["checkpoints"] == 1
            assert summary["latest_checkpoint_update_steps"] == trained[-1].update_step
            assert summary["learner_demo_episodes"] == trained[-1].demo_episodes
            viewer.client.close()
    finally:
        app.state.services.close()


PRETRAIN = 300  # tiny-network updates: a few seconds, longer than the actor takes to start


def test_the_actor_holds_still_until_the_learner_has_pretrained_on_the_demos(
        write_config, sock_dir: Path) -> None:
    path = write_config(
        actor={"observe_state": True, "episode_steps": 8, "policy": {"kind": "expert"},
               **LOADED_MACHINE},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 3, "checkpoint_every": 10_000, "utd": 1.0,
                 "pretrain_updates": PRETRAIN,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN},
    )
    raw = yaml.safe_load(path.read_text())
    run_episodes_on_sim(parse_config(raw), 3, threading.Event(), lambda r: None, is_demo=True)
    raw["actor"]["policy"] = {"kind": "cqn"}
    path.write_text(yaml.safe_dump(raw))
    driver = spawn("driver", str(path))
    learner = spawn("learner", str(path))
    actor = spawn("actor", str(path))
    tele = Telemetry(raw)
    try:
        first = tele.wait_for(lambda v: "step" in v, 180, "the actor's first step")
        # Its first action already came from the pretrained critic, not the untrained one.
        assert first["policy_updates"] >= PRETRAIN
        # And from there on the learner keeps to its budget: pretraining on top of one
        # update per demo and per environment step.
        later = tele.wait_for(lambda v: "step" in v and v["policy_updates"] > first[
            "policy_updates"], 120, "weights trained on practice")
        assert actor.poll() is None and later["policy_version"] > first["policy_version"]
    finally:
        tele.close()
        for proc in (actor, learner, driver):
            stop(proc)


def test_with_nothing_stored_to_pretrain_on_the_learner_says_so_and_does_not_hold_the_actor(
        cqn_config: Path) -> None:
    raw = yaml.safe_load(cqn_config.read_text())
    raw["learner"]["pretrain_updates"] = 50
    cfg = parse_config(raw)
    ctx = zmq.Context()
    sub = Subscriber(ctx, cfg.learner.weights_address, types=("weights",),
                     security=cfg.socket_security(cfg.learner.weights_address, "actor"))
    learner = Learner(cfg, ctx)
    try:
        time.sleep(0.3)  # the subscription reaches the publisher
        learner.start()
        msg = sub.wait_new("weights", timeout_s=10.0)
        assert msg is not None and msg.body["pretraining"] is False
        assert learner.pretraining is False and learner.counters.update_step == 0
    finally:
        learner.close()
        sub.close()
        ctx.term()


def test_an_idle_learner_resends_its_weights_to_a_late_subscriber(cqn_config: Path) -> None:
    cfg = load_config(cqn_config)  # nothing stored: no update to make, nothing new to publish
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    stop_learner = threading.Event()
    runner = threading.Thread(target=learner.run, args=(stop_learner,), daemon=True)
    runner.start()
    sub = None
    try:
        time.sleep(1.0)  # the first weights went out to nobody
        assert learner.counters.version == 1
        sub = Subscriber(ctx, cfg.learner.weights_address, types=("weights",),
                     security=cfg.socket_security(cfg.learner.weights_address, "actor"))
        msg = sub.wait_new("weights", timeout_s=10.0)
        assert msg is not None
        assert (msg.body["session"], msg.body["version"]) == (learner.session, 1)
        assert learner.counters.version == 1  # the same version again, not a new one
    finally:
        stop_learner.set()
        runner.join(30)
        if sub is not None:
            sub.close()
        learner.close()
        ctx.term()
