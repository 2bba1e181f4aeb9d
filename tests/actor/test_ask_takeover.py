"""actor.ask_takeover: when the critic stays unsure, the robot opens an uncertain_takeover
request and holds until a person answers it or takes over.

The decision (UncertaintyStreak) is tested step by step; the whole path over real processes:
one robot of a fleet, its sim driver and actor processes, an untrained CQN critic (the uniform
return distribution, std > 0 = threshold), the request answered through the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
import zmq

from robolearn.actor.ask_takeover import TakeoverAsker, UncertaintyStreak
from robolearn.actor.control import ActorControlClient
from robolearn.actor.control_server import OperatorState
from robolearn.actor.policies import ZeroPolicy
from robolearn.config import RunConfig, load_config
from robolearn.config.fleet import robot_views
from robolearn.config.models import AskTakeoverConfig
from robolearn.errors import ConfigError, PeerTimeout
from robolearn.processes import ProcessGroup
from robolearn.protocol import Requester
from robolearn.store import Store
from robolearn.store.operator_requests import OperatorRequestRecord, list_requests, resolve_request

CFG = AskTakeoverConfig(enabled=True, threshold=0.5, consecutive_steps=3, cooldown_s=10.0)


def feed(streak: UncertaintyStreak, values: list[float | None], t0: float = 0.0,
         **flags: bool) -> list[bool]:
    """Whether each step asked (steps 0.1 s apart from t0)."""
    return [streak.observe(v, t0 + 0.1 * i, **({"policy_drove": True} | flags)) is not None
            for i, v in enumerate(values)]


def test_asks_after_consecutive_steps_above_the_threshold() -> None:
    streak = UncertaintyStreak(CFG)
    assert feed(streak, [0.6, 0.7, 0.5]) == [False] * 3  # 0.5 is not above 0.5
    assert feed(streak, [0.6, 0.9], t0=1.0) == [False, False]
    ask = streak.observe(1.2, 2.0, policy_drove=True)
    assert ask is not None and ask.steps == 3
    assert ask.mean == pytest.approx(0.9) and ask.last == 1.2 and ask.threshold == 0.5
    assert "3 policy steps" in ask.reason() and "0.900" in ask.reason() \
        and "threshold 0.500" in ask.reason()
    assert streak.streak == 0  # asking starts a new count


@pytest.mark.parametrize("breaker", [
    {"value": None}, {"value": float("nan")}, {"policy_drove": False}, {"estop": True},
    {"evaluation": True}, {"episode_ends": True}])
def test_a_step_that_is_not_an_unsure_policy_step_breaks_the_streak(breaker: dict) -> None:
    streak = UncertaintyStreak(CFG)
    value = breaker.pop("value", 0.9)
    assert feed(streak, [0.9, 0.9]) == [False, False]
    assert streak.observe(value, 0.3, **({"policy_drove": True} | breaker)) is None
    assert streak.streak == 0
    assert feed(streak, [0.9, 0.9, 0.9], t0=0.4) == [False, False, True]


def test_no_ask_within_the_cooldown_after_an_answer() -> None:
    streak = UncertaintyStreak(CFG)
    assert feed(streak, [0.9] * 3) == [False, False, True]
    streak.answered(now_s=5.0)  # quiet until 15 s
    assert feed(streak, [0.9] * 30, t0=5.0) == [False] * 30  # up to 7.9 s
    # The streak kept counting meanwhile: the first step after the cooldown asks.
    assert feed(streak, [0.9], t0=15.0) == [True]
    streak.answered(now_s=20.0)
    assert streak.streak == 0
    assert feed(streak, [0.9] * 4, t0=30.0) == [False, False, True, False]


# ---------------------------------------------------------------- over real processes
TINY_CQN = {"frame_stack": 1, "hidden_dim": 32, "feature_dim": 16, "atoms": 11}
TELEOP = [0.2, 0.0, 0.0, 1.0]


def _wait(what: str, check: Callable[[], object], timeout_s: float = 60.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def motions(view: RunConfig, ctx: zmq.Context) -> tuple[int, bool]:
    """The driver's count of executed motion commands, and whether the arm is moving."""
    req = Requester(ctx, view.robot.command_address, "test",
                    security=view.socket_security(view.robot.command_address, "operator"))
    try:
        data = req.request("arm_command", {"command": "status"}, timeout_s=2.0).body["data"]
    finally:
        req.close()
    return int(data["motions"]), bool(data["moving"])


