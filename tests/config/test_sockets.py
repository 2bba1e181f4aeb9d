"""Who binds each socket of a run, who may connect, and where the keys come from."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq.auth

from robolearn.config import parse_config
from robolearn.config.sockets import run_keys
from robolearn.errors import ConfigError
from tests.conftest import run_config_dict


def _cfg(tmp_path: Path, **sections: object):
    return parse_config(run_config_dict(tmp_path / "s", tmp_path / "data", **sections))


def test_binder_gets_its_allow_list_and_clients_pin_the_binder(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ring = run_keys(cfg)
    driver = cfg.socket_security(cfg.robot.command_address, "driver")
    assert driver.server_public_key == ring.public("driver")
    assert sorted(driver.allowed_clients.values()) == ["actor", "operator", "service"]
    state = cfg.socket_security(cfg.robot.state_address, "driver")
    assert "learner" in state.allowed_clients.values()  # any of the run's processes
    actor = cfg.socket_security(cfg.robot.command_address, "actor")
    assert actor.server_public_key == ring.public("driver")
    assert actor.client_public_key == ring.public("actor")
    transitions = cfg.socket_security(cfg.learner.transitions_address, "learner")
    assert list(transitions.allowed_clients.values()) == ["actor"]


@pytest.mark.parametrize(("address", "who"), [
    ("learner.transitions_address", "operator"), ("learner.weights_address", "service"),
    ("actor.control_address", "learner"), ("robot.command_address", "learner"),
])
def test_identities_outside_a_sockets_list_may_not_connect(tmp_path: Path, address: str,
                                                           who: str) -> None:
    cfg = _cfg(tmp_path)
    section, field = address.split(".")
    with pytest.raises(ConfigError, match="may not connect"):
        cfg.socket_security(getattr(getattr(cfg, section), field), who)


def test_an_unknown_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not one of the run's socket addresses"):
        _cfg(tmp_path).socket_security("tcp://127.0.0.1:1", "actor")


def test_single_host_run_makes_its_keys_a_multi_host_run_does_not(tmp_path: Path) -> None:
    local = _cfg(tmp_path / "a")
    run_keys(local)
    assert (tmp_path / "a" / "data" / "keys" / "actor.key_secret").is_file()
    remote = _cfg(tmp_path / "b", robot={"command_address": "tcp://10.0.0.2:5552"})
    with pytest.raises(ConfigError, match="no run keys"):
        remote.socket_security(remote.robot.command_address, "actor")
    assert not (tmp_path / "b" / "data" / "keys").exists()


def test_keys_of_another_run_are_not_accepted(tmp_path: Path) -> None:
    a, b = _cfg(tmp_path / "a"), _cfg(tmp_path / "b")
    assert run_keys(a).public("actor") != run_keys(b).public("actor")
    server = a.socket_security(a.robot.command_address, "driver")
    public, _ = zmq.auth.load_certificate(tmp_path / "b" / "data" / "keys" / "actor.key")
    assert public.decode() not in server.allowed_clients


def test_insecure_turns_keys_off(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, security={"insecure": True})
    sec = cfg.socket_security(cfg.robot.command_address, "actor")
    assert sec.insecure and not sec.curve
    assert not (tmp_path / "data" / "keys").exists()


@pytest.mark.parametrize("corner", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_safety_box_is_refused(tmp_path: Path, corner: float) -> None:
    with pytest.raises(ConfigError, match="finite"):
        _cfg(tmp_path, safety={"workspace_min_m": [0.3, corner, 0.02]})
    with pytest.raises(ConfigError, match="finite"):
        _cfg(tmp_path, safety={"workspace_max_m": [corner, 0.3, 0.45]})


def test_one_address_for_two_sockets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="used twice"):
        _cfg(tmp_path, actor={"control_address": "ipc:///tmp/same",
                              "telemetry_address": "ipc:///tmp/same"})


def test_takeover_timeout_must_exceed_the_stale_limit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takeover_timeout_ms"):
        _cfg(tmp_path, actor={"teleop_stale_ms": 2000, "takeover_timeout_ms": 1000})


def test_a_real_arms_safety_box_must_lie_inside_its_own_box() -> None:
    import yaml

    raw = yaml.safe_load((Path(__file__).parents[2] / "configs" / "rig_franka.yaml").read_text())
    parse_config(raw)  # as shipped: inside
    raw["safety"]["workspace_max_m"] = [0.9, 0.25, 0.40]  # past the arm's 0.70 m
    with pytest.raises(ConfigError, match="inside the arm's own workspace box"):
        parse_config(raw)
