"""SpaceMouse takeover: the axis mapping, and a fake pyspacemouse (the vendor boundary)
driving a real actor process and sim driver process through `robolearn teleop spacemouse`'s
loop: the arm moves the way the cap is pushed and those steps are stored as interventions."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.actor.control import ActorControlClient, ActorStatus
from robolearn.cli.main import main
from robolearn.cli.teleop import run_spacemouse
from robolearn.config import load_config
from robolearn.config.hardware import SpaceMouseConfig
from robolearn.errors import ConfigError, DeviceNotConnected, PeerTimeout
from robolearn.hardware.spacemouse import SpaceMouseTeleop, deadzone, to_action
from robolearn.processes import ProcessGroup
from robolearn.protocol import Subscriber
from robolearn.store import Store
from tests.hardware.fakes import SpaceMouseState, World, fake_pyspacemouse

CFG = SpaceMouseConfig()


def reading(**axes: float) -> SpaceMouseState:
    return SpaceMouseState(**axes)


def test_deadzone_zeroes_a_resting_hand_and_starts_motion_smoothly() -> None:
    assert deadzone(0.05, 0.08) == 0.0 and deadzone(-0.08, 0.08) == 0.0
    assert deadzone(0.081, 0.08) == pytest.approx(0.001 / 0.92)
    assert deadzone(1.0, 0.08) == 1.0 and deadzone(-1.3, 0.08) == -1.0  # hard push clips
    assert deadzone(-0.54, 0.08) == pytest.approx(-0.5)


@pytest.mark.parametrize(("frame_yaw_deg", "forward_xy"), [
    (0.0, (1.0, 0.0)), (180.0, (-1.0, 0.0)), (90.0, (0.0, 1.0)),
])
def test_pushes_map_into_the_operators_frame(frame_yaw_deg: float, forward_xy) -> None:
    cfg = SpaceMouseConfig(deadzone=0.0, frame_yaw_deg=frame_yaw_deg)
    fwd = to_action(reading(y=0.5), cfg, use_yaw=False, gripper_closed=False)
    np.testing.assert_allclose(fwd, [0.5 * forward_xy[0], 0.5 * forward_xy[1], 0, -1],
                               atol=1e-6)
    right = to_action(reading(x=0.5), cfg, use_yaw=False, gripper_closed=True)
    # right is forward turned clockwise seen from above
    np.testing.assert_allclose(right, [0.5 * forward_xy[1], -0.5 * forward_xy[0], 0, 1],
                               atol=1e-6)
    up = to_action(reading(z=0.5), cfg, use_yaw=False, gripper_closed=False)
    np.testing.assert_allclose(up, [0, 0, 0.5, -1], atol=1e-6)


def test_gain_and_yaw() -> None:
    cfg = SpaceMouseConfig(deadzone=0.0, gain=0.5)
    a = to_action(reading(y=1.0, yaw=0.4), cfg, use_yaw=True, gripper_closed=False)
    np.testing.assert_allclose(a, [0.5, 0, 0, 0.2, -1], atol=1e-6)
    assert to_action(reading(yaw=0.4), cfg, use_yaw=False, gripper_closed=False).shape == (4,)
    inverted = SpaceMouseConfig(deadzone=0.0, invert_yaw=True)
    assert to_action(reading(yaw=0.4), inverted, use_yaw=True, gripper_closed=False)[3] == \
        pytest.approx(-0.4)


def test_a_non_finite_reading_is_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        to_action(reading(x=float("nan")), CFG, use_yaw=False, gripper_closed=False)


def test_one_button_cannot_do_both_jobs() -> None:
    with pytest.raises(ValueError, match="own button"):
        SpaceMouseConfig(gripper_button=1, takeover_button=1)


def test_missing_sdk_names_the_extra(write_config, caplog: pytest.LogCaptureFixture) -> None:
    # pyspacemouse is an optional extra, absent from the test venv
    if importlib.util.find_spec("pyspacemouse") is not None:
        pytest.skip("pyspacemouse is installed here")
    with caplog.at_level(logging.ERROR):
        assert main(["teleop", "spacemouse", str(write_config())]) == 2
    assert "pip install -e .[spacemouse]" in caplog.text


def test_no_device_and_a_missing_button_are_clear_errors(sock_dir: Path) -> None:
    client = ActorControlClient(f"ipc://{sock_dir}/nobody", timeout_s=0.1)
    try:
        with pytest.raises(DeviceNotConnected, match="cannot open"):
            SpaceMouseTeleop(CFG, client, use_yaw=False,
                             sdk=fake_pyspacemouse(World(), present=False)).connect()
        world = World()
        teleop = SpaceMouseTeleop(SpaceMouseConfig(takeover_button=3), client, use_yaw=False,
                                  sdk=fake_pyspacemouse(world))
        with teleop, pytest.raises(ConfigError, match="has 2 buttons"):
            teleop.tick()
        assert world.names() == ["open", "device.read", "device.close"]  # nothing was sent
    finally:
        client.close()


# --- against a real actor and sim driver ----------------------------------------------
PUSH_Y = 0.4  # forward, frame_yaw 0: along the base's +x
EXPECTED_X = (PUSH_Y - CFG.deadzone) / (1 - CFG.deadzone)


class Operator:
    """A hand on the fake SpaceMouse: moves the cap, presses buttons until the loop saw them."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _reads(self, n: int) -> None:
        target = self.world.reads + n
        deadline = time.monotonic() + 10.0
        while self.world.reads < target:
            assert time.monotonic() < deadline, "the teleop loop stopped reading the device"
            time.sleep(0.005)

    def press(self, button: int) -> None:
        self.world.spacemouse.buttons[button] = 1
        self._reads(2)
        self.world.spacemouse.buttons[button] = 0
        self._reads(2)

    def push(self, y: float) -> None:
        self.world.spacemouse.y = y
        self._reads(2)


