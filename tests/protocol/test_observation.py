"""The typed observation: its flat Gymnasium layout, and camera names that would collide with
that layout refused when a run config is loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from robolearn.config import load_config
from robolearn.errors import ConfigError
from robolearn.protocol.observation import RESERVED_KEYS, Observation, camera_name_problem

CONFIG = Path(__file__).parents[2] / "configs" / "rig_ur5e.yaml"


def _obs(**kwargs: object) -> Observation:
    args: dict[str, object] = {
        "images": {"front": np.zeros((4, 4, 3), np.uint8)},
        "proprio": np.arange(8, dtype=np.float32),
        "joint_pos": np.zeros(7, np.float32),
    }
    return Observation(**(args | kwargs))  # type: ignore[arg-type]


def test_flat_keeps_the_gym_layout() -> None:
    depth = np.ones((4, 4), np.uint16)
    obs = _obs(depth_mm={"front": depth}, privileged=np.ones(3, np.float32))
    flat = obs.flat()
    assert set(flat) == {"front", "front_depth_mm", "proprio", "joint_pos", "state"}
    assert flat["front_depth_mm"] is depth and flat["proprio"] is obs.proprio
    assert "state" not in _obs().flat()  # a real rig has no privileged state


@pytest.mark.parametrize("name", [*sorted(RESERVED_KEYS), "wrist_depth_mm"])
def test_a_camera_named_like_another_key_is_refused(name: str, tmp_path: Path) -> None:
    assert camera_name_problem(name) is not None
    with pytest.raises(ValueError, match="rename the camera"):
        _obs(images={name: np.zeros((4, 4, 3), np.uint8)}).flat()
    data = yaml.safe_load(CONFIG.read_text())
    data["cameras"][0]["name"] = name
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=f"camera name '{name}'"):
        load_config(path)


def test_ordinary_camera_names_load() -> None:
    assert camera_name_problem("front") is None
    cfg = load_config(CONFIG)
    assert all(camera_name_problem(c.name) is None for c in cfg.cameras)
