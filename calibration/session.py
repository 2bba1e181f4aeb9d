"""An interactive intrinsics calibration of one camera of a running rig: live ChArUco
detection on the camera's newest frame, views captured one at a time, coverage of where
corners have been seen, and a solve stored as the next version.

Frames come over the wire protocol like in `calibration.live`; detection, coverage, the fit
and the storage are the same functions `robolearn calibrate intrinsics` uses, so a result
from the browser and one from the CLI are the same thing. Methods are thread-safe (the
service calls them from its request threads).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import zmq

from robolearn.calibration.detect import BoardDetector, Detection
from robolearn.calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics, coverage_grid
from robolearn.calibration.live import frames_address
from robolearn.calibration.results import StoredCalibration, save_intrinsics
from robolearn.config import RunConfig
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.errors import CalibrationError, StaleFrame
from robolearn.protocol import Message, Subscriber
from robolearn.protocol.messages import CameraFrame
from robolearn.store import Store

log = logging.getLogger(__name__)

MIN_CORNERS = 8
"""Fewest corners a captured view must have (what the fit asks of a view)."""
MIN_VIEWS = 8
"""Fewest usable views a solve needs."""
_CORNER_RGB = (255, 40, 40)


@dataclass(frozen=True)
class LiveDetection:
    """The board as seen in the camera's newest frame."""

    camera: str
    frame_index: int
    stamp_ns: int  # capture time on the driver host's monotonic clock
    image_size: tuple[int, int]  # (width, height), px
    detection: Detection | None  # None: fewer than 4 corners found
    annotated: np.ndarray  # RGB uint8 [H, W, 3]: the frame with detected corners drawn

    @property
    def corners(self) -> int:
        return 0 if self.detection is None else self.detection.count


@dataclass(frozen=True)
class CapturedView:
    """One view added to the session."""

    frame_index: int
    detection: Detection


def annotate(image: np.ndarray, detection: Detection | None) -> np.ndarray:
    """A copy of an RGB image with the detected ChArUco corners and their ids drawn."""
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if detection is not None:
        cv2.aruco.drawDetectedCornersCharuco(
            out, detection.corners_px.reshape(-1, 1, 2), detection.ids.reshape(-1, 1),
            _CORNER_RGB)
    return out


