from pathlib import Path

import pytest

from robolearn.config import RunConfig, load_config
from robolearn.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.actor.control_hz > 0


def test_shipped_configs_exist() -> None:
    assert {p.stem for p in CONFIGS} >= {"sim_pick_cube", "sim_reach", "sim_push_cube",
                                         "sim_drawer_open", "sim_drawer_close"}


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nactor: {control_hz: 10, contrl_hz: 5}\n")
    with pytest.raises(ConfigError, match="contrl_hz"):
        load_config(p)


def test_empty_workspace_box_is_refused() -> None:
    with pytest.raises(ValueError, match="workspace_min_m"):
        RunConfig.model_validate({"name": "x", "safety": {"workspace_min_m": [0.5, 0, 0],
                                                          "workspace_max_m": [0.4, 1, 1]}})


def test_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ncameras: [{kind: sim, name: front}]\n")
    cfg = load_config(p, ["actor.control_hz=30", "robot.task=reach", "cameras.0.width=128"])
    assert cfg.actor.control_hz == 30
    assert cfg.robot.task == "reach"
    assert cfg.cameras[0].width == 128
    with pytest.raises(ConfigError, match="control_hz"):
        load_config(p, ["actor.control_hz=-1"])
    with pytest.raises(ConfigError, match="index 3"):
        load_config(p, ["cameras.3.width=64"])
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load_config(p, ["actor.control_hz"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_is_frozen() -> None:
    cfg = RunConfig(name="x")
    with pytest.raises(ValueError):
        cfg.actor.control_hz = 5  # type: ignore[misc]
