"""SpaceMouse takeover: read the device, map it to policy actions, send them to the actor.

One button starts a takeover and the next press ends it; another toggles the gripper. While
a takeover is active every tick sends the mapped action as teleop, which the actor puts
through its safety filter and records as an intervention. The vendor SDK (pyspacemouse) is
called only in `connect`, `tick` (device.read) and `close`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robolearn.config.hardware import SpaceMouseConfig
from robolearn.errors import ConfigError, ControlRefused, DeviceNotConnected, PeerTimeout
from robolearn.hardware.spacemouse.mapping import to_action
from robolearn.hardware.vendor import import_sdk

log = logging.getLogger(__name__)


class TakeoverClient(Protocol):
    """What the teleop needs of `robolearn.actor.control.ActorControlClient`."""

    def takeover(self, active: bool, *, operator: str = "") -> Any: ...

    def teleop(self, action: Sequence[float]) -> Any: ...


@dataclass(frozen=True)
class TeleopTick:
    """What one tick did.

    Attributes:
        takeover: a takeover is active after this tick.
        gripper_closed: the gripper toggle's state.
        action: the action sent as teleop, or None when none was sent.
    """

    takeover: bool
    gripper_closed: bool
    action: np.ndarray | None


class SpaceMouseTeleop:
    """Args:
        cfg: deadzone, gain, frame, buttons and rate.
        client: the actor's control client.
        use_yaw: the run's actions carry yaw (cfg.actor.action_scale.use_yaw).
        sdk: the pyspacemouse module, or an object with its `open`; None imports it.
        operator: the name the actor logs for takeovers.
    """

    def __init__(self, cfg: SpaceMouseConfig, client: TakeoverClient, *, use_yaw: bool,
                 sdk: Any | None = None, operator: str = "spacemouse") -> None:
        self.cfg = cfg
        self.client = client
        self.use_yaw = use_yaw
        self.operator = operator
        self._sdk = sdk
        self._device: Any | None = None
        self._buttons: list[int] = []
        self.takeover = False
        self.gripper_closed = False
        self.refusals = 0

    def connect(self) -> None:
        """Open the device.

        Raises:
            ConfigError: pyspacemouse is not installed (names the extra).
            DeviceNotConnected: no SpaceMouse found or it cannot be opened.
        """
        sdk = self._sdk or import_sdk("pyspacemouse", "spacemouse", "SpaceMouse")
        try:
            self._device = sdk.open(device_index=self.cfg.device_index, nonblocking=True)
        except (RuntimeError, ValueError, OSError) as e:
            raise DeviceNotConnected(
                f"SpaceMouse #{self.cfg.device_index}: cannot open it ({e}); is it plugged in, "
                "and may this user read /dev/hidraw* (a udev rule for 3Dconnexion devices)?"
            ) from e
        self._buttons = []
        log.info("SpaceMouse #%d open", self.cfg.device_index)

    def close(self) -> None:
        """End an active takeover (the policy resumes), then close the device."""
        try:
            if self.takeover:
                self._set_takeover(False)
        finally:
            if self._device is not None:
                self._device.close()
                self._device = None

    def __enter__(self) -> SpaceMouseTeleop:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pressed(self, buttons: Sequence[int]) -> set[int]:
        """Indices that went from released to pressed since the last reading."""
        now = [int(b) for b in buttons]
        for name, idx in (("gripper_button", self.cfg.gripper_button),
                          ("takeover_button", self.cfg.takeover_button)):
            if idx >= len(now):
                raise ConfigError(f"spacemouse.{name} is {idx} but this SpaceMouse has "
                                  f"{len(now)} buttons (0..{len(now) - 1})")
        before = self._buttons or [0] * len(now)
        self._buttons = now
        return {i for i, (a, b) in enumerate(zip(before, now, strict=False)) if b and not a}

    def _set_takeover(self, active: bool) -> None:
        try:
            status = self.client.takeover(active, operator=self.operator)
        except (PeerTimeout, ControlRefused) as e:
            self.refusals += 1
            log.warning("SpaceMouse: takeover %s failed: %s", "start" if active else "end", e)
            return
        self.takeover = bool(status.takeover)
        log.info("SpaceMouse: takeover %s", "started" if self.takeover else "ended")

    def tick(self) -> TeleopTick:
        """Read the device once; handle button presses; send teleop while in takeover.

        Raises:
            DeviceNotConnected: before connect().
            ConfigError: a configured button does not exist on this device.
        """
        if self._device is None:
            raise DeviceNotConnected("SpaceMouse: tick() before connect(); use `with`")
        reading = self._device.read()
        pressed = self._pressed(reading.buttons)
        if self.cfg.gripper_button in pressed:
            self.gripper_closed = not self.gripper_closed
        if self.cfg.takeover_button in pressed:
            self._set_takeover(not self.takeover)
        if not self.takeover:
            return TeleopTick(False, self.gripper_closed, None)
        try:
            action = to_action(reading, self.cfg, use_yaw=self.use_yaw,
                               gripper_closed=self.gripper_closed)
        except ValueError as e:
            log.error("%s; holding still", e)
            action = np.zeros(4 + self.use_yaw, dtype=np.float32)
            action[-1] = 1.0 if self.gripper_closed else -1.0
        try:
            status = self.client.teleop(action)
        except ControlRefused as e:
            self.refusals += 1
            if e.reason == "not_in_takeover":  # ended elsewhere (the browser, an e-stop)
                self.takeover = False
                log.warning("SpaceMouse: the takeover was ended by the actor or another "
                            "operator; press the takeover button to start a new one")
            else:
                log.warning("SpaceMouse: teleop refused: %s", e)
            return TeleopTick(self.takeover, self.gripper_closed, None)
        except PeerTimeout as e:
            # The actor holds the arm still once our actions go stale; keep trying.
            log.warning("SpaceMouse: %s", e)
            return TeleopTick(self.takeover, self.gripper_closed, None)
        self.takeover = bool(status.takeover)
        return TeleopTick(self.takeover, self.gripper_closed, action)

    def run(self, stop: threading.Event) -> None:
        """Tick at cfg.rate_hz until `stop` is set (drift-free: a slow tick is not repaid)."""
        period = 1.0 / self.cfg.rate_hz
        due = time.monotonic()
        while not stop.is_set():
            self.tick()
            due = max(due + period, time.monotonic())
            stop.wait(max(0.0, due - time.monotonic()))
