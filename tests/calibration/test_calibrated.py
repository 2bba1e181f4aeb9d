"""Stored calibrations applied at run start: the taught workspace narrows the safety box
(and a real arm's own box); stored intrinsics reach the camera driver's spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robolearn.calibration.results import save_calibration
from robolearn.calibration.run_config import with_calibrations
from robolearn.calibration.workspace import teach_box
from robolearn.config import load_config
from robolearn.errors import ConfigError
from robolearn.hardware.opencv import OpenCVCamera
from robolearn.hardware.realsense import RealsenseCamera
from robolearn.store import Store

RIG = Path(__file__).resolve().parents[2] / "configs" / "rig_franka.yaml"
INTRINSICS = {"image_width": 640, "image_height": 480,
              "camera_matrix": [[600.0, 0, 319.5], [0, 610.0, 239.5], [0, 0, 1]],
              "dist_coeffs": [0.1, -0.2, 0, 0, 0], "rms_px": 0.2, "focal_std_px": 1.0,
              "per_view_error_px": [0.2], "rejected": {}, "coverage": 0.5}


def test_nothing_stored_changes_nothing(write_config) -> None:
    cfg = load_config(write_config())
    assert with_calibrations(cfg) is cfg


def test_taught_workspace_narrows_the_safety_box(write_config) -> None:
    cfg = load_config(write_config())
    with Store.open(cfg.data_dir) as store:
        save_calibration(store, "workspace", "arm",
                         teach_box([[0.35, -0.5, 0.1], [0.9, 0.2, 0.3]], margin_m=0.0))
        narrowed = with_calibrations(cfg, store)
        # The newest version wins.
        save_calibration(store, "workspace", "arm",
                         teach_box([[0.4, -0.1, 0.1], [0.6, 0.1, 0.3]], margin_m=0.0))
        newest = with_calibrations(cfg, store)
    # Intersection with the configured (0.30, -0.30, 0.02)..(0.75, 0.30, 0.45).
    np.testing.assert_allclose(narrowed.safety.workspace_min_m, [0.35, -0.30, 0.1])
    np.testing.assert_allclose(narrowed.safety.workspace_max_m, [0.75, 0.2, 0.3])
    np.testing.assert_allclose(newest.safety.workspace_min_m, [0.4, -0.1, 0.1])
    assert narrowed.robot == cfg.robot  # the sim arm has no box of its own


def test_a_box_outside_the_config_is_refused(write_config) -> None:
    cfg = load_config(write_config())
    with Store.open(cfg.data_dir) as store:
        save_calibration(store, "workspace", "arm",
                         teach_box([[0.8, 0.0, 0.1], [1.0, 0.2, 0.3]], margin_m=0.0))
        with pytest.raises(ConfigError, match="do not overlap"):
            with_calibrations(cfg, store)


def test_real_rig_gets_its_box_and_camera_intrinsics(tmp_path: Path) -> None:
    cfg = load_config(RIG, [f"data_dir={tmp_path}"])
    with Store.open(cfg.data_dir) as store:
        save_calibration(store, "workspace", cfg.robot.name,
                         teach_box([[0.35, -0.2, 0.05], [0.6, 0.2, 0.35]], margin_m=0.0))
        save_calibration(store, "intrinsics", "front_cam", INTRINSICS)
        save_calibration(store, "intrinsics", "wrist_cam",
                         {**INTRINSICS, "image_width": 84, "image_height": 84})
        out = with_calibrations(cfg, store)
        # The arm's home (0.45, 0, 0.30) outside a taught box: refused, not silently moved.
        save_calibration(store, "workspace", cfg.robot.name,
                         teach_box([[0.5, -0.2, 0.05], [0.6, 0.2, 0.35]], margin_m=0.0))
        with pytest.raises(ConfigError, match="home_xyz_m"):
            with_calibrations(cfg, store)
    np.testing.assert_allclose(out.robot.workspace_min_m, [0.35, -0.2, 0.05])
    np.testing.assert_allclose(out.robot.workspace_max_m, [0.6, 0.2, 0.35])
    np.testing.assert_allclose(out.safety.workspace_max_m, [0.6, 0.2, 0.35])
    front, wrist = out.cameras
    spec = RealsenseCamera(front).spec  # the spec needs no SDK
    assert spec.intrinsics == front.intrinsics and spec.intrinsics is not None
    k = spec.intrinsics
    # 640x480 calibration scaled to the published 84x84 frames.
    assert (k.width, k.height, k.version) == (84, 84, 1)
    assert k.fx == pytest.approx(600 * 84 / 640) and k.fy == pytest.approx(610 * 84 / 480)
    assert k.cx == pytest.approx(41.5) and k.cy == pytest.approx(41.5)
    cam = OpenCVCamera(wrist.name, wrist.source, width=wrist.width, height=wrist.height,
                       intrinsics=wrist.intrinsics)
    assert cam.spec.intrinsics is not None and cam.spec.intrinsics.fx == pytest.approx(600)
