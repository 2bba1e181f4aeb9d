"""`robolearn calibrate workspace` and `handeye` as processes, reading poses and frames live
from running drivers over the wire: the sim driver process for the workspace box, the board
scene behind the real DriverServer for hand-eye. The operator's Enter comes over stdin."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from scipy.spatial.transform import Rotation

from robolearn.calibration.detect import BoardDetector
from robolearn.calibration.live import LiveRig, capture_views
from robolearn.calibration.results import latest_calibration
from robolearn.cli.main import main
from robolearn.config import RunConfig, load_config
from robolearn.errors import CalibrationError
from robolearn.processes import ProcessGroup
from robolearn.protocol import Requester, Subscriber
from robolearn.sim.model import HOME_Q_RAD
from robolearn.store import Store
from tests.calibration.board_driver import (
    BoardSceneArm,
    board_poses,
    serve_board_scene,
    wait_posed,
)
from tests.calibration.conftest import BOARD

BOARD_POS_M = (0.55, 0.05, 0.001)


class Cli:
    """`python -m robolearn.cli.main ...` with the operator at its stdin and stdout."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.out: list[str] = []

    def expect(self, *starts: str) -> str:
        """The next stdout line starting with one of `starts` (others are kept in .out)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)
            if line.startswith(starts):
                return line
        raise AssertionError(f"exited ({self.proc.wait()}) before {starts}: {self.out}, "
                             f"stderr {self.proc.stderr.read() if self.proc.stderr else ''}")

    def enter(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float = 60.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not flush the closed pipe
        try:
            rest, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.out.append(rest)
        self.err = err
        return self.proc.returncode


# --- workspace --------------------------------------------------------------------------
def move_to(driver: Requester, state: Subscriber, target: np.ndarray) -> np.ndarray:
    """Drive the sim arm's TCP to `target` with ee_delta commands; return where it settled."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        msg = state.wait_new("arm_state", timeout_s=1.0)
        assert msg is not None, "the sim driver stopped publishing state"
        ee = np.array(msg.arrays["ee_pos_m"])
        error = target - ee
        if np.abs(error).max() < 0.004:
            break
        reply = driver.request("arm_command", {"command": "ee_delta", "gripper_close": 0.0},
                               {"delta_xyz_m": np.clip(error, -0.02, 0.02)}, timeout_s=5.0)
        assert reply.body["ok"], reply.body
        time.sleep(0.05)
    else:
        raise AssertionError(f"the arm never reached {target}")
    time.sleep(0.4)  # the watchdog stops it; let it settle
    return np.array(state.wait_new("arm_state", timeout_s=2.0).arrays["ee_pos_m"])


def test_workspace_taught_from_the_live_sim_driver(
        write_config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    cfg_path = write_config()
    cfg = load_config(cfg_path)
    ctx = zmq.Context()
    group = ProcessGroup(cfg, log_level="warning")
    driver = Requester(ctx, cfg.robot.command_address, "test",
                       security=cfg.socket_security(cfg.robot.command_address, "operator"))
    state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                       security=cfg.socket_security(cfg.robot.state_address, "operator"))
    try:
        group.start_drivers()
        first = state.wait_new("arm_state", timeout_s=60.0)
        assert first is not None, "the sim driver never published state"
        start = np.array(first.arrays["ee_pos_m"])
        corners = [start + np.array([-0.05, -0.08, -0.05]), start + np.array([0.06, 0.07, 0.06])]
        cli = Cli("calibrate", "workspace", str(cfg_path), "--points", "2", "--margin-mm", "10")
        reached = []
        for i, corner in enumerate(corners):
            cli.expect("move the TCP")
            reached.append(move_to(driver, state, corner))
            cli.enter()
            cli.expect(f"captured pose {i + 1}")
        assert cli.finish() == 0, cli.err

        # Input that ends early (in-process: a CLI process takes seconds to import) stores
        # nothing new.
        monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
        with caplog.at_level(logging.ERROR):
            assert main(["calibrate", "workspace", str(cfg_path), "--points", "3"]) == 2
        assert "input ended" in caplog.text
    finally:
        driver.close()
        state.close()
        group.stop()
        ctx.term()

    lo = np.minimum(*reached) + 0.01
    hi = np.maximum(*reached) - 0.01
    with Store.open(cfg.data_dir) as store:
        stored = latest_calibration(store, "workspace", cfg.robot.name)
    assert stored is not None and stored.version == 1
    np.testing.assert_allclose(stored.data["workspace_min_m"], lo, atol=0.002)
    np.testing.assert_allclose(stored.data["workspace_max_m"], hi, atol=0.002)


# --- hand-eye ---------------------------------------------------------------------------
@pytest.fixture
def board_rig(write_config) -> Iterator[tuple[RunConfig, Path, BoardSceneArm]]:
    """The board scene's arm and wrist camera served on the config's sim addresses."""
    cfg_path = write_config()
    cfg = load_config(cfg_path)
    with serve_board_scene(cfg, BOARD, board_pos_m=BOARD_POS_M) as arm:
        yield cfg, cfg_path, arm


def test_handeye_from_live_poses_and_frames(board_rig, caplog: pytest.LogCaptureFixture) -> None:
    cfg, cfg_path, arm = board_rig
    qs, truth = board_poses(14, BOARD, BOARD_POS_M)
    ctx = zmq.Context()
    state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                       security=cfg.socket_security(cfg.robot.state_address, "operator"))
    try:
        # No stored intrinsics and no --fit-intrinsics: refused before asking for any pose.
        with caplog.at_level(logging.ERROR):
            assert main(["calibrate", "handeye", str(cfg_path), "--camera", "wrist"]) == 2
        assert "no stored intrinsics" in caplog.text

        cli = Cli("calibrate", "handeye", str(cfg_path), "--camera", "wrist", "--views", "14",
                  "--fit-intrinsics")
        for i, q in enumerate(qs):
            cli.expect("pose ")
            arm.pose_to(q)
            wait_posed(state, q)
            cli.enter()
            assert cli.expect("captured view", "board not found").startswith(
                f"captured view {i + 1}")
        assert cli.finish() == 0, cli.err

        # The board out of sight: views are refused, and after too many, nothing is stored.
        away = HOME_Q_RAD.copy()
        away[0] = 1.5
        arm.pose_to(away)
        wait_posed(state, away)
        detector = BoardDetector(BOARD)
        with LiveRig(cfg, ctx, camera="wrist") as rig, \
                pytest.raises(CalibrationError, match="only 0 of 2 usable views"):
            capture_views(rig, 2, lambda i: None, max_attempts=2,
                          on_view=lambda i, v: detector.detect(v.image) is not None)
    finally:
        state.close()
        ctx.term()

    with Store.open(cfg.data_dir) as store:
        he = latest_calibration(store, "hand_eye", "wrist")
        intr = latest_calibration(store, "intrinsics", "wrist")
    assert he is not None and intr is not None and he.version == 1
    assert intr.data["board"] == BOARD.model_dump(mode="json")  # the board it was fitted on
    x = np.asarray(he.data["transform"])
    mm = float(np.linalg.norm(x[:3, 3] - truth[:3, 3])) * 1000
    deg = float(np.degrees((Rotation.from_matrix(x[:3, :3]).inv()
                            * Rotation.from_matrix(truth[:3, :3])).magnitude()))
    assert mm < 2.0 and deg < 0.5, (mm, deg)
