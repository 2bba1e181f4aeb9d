"""Views of a ChArUco board rendered in the MuJoCo scene, collected once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from robolearn.calibration.detect import BoardDetector, Detection
from robolearn.calibration.sim import BoardScene
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.sim.model import HOME_Q_RAD

BOARD = CharucoBoardConfig()
_JOINT_SPREAD = np.array([0.6, 0.6, 0.5, 0.6, 1.0, 1.0, 1.0]) * 0.3  # rad


@dataclass
class WristViews:
    detections: list[Detection]
    base_from_tcp: list[np.ndarray]
    true_k: np.ndarray
    true_tcp_from_cam: np.ndarray
    empty_image: np.ndarray  # the wrist camera looking away from the board


@pytest.fixture(scope="session")
def wrist_views() -> Iterator[WristViews]:
    scene = BoardScene(BOARD, board_pos_m=(0.55, 0.05, 0.001))
    detector = BoardDetector(BOARD)
    rng = np.random.default_rng(0)
    dets, poses = [], []
    for _ in range(60):
        scene.set_arm(HOME_Q_RAD + rng.uniform(-1, 1, 7) * _JOINT_SPREAD)
        d = detector.detect(scene.render("wrist"))
        if d is not None and d.count >= 12:
            dets.append(d)
            poses.append(scene.tcp_pose())
        if len(dets) == 14:
            break
    truth = np.linalg.inv(scene.tcp_pose()) @ scene.camera_pose("wrist")
    k = scene.intrinsics("wrist")
    q = HOME_Q_RAD.copy()
    q[0] = 1.5  # base turned away from the board
    scene.set_arm(q)
    empty = scene.render("wrist")
    scene.close()
    yield WristViews(dets, poses, k, truth, empty)