def wait_status(client: ActorControlClient, ok, what: str, timeout_s: float = 60.0
                ) -> ActorStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = client.status()
            if ok(status):
                return status
        except PeerTimeout:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def ee_now(state: Subscriber) -> np.ndarray:
    since = time.monotonic_ns()
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        msg = state.wait_new("arm_state", timeout_s=1.0)
        if msg is not None and msg.body["stamp_ns"] > since:
            return np.array(msg.arrays["ee_pos_m"])
    raise AssertionError("the driver stopped publishing state")


def test_spacemouse_takeover_moves_the_sim_arm_and_is_recorded(write_config) -> None:
    cfg = load_config(write_config(actor={
        "episode_steps": 45, "end_on_success": False, "policy": {"kind": "zero"},
        "episodes": 1, "live_fps": 0,
        "teleop_stale_ms": 2000,  # a loaded 2-core CI machine must not starve the stream
        "takeover_timeout_ms": 4000,
    }))
    world = World()
    hand = Operator(world)
    ctx = zmq.Context()
    group = ProcessGroup(cfg, log_level="warning")
    client = ActorControlClient(cfg.actor.control_address,
                                cfg.socket_security(cfg.actor.control_address, "operator"),
                                ctx=ctx, timeout_s=2.0)
    state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                       security=cfg.socket_security(cfg.robot.state_address, "operator"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def teleop_loop() -> None:
        try:
            run_spacemouse(cfg, stop, sdk=fake_pyspacemouse(world), timeout_s=2.0)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    loop = threading.Thread(target=teleop_loop, daemon=True)
    try:
        group.start_drivers()
        group.start_actor()
        wait_status(client, lambda s: s.step >= 3, "the actor to start stepping")
        loop.start()
        hand._reads(1)
        before = ee_now(state)
        hand.press(cfg.spacemouse.takeover_button)
        start = wait_status(client, lambda s: s.takeover, "the takeover").step
        hand.push(PUSH_Y)
        wait_status(client, lambda s: s.step >= start + 8, "8 teleoperated steps")
        hand.press(cfg.spacemouse.gripper_button)
        gripped = client.status().step
        wait_status(client, lambda s: s.step >= gripped + 3, "3 more steps")
        after = ee_now(state)
        hand.push(0.0)
        hand.press(cfg.spacemouse.takeover_button)
        wait_status(client, lambda s: not s.takeover, "the takeover to end")
        stop.set()
        loop.join(timeout=10)
        assert not errors, errors
        assert group.wait_any() == [("actor", 0)]  # its one episode ran to the step limit
    finally:
        stop.set()
        if loop.is_alive():
            loop.join(timeout=10)
        client.close()
        state.close()
        group.stop()
        ctx.term()

    # The exact SDK calls: one open, reads only, one close.
    assert world.calls[0] == ("open", (), {"nonblocking": True, "device": None,
                                           "device_index": 0})
    assert set(world.names()[1:-1]) == {"device.read"} and world.names()[-1] == "device.close"

    moved = after - before
    assert moved[0] > 0.05, f"the arm did not move along +x: {moved}"
    assert abs(moved[1]) < 0.02 and abs(moved[2]) < 0.02, moved

    with Store.open(cfg.data_dir) as store:
        (record,) = store.list_episodes()
        data = store.load_episode(record.id)
    flags, actions = data.arrays["intervention"], data.arrays["action"]
    assert record.has_intervention and 8 <= flags.sum() < len(flags)
    pushed = flags & (actions[:, 0] > 0.1)
    assert pushed.sum() >= 8
    np.testing.assert_allclose(actions[pushed, :3],
                               np.tile([EXPECTED_X, 0, 0], (pushed.sum(), 1)), atol=1e-4)
    # The gripper toggle reached the arm: open at first, closed after the press.
    grips = actions[flags, -1]
    assert grips[0] == -1.0 and grips[-1] == 1.0
    np.testing.assert_allclose(actions[~flags], np.tile([0, 0, 0, -1], ((~flags).sum(), 1)))
