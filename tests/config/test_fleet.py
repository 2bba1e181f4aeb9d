"""A fleet config: every robot's sockets, seeds and key identities, and the allow-lists that
keep one robot's actor off another robot's arm (checked on real CURVE sockets)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zmq

from robolearn.config import RunConfig, parse_config
from robolearn.config.fleet import robot_view, robot_views
from robolearn.config.sockets import actor_identities, run_identities, run_keys
from robolearn.errors import ConfigError, PeerTimeout
from robolearn.protocol import Replier, Requester
from tests.conftest import run_config_dict


def fleet_cfg(tmp_path: Path, robots: list[dict], **sections: object) -> RunConfig:
    raw = run_config_dict(tmp_path / "s", tmp_path / "data", **sections)
    raw["fleet"] = {"robots": robots}
    return parse_config(raw)


def test_each_robot_gets_its_own_sockets_seeds_and_settings(tmp_path: Path) -> None:
    cfg = fleet_cfg(tmp_path, [
        {"name": "left"}, {"name": "right", "set": {"robot.task": "pick_cube"}},
        {"name": "far", "set": {"actor.seed": 7}}],
        robot={"command_address": "tcp://127.0.0.1:6052"})
    left, right, far = robot_views(cfg)
    assert left.robot.command_address == "tcp://127.0.0.1:6052"  # robot 0: the template's
    assert right.robot.command_address == "tcp://127.0.0.1:6152"  # + port_stride
    assert far.robot.command_address == "tcp://127.0.0.1:6252"
    assert left.robot.state_address != right.robot.state_address  # ipc: a path each
    assert left.actor.control_address != right.actor.control_address
    assert (left.actor.seed, right.actor.seed, far.actor.seed) == (0, 1_000_000, 7)
    assert (left.robot.task, right.robot.task) == ("reach", "pick_cube")
    assert [v.robot_name for v in (left, right, far)] == ["left", "right", "far"]
    # Shared: one learner and one data directory for all.
    assert {v.learner.transitions_address for v in (left, right, far)} == {
        cfg.learner.transitions_address}
    # A resolved config and a robot's view read back as themselves.
    assert parse_config(cfg.model_dump(mode="json")) == cfg
    assert parse_config(right.model_dump(mode="json")) == right
    assert robot_view(right, "right") is right
    with pytest.raises(ConfigError, match="robot 'right'"):
        robot_view(right, "left")


def test_a_robot_host_moves_its_sockets_to_its_pc(tmp_path: Path) -> None:
    cfg = fleet_cfg(tmp_path, [{"name": "a", "host": "10.0.0.5"}, {"name": "b",
                                                                     "host": "10.0.0.6"}],
                    robot={"command_address": "tcp://127.0.0.1:6052"})
    a, b = robot_views(cfg)
    assert a.robot.command_address == "tcp://10.0.0.5:6052"
    assert b.robot.command_address == "tcp://10.0.0.6:6152"


@pytest.mark.parametrize(("robots", "message"), [
    ([{"name": "a"}, {"name": "a"}], "must be unique"),
    ([{"name": "A b"}], "should match pattern"),
    ([{"name": "a"}, {"name": "b", "set": {"actor.control_address": "ipc:///tmp/x/control"}},
      {"name": "c", "set": {"actor.control_address": "ipc:///tmp/x/control"}}],
     "used by robot 'b' too"),
])
def test_bad_fleets_are_refused(tmp_path: Path, robots: list[dict], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fleet_cfg(tmp_path, robots)


def test_robot_name_must_be_a_fleet_robot(tmp_path: Path) -> None:
    raw = run_config_dict(tmp_path / "s", tmp_path / "data")
    raw.update(fleet={"robots": [{"name": "a"}]}, robot_name="b")
    with pytest.raises(ConfigError, match=r"none of fleet\.robots"):
        parse_config(raw)


def test_identities_and_allow_lists_are_per_robot(tmp_path: Path) -> None:
    cfg = fleet_cfg(tmp_path, [{"name": "a"}, {"name": "b"}])
    assert set(run_identities(cfg)) == {"learner", "service", "operator", "driver-a",
                                        "actor-a", "driver-b", "actor-b"}
    assert actor_identities(cfg) == {"actor-a", "actor-b"}
    a, b = robot_views(cfg)
    driver_a = a.socket_security(a.robot.command_address, "driver")
    assert sorted(driver_a.allowed_clients.values()) == ["actor-a", "operator", "service"]
    transitions = cfg.socket_security(cfg.learner.transitions_address, "learner")
    assert sorted(transitions.allowed_clients.values()) == ["actor-a", "actor-b"]
    # Robot b's actor knows robot a's command address but may not connect to it.
    with pytest.raises(ConfigError, match="'actor-b' may not connect"):
        b.socket_security(a.robot.command_address, "actor")
    # A run of one robot keeps its plain identities.
    single = parse_config(run_config_dict(tmp_path / "s1", tmp_path / "d1"))
    assert actor_identities(single) == {"actor"}


def test_another_robots_actor_key_cannot_command_this_arm(tmp_path: Path) -> None:
    """Real CURVE sockets on loopback: robot a's command socket serves robot a's actor and
    refuses robot b's, although b's key is a key of the same run."""
    cfg = fleet_cfg(tmp_path, [{"name": "a"}, {"name": "b"}],
                    robot={"command_address": "tcp://127.0.0.1:0"})
    a, b = robot_views(cfg)
    ring = run_keys(cfg)
    ctx = zmq.Context()
    address = a.robot.command_address
    server = a.socket_security(address, "driver")
    seen: list = []
    try:
        with Replier(ctx, "tcp://127.0.0.1:*", "driver-a", security=server) as rep:
            def serve() -> None:
                while (got := rep.poll(2.0)) is not None:
                    seen.append(got[1])
                    rep.reply(got[0], got[1], ok=True)

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            own = a.socket_security(address, "actor")
            with Requester(ctx, rep.address, "actor-a", security=own) as req:
                assert req.request("arm_command", {"command": "status"},
                                   timeout_s=3.0).body["ok"] is True
            # b's own key pair, pinned to a's driver: what b's actor would hold if it
            # were pointed at a's arm.
            from robolearn.protocol import SocketSecurity

            foreign = SocketSecurity(server_public_key=ring.public("driver-a"),
                                     client_public_key=ring.public("actor-b"),
                                     client_secret_key=ring.secret("actor-b"))
            with Requester(ctx, rep.address, "actor-a", security=foreign) as req, \
                    pytest.raises(PeerTimeout):
                req.request("arm_command", {"command": "estop_release"}, timeout_s=0.7)
            thread.join()
        assert [m.peer for m in seen] == ["actor-a"]
    finally:
        ctx.term()
    assert b.robot_name == "b"
