"""Bodies of the live intrinsics calibration routes (`/api/calibrations/live/...`): what the
calibration page shows while an operator captures views of the board with a running camera."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from robolearn.config.hardware import CharucoBoardConfig
from robolearn.server.schemas import CalibrationPublic, Response


class LiveCamera(Response):
    name: str = Field(description="Camera id from the run config.")
    kind: str = Field(description="Driver kind: sim, opencv or realsense.")
    views: int = Field(description="Views captured so far in its calibration session.")


class CapturedViewPublic(Response):
    index: int = Field(description="0-based position in the session (the solve's view index).")
    frame_index: int = Field(description="The camera's frame_index of the captured frame.")
    corners: int = Field(description="ChArUco corners detected in it.")


class CalibrationSessionPublic(Response):
    """The views captured so far for one camera and where their corners lie."""

    camera: str
    board: CharucoBoardConfig = Field(
        description="The board detection and the solve use now (PUT .../board changes it).")
    views: list[CapturedViewPublic]
    min_views: int = Field(description="Fewest usable views a solve needs.")
    min_corners: int = Field(description="Fewest corners a view needs to be captured.")
    coverage_grid: list[list[int]] = Field(
        description="Corners of the captured views per cell of an N x N grid over the image "
        "(row = image y from the top, column = image x from the left).")
    coverage: float = Field(description="Share of grid cells holding a corner, 0..1.")


class LiveCalibration(Response):
    """The board as the camera sees it now, plus the session's views."""

    camera: str
    state: Literal["ok", "board_not_found", "no_frame"] = Field(
        description="ok: the board is in view; board_not_found: a frame without enough "
        "corners; no_frame: the camera sends nothing (recently).")
    problem: str | None = Field(description="What is wrong and what to do, unless ok.")
    frame_index: int | None = Field(description="The camera's index of the frame shown.")
    stamp_ns: int | None = Field(
        description="Its capture time on the camera host's monotonic clock, ns.")
    age_ms: float | None = Field(
        description="How old the frame was when detected, ms (exact when the camera runs "
        "on the service's host, as the run's processes do under `robolearn up`).")
    image_width: int | None = Field(description="Frame width, px.")
    image_height: int | None = Field(description="Frame height, px.")
    image_jpeg: str | None = Field(
        description="The frame with the detected corners drawn: base64 JPEG (a data URL's "
        "payload).")
    corners: int = Field(description="Corners detected in this frame (0 when none).")
    session: CalibrationSessionPublic


class IntrinsicsSolve(Response):
    """A solve of the session's views, stored as the camera's next intrinsics version."""

    calibration: CalibrationPublic = Field(
        description="The stored version, as GET /api/calibrations/{id} returns it; its "
        "intrinsics.per_view_error_px and rejected follow the session's view indices.")
    session: CalibrationSessionPublic


class BoardChange(Response):
    """The session after its board was set."""

    views_dropped: int = Field(
        description="Captured views dropped: views of another board cannot be fitted with "
        "this one (0 when the board was already this one).")
    session: CalibrationSessionPublic
