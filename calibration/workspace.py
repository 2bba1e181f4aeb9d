"""Workspace box teaching: the operator moves the arm to the corners of the safe region and
the box is the bounding box of those TCP positions, shrunk by a margin."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.errors import CalibrationError


class WorkspaceResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace_min_m: tuple[float, float, float] = Field(description="Lower box corner, m.")
    workspace_max_m: tuple[float, float, float] = Field(description="Upper box corner, m.")
    points_m: list[list[float]] = Field(description="The taught TCP positions, m.")
    margin_m: float = Field(description="How far the box was shrunk inside the points, m.")


def teach_box(points_m: Sequence[Sequence[float]], *, margin_m: float = 0.01,
              min_extent_m: float = 0.05) -> WorkspaceResult:
    """The box spanned by the taught points, shrunk by `margin_m` on every side.

    Raises:
        CalibrationError: fewer than 2 points, a non-finite point, or a box thinner than
            `min_extent_m` on some axis after the margin (the corners were not spread).
    """
    pts = np.asarray(points_m, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
        raise CalibrationError(f"workspace: need at least 2 TCP positions of 3 values, got "
                               f"shape {pts.shape}; move the arm to opposite corners")
    if not np.all(np.isfinite(pts)):
        raise CalibrationError("workspace: a taught position is not finite; re-read the arm")
    lo, hi = pts.min(0) + margin_m, pts.max(0) - margin_m
    thin = [f"{'xyz'[i]} ({(hi[i] - lo[i]) * 1000:.0f} mm)" for i in range(3)
            if hi[i] - lo[i] < min_extent_m]
    if thin:
        raise CalibrationError(
            f"workspace: the box is too thin on {', '.join(thin)} "
            f"(need {min_extent_m * 1000:.0f} mm after a {margin_m * 1000:.0f} mm margin); "
            "teach corners that span the region on every axis"
        )
    return WorkspaceResult(workspace_min_m=tuple(lo.tolist()), workspace_max_m=tuple(hi.tolist()),
                           points_m=pts.tolist(), margin_m=margin_m)
