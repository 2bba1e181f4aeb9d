"""Printable board at true scale; versioned result storage; workspace teaching."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robolearn.calibration.board import write_printable
from robolearn.calibration.detect import BoardDetector
from robolearn.calibration.results import latest_calibration, save_calibration
from robolearn.calibration.workspace import teach_box
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.errors import CalibrationError
from robolearn.store import Store
from robolearn.store.models import Calibration


def test_printable_board_is_true_scale_and_detectable(tmp_path: Path) -> None:
    cfg = CharucoBoardConfig(squares_x=6, squares_y=4, square_length_m=0.03,
                             marker_length_m=0.022)
    png, pdf = write_printable(cfg, tmp_path, dpi=254, margin_m=0.01)  # 10 px per mm
    img = Image.open(png)
    assert img.size == (6 * 300 + 200, 4 * 300 + 200)
    assert img.info["dpi"] == pytest.approx((254, 254))
    det = BoardDetector(cfg).detect(np.asarray(img.convert("L")))
    assert det is not None and det.count == 15
    media = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert media is not None
    width_pt, height_pt = float(media.group(1)), float(media.group(2))
    assert width_pt == pytest.approx((0.18 + 0.02) / 0.0254 * 72, rel=1e-3)
    assert height_pt == pytest.approx((0.12 + 0.02) / 0.0254 * 72, rel=1e-3)


def test_board_config_rejects_impossible_boards() -> None:
    with pytest.raises(ValueError, match="smaller than"):
        CharucoBoardConfig(square_length_m=0.02, marker_length_m=0.03)
    with pytest.raises(ValueError, match="holds 50 markers"):
        CharucoBoardConfig(squares_x=12, squares_y=10)


def test_results_are_versioned_files_and_rows(tmp_path: Path) -> None:
    with Store.open(tmp_path / "data") as store:
        assert latest_calibration(store, "workspace", "arm") is None
        box = teach_box([[0.3, -0.2, 0.05], [0.7, 0.2, 0.4]], margin_m=0.0)
        first = save_calibration(store, "workspace", "arm", box)
        second = save_calibration(store, "workspace", "arm", {"note": "retaught"})
        assert (first.version, second.version) == (1, 2)
        assert json.loads(first.path.read_text())["data"]["workspace_max_m"] == [0.7, 0.2, 0.4]
        assert first.path.exists() and second.path.name == "workspace_v002.json"
        latest = latest_calibration(store, "workspace", "arm")
        assert latest is not None and latest.version == 2 and latest.data == {"note": "retaught"}
        with pytest.raises(CalibrationError, match="unknown"):
            save_calibration(store, "colour", "arm", {})
        with pytest.raises(CalibrationError, match="device name"):
            save_calibration(store, "workspace", "../etc", {})
        with store.session() as s:
            assert s.query(Calibration).count() == 2
        assert sorted(p.name for p in (store.data_dir / "calibrations").rglob("*")
                      if p.is_file()) == ["workspace_v001.json", "workspace_v002.json"]


def test_teach_box() -> None:
    corners = [[0.3, -0.25, 0.02], [0.75, 0.25, 0.02], [0.3, 0.25, 0.4], [0.75, -0.25, 0.4]]
    box = teach_box(corners, margin_m=0.01)
    assert box.workspace_min_m == pytest.approx((0.31, -0.24, 0.03))
    assert box.workspace_max_m == pytest.approx((0.74, 0.24, 0.39))
    with pytest.raises(CalibrationError, match="too thin on z"):
        teach_box([[0.3, -0.2, 0.1], [0.7, 0.2, 0.12]])
    with pytest.raises(CalibrationError, match="at least 2"):
        teach_box([[0.3, -0.2, 0.1]])
    with pytest.raises(CalibrationError, match="not finite"):
        teach_box([[0.3, -0.2, 0.1], [np.nan, 0.2, 0.4]])