class IntrinsicsSession:
    """Args:
        cfg: the run config (camera addresses, CURVE settings).
        ctx: ZeroMQ context.
        camera: the camera to calibrate.
        board: the board in front of it (default: `CharucoBoardConfig()`); `set_board`
            changes it.
        timeout_s: how long `live` and `capture` wait for a frame.
        max_age_ms: a newest frame older than this means the camera stopped streaming.
        identity: whose keys to connect with ("operator" for the CLI, "service").

    Raises:
        ConfigError: the camera is not in the config.
    """

    def __init__(self, cfg: RunConfig, ctx: zmq.Context, camera: str,
                 board: CharucoBoardConfig | None = None, *, timeout_s: float = 2.0,
                 max_age_ms: float = 2000.0, identity: str = "operator") -> None:
        self.camera = camera
        self.address = frames_address(cfg, camera)
        self.timeout_s = timeout_s
        self.max_age_ms = max_age_ms
        self._board = board or CharucoBoardConfig()
        self._detector = BoardDetector(self._board)
        self._frames = Subscriber(ctx, self.address, types=("camera_frame",),
                                  security=cfg.socket_security(self.address, identity),
                                  name=f"calibration-{camera}")
        self._lock = threading.Lock()
        self._views: list[CapturedView] = []
        self._last: tuple[tuple[str, int], LiveDetection] | None = None

    @property
    def board(self) -> CharucoBoardConfig:
        """The board detections and the fit use now."""
        with self._lock:
            return self._board

    @property
    def where(self) -> str:
        return f"intrinsics of {self.camera} ({self.address})"

    def close(self) -> None:
        with self._lock:
            self._frames.close()

    # -- frames -------------------------------------------------------------------------
    def _frame(self, newer_than_ns: int) -> Message:
        """The newest frame stamped after `newer_than_ns`, waiting up to timeout_s."""
        msg = self._frames.latest("camera_frame", key=self.camera)
        deadline = time.monotonic() + self.timeout_s
        while True:
            stamp_ns = None if msg is None else CameraFrame.from_message(msg).stamp_ns
            if msg is not None and stamp_ns is not None and stamp_ns > newer_than_ns:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                if stamp_ns is None:
                    raise StaleFrame(f"{self.where}: no frame within {self.timeout_s:.0f} s; "
                                     "is the camera's driver running?")
                age_ms = (time.monotonic_ns() - stamp_ns) / 1e6
                raise StaleFrame(f"{self.where}: newest frame is {age_ms:.0f} ms old; the "
                                 "camera stopped streaming")
            msg = self._frames.wait_new("camera_frame", timeout_s=left, key=self.camera) or msg

    def _detect(self, msg: Message) -> LiveDetection:
        key = (msg.sender, msg.seq)
        if self._last is not None and self._last[0] == key:
            return self._last[1]  # polled faster than frames arrive: detect once per frame
        frame = CameraFrame.from_message(msg)
        image = np.asarray(frame.image)
        det = self._detector.detect(image)
        live = LiveDetection(camera=self.camera, frame_index=frame.frame_index,
                             stamp_ns=frame.stamp_ns,
                             image_size=(image.shape[1], image.shape[0]), detection=det,
                             annotated=annotate(image, det))
        self._last = (key, live)
        return live

    # -- operations ---------------------------------------------------------------------
    def live(self) -> LiveDetection:
        """Detect the board in the camera's newest frame.

        Raises:
            StaleFrame: no frame, or none newer than max_age_ms.
        """
        with self._lock:
            return self._detect(self._frame(time.monotonic_ns() - int(self.max_age_ms * 1e6)))

    def capture(self) -> CapturedView:
        """Add the board as seen in a frame taken after this call to the session.

        Raises:
            CalibrationError: the board is not in view (fewer than MIN_CORNERS corners), or
                the frame size differs from the views already captured; nothing is added.
            StaleFrame: no new frame in time.
        """
        with self._lock:
            live = self._detect(self._frame(time.monotonic_ns()))
            if live.detection is None or live.corners < MIN_CORNERS:
                raise CalibrationError(
                    f"{self.where}: board not in view ({live.corners} corners, need "
                    f"{MIN_CORNERS}); show the whole board to the camera and capture again")
            if self._views and self._views[0].detection.image_size != live.image_size:
                raise CalibrationError(
                    f"{self.where}: frame size {live.image_size} differs from the captured "
                    f"views' {self._views[0].detection.image_size}; clear the views first")
            view = CapturedView(live.frame_index, live.detection)
            self._views.append(view)
            log.info("%s: captured view %d (%d corners)", self.where, len(self._views),
                     live.corners)
            return view

    @property
    def views(self) -> list[CapturedView]:
        with self._lock:
            return list(self._views)

    def coverage(self, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """Corner counts per cell of the captured views (see `coverage_grid`); all zero with
        no views, sized for `image_size` (default: the views' own size)."""
        with self._lock:
            dets = [v.detection for v in self._views]
        size = dets[0].image_size if dets else (image_size or (1, 1))
        return coverage_grid(dets, size)

    def clear(self) -> int:
        """Drop every captured view. Returns how many there were."""
        with self._lock:
            n = len(self._views)
            self._views.clear()
            return n

    def set_board(self, board: CharucoBoardConfig) -> int:
        """Detect and fit with another board from now on. Views of the old board cannot be
        fitted together with views of this one (other corner ids and board coordinates), so a
        different board drops the captured views and the cached detection; the same board
        again changes nothing.

        Returns:
            How many captured views were dropped.
        """
        detector = BoardDetector(board)  # built before the swap: a failure changes nothing
        with self._lock:
            if board == self._board:
                return 0
            dropped = len(self._views)
            self._board, self._detector = board, detector
            self._views.clear()
            self._last = None
        log.info("%s: board set to %dx%d squares of %.1f mm, markers %.1f mm, %s; %d captured "
                 "views dropped", self.where, board.squares_x, board.squares_y,
                 board.square_length_m * 1e3, board.marker_length_m * 1e3, board.dictionary,
                 dropped)
        return dropped

    def solve(self, store: Store) -> tuple[IntrinsicsResult, StoredCalibration]:
        """Fit intrinsics to the captured views and store the result as the next version
        for this camera, with the board the views are of (`board` in the stored data, so a
        result says which printed board it came from). The views stay, so more can be added
        and the fit repeated.

        Raises:
            CalibrationError: too few or degenerate views (nothing is stored).
        """
        with self._lock:
            dets = [v.detection for v in self._views]
            board = self._board  # the board of exactly these views
        result = calibrate_intrinsics(dets, min_views=MIN_VIEWS, min_corners=MIN_CORNERS)
        stored = save_intrinsics(store, self.camera, result, board)
        return result, stored
