"""The control routes against a real actor process driving the sim driver process: the
e-stop through the HTTP API latches in the driver and nothing moves after the answer; roles,
refusals and the fallback to the driver when the actor is gone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq
from fastapi.testclient import TestClient
from sqlalchemy import select

from robolearn.config import RunConfig, parse_config
from robolearn.processes import ProcessGroup
from robolearn.protocol import Requester
from robolearn.server.app import create_app
from robolearn.store.models import AuditEntry
from tests.conftest import run_config_dict
from tests.server.conftest import SECRET, add_user, login


def rig_config(sock_dir: Path, data_dir: Path) -> RunConfig:
    raw = run_config_dict(sock_dir, data_dir, actor={
        "policy": {"kind": "random"}, "episode_steps": 400, "end_on_success": False,
        "record": False, "live_fps": 0})
    raw["server"] = {"development": True}
    return parse_config(raw)


class Driver:
    """The test's own line to the arm driver: its e-stop flag and executed motion count."""

    def __init__(self, cfg: RunConfig) -> None:
        self.ctx = zmq.Context()
        self.req = Requester(self.ctx, cfg.robot.command_address, "test",
                             security=cfg.socket_security(cfg.robot.command_address, "operator"))

    def status(self) -> dict:
        reply = self.req.request("arm_command", {"command": "status"}, timeout_s=5.0)
        return dict(reply.body["data"])

    def close(self) -> None:
        self.req.close()
        self.ctx.term()


def wait_for_actor(operator, timeout_s: float = 60.0, min_step: int = 3) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = operator.get("/api/control/status").json()
        if state["reachable"] and state["status"]["step"] >= min_step:
            return
        time.sleep(0.1)
    raise AssertionError("the actor never started stepping")


def test_estop_through_the_api_latches_in_the_driver(sock_dir: Path, tmp_path: Path) -> None:
    cfg = rig_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    group = ProcessGroup(cfg, log_level="warning")
    driver = Driver(cfg)
    try:
        group.start_drivers()
        group.start_actor()
        with TestClient(app):
            store = app.state.services.store
            add_user(store, "viewer", "viewer")
            add_user(store, "op", "operator")
            viewer, operator = login(app, "viewer"), login(app, "op")
            wait_for_actor(operator)
            moved = driver.status()["motions"]
            assert moved > 0

            # Any logged-in user may stop the robot, and the answer means it is latched.
            r = viewer.post("/api/control/estop", json={"reason": "test"})
            assert r.status_code == 200, r.text
            assert r.json()["estop_latched"] and r.json()["via"] == "actor"
            motions = driver.status()["motions"]
            assert driver.status()["estop"] is True
            time.sleep(1.0)  # ten control periods in which the actor would have moved it
            assert driver.status()["motions"] == motions
            with store.session() as db:
                entry = db.scalars(select(AuditEntry)
                                   .where(AuditEntry.action == "control.estop")).one()
                assert entry.detail["via"] == "actor"

            # Only operators release it; a viewer's attempt changes nothing.
            assert viewer.post("/api/control/estop/release").status_code == 403
            assert driver.status()["estop"] is True
            r = operator.post("/api/control/estop/release")
            assert r.status_code == 200 and not r.json()["estop_latched"]
            assert driver.status()["estop"] is False

            # Teleop needs a takeover; bad actions are refused before reaching the actor.
            assert operator.post("/api/control/teleop",
                                 json={"action": [0, 0, 0, 1]}).status_code == 409
            assert operator.post("/api/control/takeover", json={"active": True}).json()[
                "takeover"]
            assert operator.post("/api/control/teleop",
                                 json={"action": [2, 0, 0, 1]}).status_code == 422
            assert operator.post("/api/control/teleop",
                                 json={"action": [0.1, 0, 0, 1]}).status_code == 200
            assert not operator.post("/api/control/takeover",
                                     json={"active": False}).json()["takeover"]

            # With the actor gone the e-stop still reaches the arm, through its driver.
            actor = next(c for c in group.children if c.name == "actor")
            actor.proc.terminate()
            actor.proc.wait(30)
            r = viewer.post("/api/control/estop")
            assert r.status_code == 200, r.text
            assert r.json()["via"] == "driver"
            assert driver.status()["estop"] is True
            # The status shows the driver's own latch, the one truth.
            assert operator.get("/api/control/status").json() == {
                "reachable": False, "status": None, "driver_estop": True}
            driver.req.request("arm_command", {"command": "estop_release", "reason": "test"},
                               timeout_s=5.0)
            assert operator.get("/api/control/status").json()["driver_estop"] is False
    finally:
        driver.close()
        group.stop()
        app.state.services.close()


@pytest.mark.parametrize("headers", [{}, {"X-CSRF-Token": "wrong"}])
def test_estop_without_valid_csrf_is_refused_and_sends_nothing(
        sock_dir: Path, tmp_path: Path, headers: dict[str, str]) -> None:
    cfg = rig_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    try:
        with TestClient(app):
            add_user(app.state.services.store, "viewer", "viewer")
            viewer = login(app, "viewer")
            r = viewer.client.post("/api/control/estop", headers=headers)
            assert r.status_code == 403
            assert "actor_control" not in app.state.services.extras  # never contacted
    finally:
        app.state.services.close()


def test_estop_with_nobody_answering_says_it_is_not_confirmed(sock_dir: Path,
                                                              tmp_path: Path) -> None:
    cfg = rig_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    try:
        with TestClient(app):
            add_user(app.state.services.store, "viewer", "viewer")
            r = login(app, "viewer").post("/api/control/estop")
            assert r.status_code == 503
            assert "NOT confirmed" in r.json()["detail"]
    finally:
        app.state.services.close()
