"""Hand-eye: the wrist camera's transform recovered in the sim; eye-to-hand on exact poses;
degenerate motion refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robolearn.calibration.handeye import board_pose, calibrate_hand_eye
from robolearn.calibration.intrinsics import calibrate_intrinsics
from robolearn.errors import CalibrationError
from tests.calibration.conftest import WristViews


def errors(x: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    mm = float(np.linalg.norm(x[:3, 3] - truth[:3, 3])) * 1000
    deg = float(np.degrees((Rotation.from_matrix(x[:3, :3]).inv()
                            * Rotation.from_matrix(truth[:3, :3])).magnitude()))
    return mm, deg


def pose(rotvec: list[float], t: list[float]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    out[:3, 3] = t
    return out


def test_eye_in_hand_recovers_the_wrist_camera(wrist_views: WristViews) -> None:
    intr = calibrate_intrinsics(wrist_views.detections)
    boards = [board_pose(d, intr.k, intr.dist) for d in wrist_views.detections]
    result = calibrate_hand_eye(wrist_views.base_from_tcp, boards, "eye_in_hand")
    mm, deg = errors(result.matrix, wrist_views.true_tcp_from_cam)
    assert mm < 2.0 and deg < 0.5, (mm, deg)
    assert set(result.methods) == {"tsai", "park", "horaud", "andreff", "daniilidis"}
    assert result.residual_mm < 2.0 and result.views == len(boards)


def test_eye_to_hand_on_exact_poses() -> None:
    rng = np.random.default_rng(2)
    base_from_cam = pose([0.3, -2.5, 0.2], [1.2, 0.1, 0.6])
    gripper_from_board = pose([0.0, 0.0, 0.4], [0.0, 0.02, 0.12])
    down, home = np.array([np.pi, 0.0, 0.0]), np.array([0.5, 0.0, 0.3])
    grippers = [pose(down + rng.normal(0, 0.35, 3), home + rng.normal(0, 0.08, 3))
                for _ in range(10)]
    boards = [np.linalg.inv(base_from_cam) @ g @ gripper_from_board for g in grippers]
    result = calibrate_hand_eye(grippers, boards, "eye_to_hand")
    mm, deg = errors(result.matrix, base_from_cam)
    assert mm < 0.1 and deg < 0.01
    assert result.residual_mm < 0.1


def test_degenerate_motion_is_refused() -> None:
    still = pose([np.pi, 0, 0], [0.5, 0, 0.3])
    translations = [still @ pose([0, 0, 0], [0.05 * i, 0.01 * i, 0]) for i in range(6)]
    boards = [np.eye(4)] * 6
    with pytest.raises(CalibrationError, match="barely rotates"):
        calibrate_hand_eye(translations, boards)
    one_axis = [still @ pose([0, 0, 0.2 * i], [0, 0, 0]) for i in range(6)]
    with pytest.raises(CalibrationError, match="one axis"):
        calibrate_hand_eye(one_axis, boards)
    with pytest.raises(CalibrationError, match="at least 3"):
        calibrate_hand_eye(one_axis[:2], boards[:2])
    with pytest.raises(CalibrationError, match="6 gripper poses but 5"):
        calibrate_hand_eye(one_axis, boards[:5])
