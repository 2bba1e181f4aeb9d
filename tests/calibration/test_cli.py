"""The calibrate CLI and the rig configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from robolearn.cli.main import main
from robolearn.config import load_config

RIGS = sorted(Path(__file__).resolve().parents[2].glob("configs/rig_*.yaml"))


def test_board_command_writes_png_and_pdf(tmp_path: Path) -> None:
    assert main(["calibrate", "board", "--out", str(tmp_path), "--squares", "5", "4",
                 "--square-mm", "30", "--marker-mm", "22"]) == 0
    assert (tmp_path / "board.png").stat().st_size > 0
    assert (tmp_path / "board.pdf").read_bytes().startswith(b"%PDF")


def test_board_command_refuses_a_bad_board(tmp_path: Path) -> None:
    assert main(["calibrate", "board", "--out", str(tmp_path), "--square-mm", "20",
                 "--marker-mm", "25"]) == 2
    assert not (tmp_path / "board.png").exists()


def test_intrinsics_command_without_images_stores_nothing(tmp_path: Path,
                                                          write_config) -> None:
    cfg = write_config()
    (tmp_path / "shots").mkdir()
    assert main(["calibrate", "intrinsics", str(cfg), "--camera", "wrist", "--images",
                 str(tmp_path / "shots")]) == 2
    assert not (tmp_path / "data" / "calibrations").exists()


@pytest.mark.parametrize("path", RIGS, ids=[p.stem for p in RIGS])
def test_rig_configs_load(path: Path) -> None:
    cfg = load_config(path, [])
    assert cfg.robot.kind in ("franka", "ur", "xarm")
    assert {c.kind for c in cfg.cameras} <= {"realsense", "opencv"}


def test_there_is_a_rig_per_vendor() -> None:
    assert {load_config(p, []).robot.kind for p in RIGS} == {"franka", "ur", "xarm"}