def test_an_unsure_robot_asks_holds_and_goes_on_when_answered(write_config) -> None:
    path = write_config(
        actor={"observe_state": True, "episode_steps": 600, "end_on_success": False,
               "episodes": 1, "live_fps": 0, "max_obs_age_ms": 1000.0,
               "teleop_stale_ms": 2000, "takeover_timeout_ms": 4000,
               "policy": {"kind": "cqn"},
               # an untrained critic's return std is > 0 at every step: it asks after 3
               "ask_takeover": {"enabled": True, "threshold": 0.0, "consecutive_steps": 3,
                                "cooldown_s": 0.0, "request_poll_s": 0.05}},
        learner={"enabled": False, "observation": "state", "cqn": TINY_CQN})
    raw = yaml.safe_load(path.read_text())
    raw["fleet"] = {"robots": [{"name": "left"}, {"name": "right"}]}
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    right = robot_views(cfg)[1]
    ctx = zmq.Context()
    group = ProcessGroup(cfg, log_level="warning", robots=["right"])  # only this robot runs
    client = ActorControlClient(right.actor.control_address,
                                right.socket_security(right.actor.control_address, "operator"),
                                ctx=ctx, timeout_s=2.0)
    store = Store.open(cfg.data_dir)

    def open_requests() -> list[OperatorRequestRecord]:
        with store.session() as db:
            return list_requests(db, status="open")

    def resolve(request_id: int, resolution: str) -> None:
        with store.session() as db:
            resolve_request(db, request_id, resolution, None)
            db.commit()

    def step() -> int:
        try:
            return client.status().step
        except PeerTimeout:
            return -1

    try:
        group.start_drivers()
        group.start_actor()
        (first,) = _wait("the first request", open_requests, 120.0)  # type: ignore[misc]
        assert (first.kind, first.robot, first.priority) == ("uncertain_takeover", "right", 1)
        assert "3 policy steps" in first.reason and "threshold 0.000" in first.reason
        # Held: no motion command reaches the arm and the episode does not advance.
        moved, held_at = motions(right, ctx), step()
        time.sleep(1.0)
        assert motions(right, ctx) == moved and not moved[1]
        assert step() == held_at >= 3
        assert [r.id for r in open_requests()] == [first.id]  # one open request

        # Dismissed: the policy drives on (the arm moves again) and, still unsure with no
        # cooldown, asks again three steps later.
        resolve(first.id, "dismiss")
        (second,) = _wait("a second request", lambda: [
            r for r in open_requests() if r.id != first.id])  # type: ignore[misc]
        assert motions(right, ctx)[0] > moved[0]
        assert second.robot == "right"

        # Taken over: the hold ends and the operator's teleop drives the episode on; no new
        # request opens while the operator drives.
        assert client.takeover(True, operator="tester").takeover
        start = step()
        _wait("teleop steps", lambda: client.teleop(TELEOP).step >= start + 5, 60.0)
        assert [r.id for r in open_requests()] == [second.id]
        resolve(second.id, "takeover")
        assert not client.takeover(False).takeover
        # The policy drives again, asks again: the robot keeps asking while unsure.
        _wait("a third request", lambda: [r for r in open_requests()
                                          if r.id not in (first.id, second.id)])
        assert not group.exited(), group.exited()
    finally:
        client.close()
        group.stop()
        store.close()
        ctx.term()


def test_refused_without_a_critic_or_a_store(tmp_path: Path) -> None:
    class Unsure(ZeroPolicy):
        last_uncertainty = 1.0

    operator = OperatorState(4, threading.Event())
    with Store.open(tmp_path) as store:
        with pytest.raises(ConfigError, match="ZeroPolicy has no critic"):
            TakeoverAsker(CFG, ZeroPolicy(4), store, "left", operator, print)
        TakeoverAsker(CFG, Unsure(4), store, "left", operator, print)
    with pytest.raises(ConfigError, match="records nothing"):
        TakeoverAsker(CFG, Unsure(4), None, "left", operator, print)
