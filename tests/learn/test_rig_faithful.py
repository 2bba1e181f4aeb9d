"""A rig-faithful run (cameras + proprioception, success from the classifier) between real
processes: nothing that only the sim knows reaches the actor's observation, the transitions
the learner takes, its replay, the reward or an episode's end.

The sim driver runs with a canary: its object positions are a value no real quantity takes
and its success verdict is fixed, opposite to the classifier's. Were either read anywhere the
learner looks, the canary would show up there, or the episodes would end where the sim says.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
import zmq

from robolearn.actor.env import PROPRIO_DIM
from robolearn.config import load_config
from robolearn.learn.learner import Learner
from robolearn.protocol import Puller
from robolearn.rewards import records
from robolearn.rewards.classifier import FORMAT, ClassifierHead, encode_frames, load_encoder_for
from robolearn.store import Store
from tests.learn.test_learner_process import CLI, LOADED_MACHINE, TINY_CQN, stop

CANARY = 4242.0
STEPS = 6

# The sim driver, with what only the sim knows replaced by the canary.
CANARY_DRIVER = textwrap.dedent('''
    import dataclasses, sys
    import numpy as np
    from robolearn.hardware.sim.driver import SimArm
    success = sys.argv[2] == "success"
    read = SimArm.read
    def canary_read(self):
        s = read(self)
        objects = None if s.object_state is None else np.full_like(s.object_state, CANARY)
        return dataclasses.replace(s, task_success=success, object_state=objects)
    SimArm.read = canary_read
    from robolearn.cli.main import main
    sys.exit(main(["--log-level", "warning", "driver", sys.argv[1]]))
''').replace("CANARY", repr(CANARY))


def write_classifier(path: Path, threshold: float) -> None:
    """A real classifier (the frozen encoder + an untrained head) whose threshold makes it
    judge every frame a success (< 0) or none (> 1)."""
    from robolearn.config.rewards import ClassifierConfig

    cfg = ClassifierConfig(cameras=("front", "wrist"), image_size=32)
    encoder = load_encoder_for(cfg)
    shape = tuple(encode_frames(encoder, np.zeros((1, 48, 48, 3), np.uint8)).shape[1:])
    head = ClassifierHead(2, shape, cfg)
    records.save_atomic({
        "kind": "classifier", "format": FORMAT, "config": cfg.model_dump(mode="json"),
        "cameras": ["front", "wrist"], "encoder": encoder.name,
        "input_size": encoder.input_size, "feature_shape": list(shape),
        "head": head.state_dict(), "threshold": threshold, "report": {},
    }, path)


@pytest.mark.parametrize("sim_says, classifier_says", [("success", "never"),
                                                       ("failure", "always")])
def test_nothing_only_the_sim_knows_reaches_the_learner(write_config, sock_dir: Path,
                                                        tmp_path: Path, sim_says: str,
                                                        classifier_says: str) -> None:
    model = tmp_path / "classifier.pt"
    write_classifier(model, -1.0 if classifier_says == "always" else 2.0)
    path = write_config(
        cameras=[{"kind": "sim", "name": "front", "width": 48, "height": 48, "fps": 20},
                 {"kind": "sim", "name": "wrist", "width": 48, "height": 48, "fps": 20}],
        actor={"observe_state": False, "episode_steps": STEPS, "policy": {"kind": "random"},
               **LOADED_MACHINE},
        rewards={"sparse": "classifier", "success_frames": 2, "evaluate_sim_success": True,
                 "classifier": {"model_path": str(model), "cameras": ["front", "wrist"]}},
        learner={"enabled": True, "observation": "pixels", "min_transitions": 10_000,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN},
    )
    cfg = load_config(path)
    ctx = zmq.Context()
    # The test stands in for the learner on its real, authenticated transitions socket.
    address = cfg.learner.transitions_address
    puller = Puller(ctx, address, security=cfg.socket_security(address, "learner"))
    driver = subprocess.Popen([sys.executable, "-c", CANARY_DRIVER, str(path), sim_says])
    actor = subprocess.Popen([*CLI, "actor", str(path), "--episodes", "3"])
    episodes: dict[str, list] = {}
    try:
        while True:
            msg = puller.recv(0.5)
            if msg is None:
                if actor.poll() is not None:
                    break
            elif msg.type == "transition":
                episodes.setdefault(msg.body["episode"], []).append(msg)
        assert actor.returncode == 0
    finally:
        puller.close()
        stop(actor)
        stop(driver)
    assert len(episodes) == 3

    # What the learner is sent: camera images and proprioception, the classifier's verdict.
    expected_len = 2 if classifier_says == "always" else STEPS
    for steps in episodes.values():
        assert len(steps) == expected_len
        for msg in steps:
            names = set(msg.arrays)
            assert names <= {"action", "low_dim", "next_low_dim", "rgb_front", "rgb_wrist",
                             "next_rgb_front", "next_rgb_wrist"}, names
            for name in ("low_dim", "next_low_dim"):
                if name in msg.arrays:
                    assert msg.arrays[name].shape == (PROPRIO_DIM,)
                    assert not np.isclose(msg.arrays[name], CANARY).any()
        rewards = [m.body["reward"] for m in steps]
        ends = [m.body["terminated"] for m in steps]
        if classifier_says == "always":
            assert rewards == [0.0, 1.0] and ends == [False, True]  # the 2-frame streak
        else:
            assert rewards == [0.0] * STEPS and not any(ends)
            assert steps[-1].body["truncated"]

    # What was stored: no world state; the outcome is the classifier's, and the sim's own
    # verdict (the canary) is kept only as a logged scalar.
    with Store.open(cfg.data_dir) as store:
        stored = store.list_episodes(status="complete")
        assert len(stored) == 3
        for record in stored:
            data = store.load_episode(record.id)
            assert "state" not in data.arrays
            assert record.outcome == ("success" if classifier_says == "always" else "timeout")
        with store.session() as db:
            from sqlalchemy import select

            from robolearn.store.models import Step
            logged = {s["sim_success"] for s in db.scalars(select(Step.scalars))}
        assert logged == {1.0 if sim_says == "success" else 0.0}

    # What the learner trains on: the stored episodes judged again by the classifier.
    learner = Learner(cfg, ctx)
    try:
        learner.start()
        assert learner.online.num_episodes == 3
        batch = learner.online.sample(32)
        assert batch.low_dim_obs.shape[-1] == PROPRIO_DIM
        assert not np.isclose(batch.low_dim_obs.numpy(), CANARY).any()
        reward, discount = batch.reward.numpy(), batch.discount.numpy()
        if classifier_says == "always":
            # 6 transitions, half of them the classifier's success: a sample of 32 has both.
            assert set(reward.tolist()) == {0.0, 1.0}
            assert (discount[reward == 1.0] == 0).all() and (discount[reward == 0.0] > 0).all()
        else:
            assert (reward == 0).all() and (discount > 0).all()
            assert len(learner.demos) == 0  # no success, so nothing relabelled as a demo
    finally:
        learner.close()
        ctx.term()


def test_a_demo_the_sim_called_a_success_is_judged_by_the_classifier(write_config,
                                                                     tmp_path: Path) -> None:
    """Demonstrations stored with the sim's verdict (as `demos collect` records them) reach
    the learner with the classifier's: here it sees no success, so no reward and no end."""
    model = tmp_path / "classifier.pt"
    write_classifier(model, 2.0)
    raw = yaml.safe_load(write_config(
        cameras=[{"kind": "sim", "name": "front", "width": 48, "height": 48, "fps": 20},
                 {"kind": "sim", "name": "wrist", "width": 48, "height": 48, "fps": 20}],
        actor={"observe_state": False},
        rewards={"sparse": "classifier",
                 "classifier": {"model_path": str(model), "cameras": ["front", "wrist"]}},
        learner={"enabled": True, "observation": "pixels", "cqn": TINY_CQN}).read_text())
    cfg = load_config(write_config(**{k: v for k, v in raw.items()
                                      if k not in ("name", "data_dir")}))
    rng = np.random.default_rng(0)
    with Store.open(cfg.data_dir) as store:
        run = store.create_run("demos", {"rewards": {"sparse": "sim_success"}})
        with store.begin_episode(run, "reach", ["front", "wrist"], is_demo=True,
                                 policy="expert") as writer:
            for t in range(5):
                writer.add_step({c: rng.integers(0, 255, (48, 48, 3), np.uint8)
                                 for c in ("front", "wrist")},
                                rng.normal(size=PROPRIO_DIM).astype(np.float32),
                                np.zeros(4, np.float32), float(t == 4), t == 4)
            writer.finish({c: rng.integers(0, 255, (48, 48, 3), np.uint8)
                           for c in ("front", "wrist")},
                          rng.normal(size=PROPRIO_DIM).astype(np.float32), "success",
                          "success")
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    try:
        learner.start()
        assert learner.online.num_episodes == 1 and len(learner.demos) == 0
        batch = learner.online.sample(16)
        assert (batch.reward.numpy() == 0).all() and (batch.discount.numpy() > 0).all()
    finally:
        learner.close()
        ctx.term()
