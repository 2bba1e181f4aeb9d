"""The learner under faults, with real sockets and files: divergence stops it before anything
non-finite leaves it, ingest is bounded and refuses strangers, checkpoints and episode files
that fail leave a clean state."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zmq

from robolearn.config import RunConfig, load_config, parse_config
from robolearn.errors import TrainingDiverged
from robolearn.learn.learner import Learner
from robolearn.learn.observation import obs_spec_for
from robolearn.protocol import Pusher, Subscriber
from tests.learn.test_learner_process import TINY_CQN


@pytest.fixture
def cfg(write_config, sock_dir: Path) -> RunConfig:
    return load_config(write_config(
        actor={"observe_state": True, "episode_steps": 8},
        learner={"enabled": True, "observation": "state", "min_transitions": 16,
                 "publish_every": 1, "checkpoint_every": 1, "utd": None,
                 "keep_checkpoints": 2,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN}))


def fill_buffer(learner: Learner, episodes: int = 4, steps: int = 8) -> None:
    rng = np.random.default_rng(0)
    low = learner.spec.low_dim
    for _ in range(episodes):
        learner.replay.start_episode(None, rng.normal(size=low).astype(np.float32))
        for t in range(steps):
            learner.replay.add(rng.uniform(-1, 1, learner.action_dim).astype(np.float32),
                               0.0, None, rng.normal(size=low).astype(np.float32),
                               terminated=False, truncated=t == steps - 1)


def test_nan_parameters_stop_the_learner_before_weights_or_a_checkpoint_go_out(
        cfg: RunConfig) -> None:
    ctx = zmq.Context()
    addr = cfg.learner.weights_address
    sub = Subscriber(ctx, addr, types=("weights", "learner_status"),
                     security=cfg.socket_security(addr, "actor"))
    learner = Learner(cfg, ctx)
    try:
        time.sleep(0.3)  # the subscription reaches the publisher
        learner.start()
        fill_buffer(learner)
        learner.update()  # a good update: weights version 2 and ckpt_000000001
        good = learner.last_checkpoint
        assert good is not None and sub.wait_new("weights", 10.0).body["version"] == 2
        with torch.no_grad():
            next(learner.agent.critic.parameters()).view(-1)[0] = float("nan")
        with pytest.raises(TrainingDiverged, match=r"went NaN or inf.*last good checkpoint"):
            learner.update()
        assert learner.counters.version == 2
        assert sub.wait_new("weights", 1.0) is None  # nothing after the fault
        status = sub.wait_new("learner_status", 5.0)
        assert status is not None and status.body["state"] == "failed"
        assert sorted(p.name for p in learner.ckpt_dir.iterdir()) == [good.name]
        with pytest.raises(TrainingDiverged):  # and stays stopped
            learner.save_checkpoint()
    finally:
        learner.close()
        sub.close()
        ctx.term()


def test_a_diverging_learner_process_exits_non_zero_keeping_its_good_checkpoint(
        cfg: RunConfig, tmp_path: Path) -> None:
    raw = cfg.model_dump(mode="json")
    path = tmp_path / "diverge.yaml"
    import yaml

    # lr 1e20: the first update leaves finite but huge weights, the next loss is NaN.
    raw["learner"]["cqn"]["lr"] = 1e20
    path.write_text(yaml.safe_dump(raw))
    bad = parse_config(raw)
    pusher_ctx = zmq.Context()
    addr = bad.learner.weights_address
    sub = Subscriber(pusher_ctx, addr, types=("weights",),
                     security=bad.socket_security(addr, "actor"))
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.cli.main", "learner", str(path)],
                            stderr=subprocess.PIPE, text=True)
    push = Pusher(pusher_ctx, bad.learner.transitions_address, "actor",
                  security=bad.socket_security(bad.learner.transitions_address, "actor"))
    weights = []
    try:
        rng = np.random.default_rng(1)
        low, dim = obs_spec_for(bad).low_dim, bad.actor.action_scale.action_dim
        for e in range(4):
            for t in range(8):
                arrays = {"action": rng.uniform(-1, 1, dim).astype(np.float32),
                          "next_low_dim": rng.normal(size=low).astype(np.float32)}
                if t == 0:
                    arrays["low_dim"] = rng.normal(size=low).astype(np.float32)
                push.send("transition", {"episode": f"e{e}", "step": t, "reward": 0.0,
                                         "terminated": False, "truncated": t == 7,
                                         "intervention": False, "recorded": False,
                                         "task": "reach"}, arrays)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            msg = sub.wait_new("weights", 0.5)
            if msg is not None:
                weights.append(msg)
        rc = proc.wait(10)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        push.close()
        sub.close()
        pusher_ctx.term()
    assert rc == 2, err[-3000:]
    assert "training diverged" in err and "went NaN or inf" in err
    from robolearn.learn.weights import nonfinite_tensors, unpack_policy

    for msg in weights:
        assert not nonfinite_tensors(unpack_policy(list(msg.body["layout"]),
                                                   msg.arrays["blob"]))
    ckpts = sorted((bad.data_dir / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts, "no good checkpoint was kept"
    for ckpt in ckpts:
        state = torch.load(ckpt, weights_only=True)
        for tensor in state["agent"]["networks"].values():
            assert torch.isfinite(tensor).all(), ckpt
    assert not list((bad.data_dir / "checkpoints").glob("*.tmp"))


def transition(episode: str, step: int, low: int, dim: int, *, last: bool,
               intervention: bool = True) -> tuple[dict, dict]:
    arrays = {"action": np.zeros(dim, np.float32), "next_low_dim": np.zeros(low, np.float32)}
    if step == 0:
        arrays["low_dim"] = np.zeros(low, np.float32)
    return ({"episode": episode, "step": step, "reward": 1.0, "terminated": last,
             "truncated": False, "intervention": intervention, "recorded": False,
             "task": "reach"}, arrays)


def test_forged_one_step_interventions_never_reach_the_demos_and_pending_is_bounded(
        cfg: RunConfig, caplog: pytest.LogCaptureFixture) -> None:
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    addr = cfg.learner.transitions_address
    # An unauthenticated-looking sender with the actor's keys stands in for a forger that
    # got onto the socket: the learner's own checks must hold.
    push = Pusher(ctx, addr, "actor", security=cfg.socket_security(addr, "actor"),
                  sndhwm=100_000)
    low, dim = learner.spec.low_dim, learner.action_dim
    try:
        for i in range(2000):  # finished one-step "successful interventions"
            push.send("transition", *transition(f"forged-{i}", 0, low, dim, last=True))
        for i in range(2000):  # and unfinished episodes that never end
            push.send("transition", *transition(f"open-{i}", 0, low, dim, last=False))
        handled = 0
        deadline = time.monotonic() + 60
        while handled < 4000 and time.monotonic() < deadline:
            handled += learner.drain(0.2)
        assert handled == 4000
        assert len(learner.demos) == 0 and learner.demos.num_episodes == 0
        assert learner.assembler.pending_steps <= learner.assembler.limits.max_steps
        assert "dropped pending episode" in caplog.text
        # A real episode with a takeover of several steps still makes it in.
        for t in range(8):
            push.send("transition", *transition("real", t, low, dim, last=t == 7,
                                                intervention=2 <= t < 6))
        deadline = time.monotonic() + 30
        while learner.demos.num_episodes == 0 and time.monotonic() < deadline:
            learner.drain(0.2)
        assert learner.demos.num_episodes == 1
    finally:
        push.close()
        learner.close()
        ctx.term()


def test_transitions_of_another_identity_are_refused_and_count_for_nothing(
        cfg: RunConfig) -> None:
    from robolearn.protocol.codec import decode, encode

    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        low, dim = learner.spec.low_dim, learner.action_dim
        for t in range(8):
            frames = encode("transition", "actor", t, *transition("e", t, low, dim,
                                                                 last=t == 7))
            msg = dataclasses.replace(decode(frames), peer="driver")
            learner._on_message(msg)
        assert learner.counters.env_steps == 0 and learner.counters.episodes == 0
        assert learner.assembler.pending_episodes == 0 and len(learner.online) == 0
        for t in range(8):  # the same from the actor's identity is taken
            frames = encode("transition", "actor", t, *transition("e", t, low, dim,
                                                                 last=t == 7))
            learner._on_message(dataclasses.replace(decode(frames), peer="actor"))
        assert learner.counters.env_steps == 8 and learner.counters.episodes == 1
    finally:
        learner.close()
        ctx.term()


def test_checkpoints_prune_fall_back_past_a_truncated_one_and_fail_cleanly(
        cfg: RunConfig, caplog: pytest.LogCaptureFixture) -> None:
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        learner.start()
        fill_buffer(learner)
        for _ in range(4):
            learner.update()  # a checkpoint each (checkpoint_every 1), keep_checkpoints 2
        names = sorted(p.name for p in learner.ckpt_dir.iterdir())
        assert names == ["ckpt_000000003.pt", "ckpt_000000004.pt"]
        newest = learner.ckpt_dir / names[-1]
        newest.write_bytes(newest.read_bytes()[:1000])  # truncated (disk full, crash)
    finally:
        learner.close()
        ctx.term()
    ctx = zmq.Context()
    resumed = Learner(cfg, ctx, resume=True)
    try:
        with caplog.at_level(logging.WARNING):
            resumed.start()
        assert resumed.counters.update_step == 3
        assert "ckpt_000000004.pt is damaged" in caplog.text
        assert "resumed from ckpt_000000003.pt" in caplog.text
    finally:
        resumed.close()
        ctx.term()


def test_a_failed_checkpoint_write_is_a_clear_error_and_leaves_no_temp_file(
        cfg: RunConfig, tmp_path: Path) -> None:
    # A real write failure: the file size limit (RLIMIT_FSIZE) makes the kernel refuse the
    # write past 64 kB, as a full disk would (EFBIG instead of ENOSPC).
    script = (
        "import resource, signal, sys, zmq\n"
        "from robolearn.config import load_config\n"
        "from robolearn.errors import StoreError\n"
        "from robolearn.learn.learner import Learner\n"
        "cfg = load_config(sys.argv[1])\n"
        "learner = Learner(cfg, zmq.Context())\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    learner.save_checkpoint()\n"
        "except StoreError as e:\n"
        "    print('ERR', e)\n"
        "learner.close()\n"
    )
    path = tmp_path / "cfg.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert "ERR learner: could not write checkpoint" in out.stdout, out.stdout + out.stderr
    assert "nothing was written" in out.stdout
    assert list((cfg.data_dir / "checkpoints").iterdir()) == []  # no .tmp, no .pt
