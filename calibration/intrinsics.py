"""Camera intrinsics from ChArUco views: calibrateCamera, per-view reprojection error, and
rejection of bad views (blur, a misdetection) before the final fit."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.calibration.detect import Detection
from robolearn.errors import CalibrationError

log = logging.getLogger(__name__)

COVERAGE_GRID = 8
"""Coverage: the share of the cells of this N x N grid over the image that hold a corner."""


class IntrinsicsResult(BaseModel):
    """A camera's intrinsics and how well the views support them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_width: int = Field(description="Image width the intrinsics are for, px.")
    image_height: int = Field(description="Image height, px.")
    camera_matrix: list[list[float]] = Field(description="3x3 K: fx, fy, cx, cy in px.")
    dist_coeffs: list[float] = Field(description="OpenCV distortion k1 k2 p1 p2 k3.")
    rms_px: float = Field(description="Overall RMS reprojection error of the used views, px.")
    focal_std_px: float = Field(description="Estimated standard deviation of fx, px.")
    per_view_error_px: list[float | None] = Field(
        description="RMS reprojection error of each input view, px (None: not used)."
    )
    rejected: dict[int, str] = Field(description="Input view index -> why it was not used.")
    coverage: float = Field(description="Share of the image (8x8 grid) with corners, 0..1.")

    @property
    def k(self) -> np.ndarray:
        return np.asarray(self.camera_matrix, dtype=np.float64)

    @property
    def dist(self) -> np.ndarray:
        return np.asarray(self.dist_coeffs, dtype=np.float64)


def _view_errors(dets: list[Detection], k: np.ndarray, dist: np.ndarray,
                 rvecs: Sequence[np.ndarray], tvecs: Sequence[np.ndarray]) -> list[float]:
    errs = []
    for d, r, t in zip(dets, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(d.object_points_m, r, t, k, dist)
        errs.append(float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - d.corners_px) ** 2,
                                                  axis=1)))))
    return errs


def coverage_grid(dets: Sequence[Detection], size: tuple[int, int],
                  cells: int = COVERAGE_GRID) -> np.ndarray:
    """How many corners fell in each cell of a `cells` x `cells` grid over the image.

    Args:
        dets: the views' detections.
        size: image (width, height), px.

    Returns:
        int64 [cells, cells] counts, row = image y, column = image x.
    """
    grid = np.zeros((cells, cells), dtype=np.int64)
    for d in dets:
        idx = np.clip((d.corners_px / np.asarray(size) * cells).astype(int), 0, cells - 1)
        np.add.at(grid, (idx[:, 1], idx[:, 0]), 1)
    return grid


def _coverage(dets: list[Detection], size: tuple[int, int]) -> float:
    return float((coverage_grid(dets, size) > 0).mean())


def calibrate_intrinsics(
    detections: Sequence[Detection | None],
    *,
    min_views: int = 8,
    min_corners: int = 8,
    max_view_error_px: float = 1.0,
    max_focal_std_ratio: float = 0.005,
    fix_k3: bool = True,
) -> IntrinsicsResult:
    """Fit intrinsics, dropping views whose reprojection error is an outlier.

    Args:
        detections: one entry per captured view (None: the board was not found).
        min_views: fewest usable views.
        min_corners: a view with fewer corners is not used.
        max_view_error_px: a view above this (and above 3x the median) is rejected and the
            fit repeated without it.
        max_focal_std_ratio: refuse when the estimated fx standard deviation exceeds this
            share of fx: the views are too alike (tilt the board more between views).
        fix_k3: keep the sixth-order radial term at zero (it over-fits on few views).

    Raises:
        CalibrationError: too few usable views, mixed image sizes, or degenerate views.
    """
    rejected: dict[int, str] = {}
    used: list[int] = []
    for i, d in enumerate(detections):
        if d is None:
            rejected[i] = "board not found"
        elif d.count < min_corners:
            rejected[i] = f"only {d.count} corners (need {min_corners})"
        else:
            used.append(i)
    sizes = {detections[i].image_size for i in used}  # type: ignore[union-attr]
    if len(sizes) > 1:
        raise CalibrationError(f"intrinsics: views have different image sizes {sorted(sizes)}; "
                               "capture all views at one resolution")
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    for _round in range(5):
        if len(used) < min_views:
            raise CalibrationError(
                f"intrinsics: {len(used)} usable views of {len(detections)}, need {min_views}; "
                f"rejected: {rejected or 'none'}. Capture more views with the whole board in "
                "sight, tilted differently each time"
            )
        dets = [detections[i] for i in used]
        size = dets[0].image_size  # type: ignore[union-attr]
        rms, k, dist, rvecs, tvecs, std_int, _, _ = cv2.calibrateCameraExtended(
            [d.object_points_m for d in dets], [d.corners_px for d in dets], size, None, None,
            flags=flags)
        errs = _view_errors(dets, k, dist, rvecs, tvecs)  # type: ignore[arg-type]
        limit = max(max_view_error_px, 3.0 * float(np.median(errs)))
        bad = [(i, e) for i, e in zip(used, errs, strict=True) if e > limit]
        if not bad:
            break
        worst_i, worst_e = max(bad, key=lambda b: b[1])
        rejected[worst_i] = f"reprojection error {worst_e:.2f} px > {limit:.2f} px"
        used.remove(worst_i)
        log.info("intrinsics: rejected view %d (%.2f px); refitting", worst_i, worst_e)
    else:
        raise CalibrationError("intrinsics: views keep failing the reprojection check; the "
                               "detections are unreliable (blur, glare, a bent board)")
    focal_std = float(std_int[0, 0])
    if focal_std > max_focal_std_ratio * k[0, 0]:
        raise CalibrationError(
            f"intrinsics: focal length undetermined (fx {k[0, 0]:.1f} +- {focal_std:.1f} px); "
            "the views are too alike: tilt the board 20-40 degrees in different directions"
        )
    per_view: list[float | None] = [None] * len(detections)
    for i, e in zip(used, errs, strict=True):
        per_view[i] = e
    return IntrinsicsResult(
        image_width=size[0], image_height=size[1], camera_matrix=k.tolist(),
        dist_coeffs=dist.reshape(-1).tolist(), rms_px=float(rms), focal_std_px=focal_std,
        per_view_error_px=per_view, rejected=rejected, coverage=_coverage(dets, size),
    )
