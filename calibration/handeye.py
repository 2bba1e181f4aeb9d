"""Hand-eye calibration (eye-in-hand and eye-to-hand) with cv2.calibrateHandEye.

Every available method is run; each is scored by how constant the chain it implies is: for
eye-in-hand the board's pose in the base frame, base_from_gripper_i @ X @ cam_from_board_i, must be
the same in every view (the board did not move), and its spread is the residual. The method
with the smallest residual is the result; all are reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial.transform import Rotation

from robolearn.calibration.detect import Detection
from robolearn.errors import CalibrationError

log = logging.getLogger(__name__)

METHODS = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI,
    "park": cv2.CALIB_HAND_EYE_PARK,
    "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
    "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
Mode = Literal["eye_in_hand", "eye_to_hand"]
_MIN_REL_ROT_DEG = 5.0  # motions smaller than this carry no rotation information
_MIN_AXIS_ANGLE_DEG = 10.0  # rotation axes must differ this much: one axis is degenerate


class MethodResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    transform: list[list[float]] = Field(description="4x4 result (see HandEyeResult).")
    residual_mm: float = Field(description="RMS spread of the implied board position, mm.")
    residual_deg: float = Field(description="RMS spread of the implied board rotation, deg.")


class HandEyeResult(BaseModel):
    """eye_in_hand: `transform` is gripper_from_camera (camera pose in the gripper/TCP frame).
    eye_to_hand: `transform` is base_from_camera (camera pose in the robot base frame)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    method: str = Field(description="The method with the smallest residual.")
    transform: list[list[float]]
    residual_mm: float
    residual_deg: float
    views: int
    methods: dict[str, MethodResult]

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.transform, dtype=np.float64)


def _rt(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return t[:3, :3], t[:3, 3].reshape(3, 1)


def _hom(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = r
    out[:3, 3] = np.asarray(t).reshape(3)
    return out


def board_pose(det: Detection, k: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """cam_from_board from one detection (solvePnP on the ChArUco corners).

    Raises:
        CalibrationError: the pose cannot be solved.
    """
    ok, rvec, tvec = cv2.solvePnP(det.object_points_m, det.corners_px, k, dist)
    if not ok:
        raise CalibrationError("hand-eye: solvePnP failed for a view; drop it or recapture")
    return _hom(cv2.Rodrigues(rvec)[0], tvec)


def check_motion(base_from_gripper: Sequence[np.ndarray]) -> None:
    """Refuse pose sets that cannot determine a hand-eye transform.

    Raises:
        CalibrationError: fewer than 3 poses, rotations too small, or all about one axis.
    """
    if len(base_from_gripper) < 3:
        raise CalibrationError(f"hand-eye: {len(base_from_gripper)} poses, need at least 3 "
                               "(10-20 recommended)")
    rots = [Rotation.from_matrix(t[:3, :3]) for t in base_from_gripper]
    axes = []
    for i in range(len(rots)):
        for j in range(i + 1, len(rots)):
            rv = (rots[i].inv() * rots[j]).as_rotvec()
            if np.degrees(np.linalg.norm(rv)) >= _MIN_REL_ROT_DEG:
                axes.append(rv / np.linalg.norm(rv))
    if len(axes) < 2:
        raise CalibrationError(
            f"hand-eye: the gripper barely rotates between poses (< {_MIN_REL_ROT_DEG} deg); "
            "rotate it 15-30 degrees about different axes between views"
        )
    best = max(np.degrees(np.arccos(np.clip(abs(float(a @ b)), 0.0, 1.0)))
               for a in axes for b in axes)
    if best < _MIN_AXIS_ANGLE_DEG:
        raise CalibrationError(
            "hand-eye: every rotation is about one axis, which leaves the transform "
            "undetermined along it; tilt the gripper about a second axis too"
        )


def _spread(ts: list[np.ndarray]) -> tuple[float, float]:
    pos = np.stack([t[:3, 3] for t in ts])
    rmm = float(np.sqrt(np.mean(np.sum((pos - pos.mean(0)) ** 2, axis=1)))) * 1000.0
    rots = Rotation.from_matrix(np.stack([t[:3, :3] for t in ts]))
    mean = rots.mean()
    rdeg = float(np.degrees(np.sqrt(np.mean((mean.inv() * rots).magnitude() ** 2))))
    return rmm, rdeg


def calibrate_hand_eye(
    base_from_gripper: Sequence[np.ndarray],
    cam_from_board: Sequence[np.ndarray],
    mode: Mode = "eye_in_hand",
    methods: Sequence[str] = tuple(METHODS),
) -> HandEyeResult:
    """Solve the hand-eye transform with each method; return the most consistent.

    Args:
        base_from_gripper: the TCP pose per view (from the arm's state), 4x4.
        cam_from_board: the board pose per view (from `board_pose`), 4x4.
        mode: eye_in_hand (camera on the gripper, board fixed) or eye_to_hand (camera
            fixed, board on the gripper).

    Raises:
        CalibrationError: mismatched lists, degenerate motion, or every method failed.
    """
    if len(base_from_gripper) != len(cam_from_board):
        raise CalibrationError(f"hand-eye: {len(base_from_gripper)} gripper poses but "
                               f"{len(cam_from_board)} board poses")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise CalibrationError(f"hand-eye: unknown methods {sorted(unknown)}; known: "
                               f"{sorted(METHODS)}")
    check_motion(base_from_gripper)
    # eye-to-hand is eye-in-hand with the base and gripper swapped (OpenCV's documented use).
    hand = [t if mode == "eye_in_hand" else np.linalg.inv(t) for t in base_from_gripper]
    r_g = [_rt(t)[0] for t in hand]
    t_g = [_rt(t)[1] for t in hand]
    r_c = [_rt(t)[0] for t in cam_from_board]
    t_c = [_rt(t)[1] for t in cam_from_board]
    results: dict[str, MethodResult] = {}
    for name in methods:
        try:
            r, t = cv2.calibrateHandEye(r_g, t_g, r_c, t_c, method=METHODS[name])
        except cv2.error as e:
            log.warning("hand-eye: method %s failed: %s", name, e)
            continue
        x = _hom(r, t)
        if not np.all(np.isfinite(x)):
            continue
        chain = [h @ x @ c for h, c in zip(hand, cam_from_board, strict=True)]
        mm, deg = _spread(chain)
        results[name] = MethodResult(transform=x.tolist(), residual_mm=mm, residual_deg=deg)
    if not results:
        raise CalibrationError("hand-eye: every method failed; recapture with more varied "
                               "poses")
    best = min(results, key=lambda n: results[n].residual_mm + results[n].residual_deg)
    b = results[best]
    return HandEyeResult(mode=mode, method=best, transform=b.transform,
                         residual_mm=b.residual_mm, residual_deg=b.residual_deg,
                         views=len(cam_from_board), methods=results)
