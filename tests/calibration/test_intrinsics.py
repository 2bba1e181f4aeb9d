"""Intrinsics recovered from board views rendered in the sim, and bad input refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robolearn.calibration.detect import BoardDetector
from robolearn.calibration.intrinsics import calibrate_intrinsics
from robolearn.errors import CalibrationError
from tests.calibration.conftest import BOARD, WristViews


def test_recovers_the_wrist_camera_intrinsics(wrist_views: WristViews) -> None:
    assert len(wrist_views.detections) >= 12
    result = calibrate_intrinsics(wrist_views.detections)
    k, true_k = result.k, wrist_views.true_k
    assert abs(k[0, 0] / true_k[0, 0] - 1) < 0.01 and abs(k[1, 1] / true_k[1, 1] - 1) < 0.01
    assert abs(k[0, 2] - true_k[0, 2]) < 2.0 and abs(k[1, 2] - true_k[1, 2]) < 2.0
    assert result.rms_px < 0.5 and not result.rejected
    assert all(e is not None and e < 0.5 for e in result.per_view_error_px)
    assert 0 < result.coverage <= 1


def test_a_corrupted_view_is_rejected_and_reported(wrist_views: WristViews) -> None:
    dets = list(wrist_views.detections)
    bad = dets[3]
    noise = np.random.default_rng(1).normal(0, 6.0, bad.corners_px.shape).astype(np.float32)
    dets[3] = dataclasses.replace(bad, corners_px=bad.corners_px + noise)
    result = calibrate_intrinsics(dets)
    assert list(result.rejected) == [3] and "reprojection error" in result.rejected[3]
    assert result.per_view_error_px[3] is None
    assert abs(result.k[0, 0] / wrist_views.true_k[0, 0] - 1) < 0.01


def test_board_not_in_view_and_too_few_views(wrist_views: WristViews) -> None:
    assert BoardDetector(BOARD).detect(wrist_views.empty_image) is None
    with pytest.raises(CalibrationError, match=r"3 usable views of 5, need 8.*board not found"):
        calibrate_intrinsics([*wrist_views.detections[:3], None, None])


def test_views_that_cannot_fix_the_focal_length_are_refused(wrist_views: WristViews) -> None:
    same = [wrist_views.detections[0]] * 10  # ten copies of one view: focal undetermined
    with pytest.raises(CalibrationError, match=r"too alike|undetermined"):
        calibrate_intrinsics(same)
