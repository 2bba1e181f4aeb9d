"""The actor's control thread opens its sockets as its robot's actor (`actor-<robot>` in a
fleet, `actor` for a run of one robot), checked on real CURVE sockets."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zmq

from robolearn.actor.control_server import ControlServer, OperatorState
from robolearn.config import RunConfig, parse_config
from robolearn.config.fleet import robot_views
from robolearn.protocol import Message, Replier, Requester
from robolearn.protocol.messages import ArmCommand, Reply
from tests.conftest import run_config_dict


def _config(sock_dir: Path, tmp_path: Path, fleet: bool) -> RunConfig:
    raw = run_config_dict(sock_dir, tmp_path / "data")
    if not fleet:
        return parse_config(raw)
    raw["fleet"] = {"robots": [{"name": "a"}, {"name": "b"}]}
    return robot_views(parse_config(raw))[1]  # robot b's processes run on this view


@pytest.mark.parametrize(("fleet", "actor"), [(False, "actor"), (True, "actor-b")])
def test_control_server_answers_and_commands_the_driver_as_its_robots_actor(
        sock_dir: Path, tmp_path: Path, fleet: bool, actor: str) -> None:
    cfg = _config(sock_dir, tmp_path, fleet)
    ctx = zmq.Context()
    seen: list[Message] = []
    address = cfg.robot.command_address
    try:
        with Replier(ctx, address, "driver",
                     security=cfg.socket_security(address, "driver")) as driver:
            def serve() -> None:
                while (got := driver.poll(3.0)) is not None:
                    seen.append(got[1])
                    driver.reply(got[0], got[1], ok=True, data={"estop": True})
                    return

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            server = ControlServer(cfg, ctx, OperatorState(4, threading.Event()))
            server.start()
            try:
                control = cfg.actor.control_address
                with Requester(ctx, control, "operator",
                               security=cfg.socket_security(control, "operator")) as req:
                    msg = req.request("actor_command", {"command": "estop", "operator": "ann"},
                                      timeout_s=3.0)
            finally:
                server.stop()
            thread.join()
    finally:
        ctx.term()
    reply = Reply.from_message(msg)
    assert reply.ok and reply.data is not None and reply.data["estop_latched"] is True
    assert msg.sender == actor
    # The driver's command socket admitted the actor's own key; the e-stop names who asked.
    assert [(m.peer, m.sender) for m in seen] == [(actor, f"{actor}-control")]
    command = ArmCommand.from_message(seen[0])
    assert (command.command, command.reason) == ("estop", "operator (ann)")
