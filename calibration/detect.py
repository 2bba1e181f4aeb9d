"""Find ChArUco corners in an image and pair them with their board coordinates."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from robolearn.calibration.board import make_board
from robolearn.config.hardware import CharucoBoardConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """The board corners found in one image."""

    corners_px: np.ndarray  # [N, 2] float32 image points
    ids: np.ndarray  # [N] int32 ChArUco corner ids
    object_points_m: np.ndarray  # [N, 3] float32 the same corners on the board (z = 0)
    image_size: tuple[int, int]  # (width, height)

    @property
    def count(self) -> int:
        return len(self.ids)


class BoardDetector:
    """One detector per board (CharucoDetector keeps state worth reusing)."""

    def __init__(self, cfg: CharucoBoardConfig) -> None:
        self.cfg = cfg
        self.board = make_board(cfg)
        self._detector = cv2.aruco.CharucoDetector(self.board)
        self.num_corners = (cfg.squares_x - 1) * (cfg.squares_y - 1)

    def detect(self, image: np.ndarray) -> Detection | None:
        """Corners in an RGB or grey uint8 image; None when fewer than 4 are found (a pose
        and a homography need at least 4)."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"detect: expected a uint8 HxW or HxWx3 image, got {image.dtype} "
                             f"{image.shape}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        corners, ids, _, _ = self._detector.detectBoard(grey)
        if ids is None or len(ids) < 4:
            return None
        obj, img = self.board.matchImagePoints(corners, ids)
        return Detection(corners_px=img.reshape(-1, 2).astype(np.float32),
                         ids=ids.reshape(-1).astype(np.int32),
                         object_points_m=obj.reshape(-1, 3).astype(np.float32),
                         image_size=(grey.shape[1], grey.shape[0]))
