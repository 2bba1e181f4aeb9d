"""The control routes on a two-robot fleet with real processes (each robot's sim driver and
actor, on its own sockets and keys): the e-stop latches every robot's driver, a release
frees one robot only, one-robot commands must name their robot, and a robot whose actor is
gone is still stopped at its driver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from robolearn.config import RunConfig, parse_config
from robolearn.config.fleet import robot_views
from robolearn.processes import ProcessGroup
from robolearn.server.app import create_app
from robolearn.store.models import AuditEntry
from tests.cli.test_run_processes import spawn, stop
from tests.conftest import run_config_dict
from tests.server.conftest import SECRET, add_user, login
from tests.server.test_control import Driver


def fleet_config(sock_dir: Path, data_dir: Path, robots: tuple[str, ...] = ("left", "right"),
                 **actor: object) -> RunConfig:
    raw = run_config_dict(sock_dir, data_dir, actor={
        "policy": {"kind": "random"}, "episode_steps": 400, "end_on_success": False,
        "record": False, "live_fps": 0, **actor})
    raw["server"] = {"development": True}
    raw["fleet"] = {"robots": [{"name": n} for n in robots]}
    return parse_config(raw)


def drivers_of(cfg: RunConfig) -> dict[str, Driver]:
    """The test's own line to each robot's arm driver (as the operator)."""
    return {view.robot_name: Driver(view) for view in robot_views(cfg)}


def wait_stepping(operator, robots: list[str], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = set(robots)
    while waiting:
        assert time.monotonic() < deadline, f"actors of {sorted(waiting)} never stepped"
        for name in list(waiting):
            state = operator.get("/api/control/status", params={"robot": name}).json()
            if state["reachable"] and state["status"]["step"] >= 3:
                waiting.discard(name)
        time.sleep(0.1)


@pytest.fixture
def fleet(sock_dir: Path, tmp_path: Path):
    cfg = fleet_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    group = ProcessGroup(cfg, log_level="warning")
    drivers: dict[str, Driver] = {}
    try:
        group.start_drivers()
        group.start_actor()
        drivers = drivers_of(cfg)
        yield cfg, app, group, drivers
    finally:
        for d in drivers.values():
            d.close()
        group.stop()
        app.state.services.close()


def test_estop_latches_every_robot_and_release_frees_one(fleet) -> None:
    _cfg, app, _group, drivers = fleet
    with TestClient(app):
        store = app.state.services.store
        add_user(store, "viewer", "viewer")
        add_user(store, "op", "operator")
        viewer, operator = login(app, "viewer"), login(app, "op")
        wait_stepping(operator, ["left", "right"])
        assert all(d.status()["motions"] > 0 for d in drivers.values())

        # One press, any logged-in user: both arms latched, each robot's answer listed.
        r = viewer.post("/api/control/estop", json={"reason": "test"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["estop_latched"] is True and body["robot"] is None
        assert [(x["robot"], x["estop_latched"], x["via"]) for x in body["robots"]] == [
            ("left", True, "actor"), ("right", True, "actor")]
        assert drivers["left"].status()["estop"] is True
        assert drivers["right"].status()["estop"] is True
        with store.session() as db:
            targets = sorted(e.target for e in db.scalars(
                select(AuditEntry).where(AuditEntry.action == "control.estop")))
        assert targets == ["actor:left", "actor:right"]

        # One-robot commands must say which robot; the error names them.
        r = operator.post("/api/control/estop/release")
        assert r.status_code == 422 and "left, right" in r.json()["detail"]
        r = operator.post("/api/control/pause", params={"robot": "middle"})
        assert r.status_code == 404 and "left, right" in r.json()["detail"]
        assert operator.get("/api/control/status").status_code == 422
        assert drivers["left"].status()["estop"] is True  # nothing was released

        # Releasing one robot leaves the other latched.
        r = operator.post("/api/control/estop/release", params={"robot": "left"})
        assert r.status_code == 200, r.text
        assert r.json()["robot"] == "left" and r.json()["estop_latched"] is False
        assert drivers["left"].status()["estop"] is False
        assert drivers["right"].status()["estop"] is True
        status = operator.get("/api/control/status", params={"robot": "right"}).json()
        assert status["reachable"] and status["status"]["estop_latched"] is True

        # Pause and takeover act on the robot named, and only on it.
        r = operator.post("/api/control/takeover", params={"robot": "left"},
                          json={"active": True})
        assert r.status_code == 200 and r.json()["takeover"] is True
        right = operator.get("/api/control/status", params={"robot": "right"}).json()
        assert right["status"]["takeover"] is False
        assert operator.post("/api/control/teleop", params={"robot": "left"},
                             json={"action": [0.1, 0, 0, 1]}).status_code == 200
        assert operator.post("/api/control/teleop", params={"robot": "right"},
                             json={"action": [0.1, 0, 0, 1]}).status_code == 409
        assert operator.post("/api/control/takeover", params={"robot": "left"},
                             json={"active": False}).json()["takeover"] is False

        # An e-stop of one robot (body or query) stops that robot only.
        r = operator.post("/api/control/estop/release", params={"robot": "right"})
        assert r.status_code == 200, r.text
        r = viewer.post("/api/control/estop", json={"robot": "right"})
        assert r.status_code == 200, r.text
        assert r.json()["robot"] == "right"
        assert [x["robot"] for x in r.json()["robots"]] == ["right"]
        assert drivers["right"].status()["estop"] is True
        assert drivers["left"].status()["estop"] is False
        r = viewer.post("/api/control/estop", params={"robot": "middle"})
        assert r.status_code == 404 and "left, right" in r.json()["detail"]


def test_a_robot_whose_actor_is_gone_is_stopped_at_its_driver(fleet) -> None:
    _cfg, app, group, drivers = fleet
    with TestClient(app):
        add_user(app.state.services.store, "viewer", "viewer")
        viewer = login(app, "viewer")
        wait_stepping(viewer, ["left", "right"])
        actor = next(c for c in group.children if c.name == "actor@right")
        actor.proc.terminate()
        actor.proc.wait(30)
        r = viewer.post("/api/control/estop")
        assert r.status_code == 200, r.text
        assert {x["robot"]: x["via"] for x in r.json()["robots"]} == {
            "left": "actor", "right": "driver"}
        assert r.json()["via"] == "driver"
        assert drivers["left"].status()["estop"] is True
        assert drivers["right"].status()["estop"] is True
        assert viewer.get("/api/control/status", params={"robot": "right"}).json() == {
            "reachable": False, "status": None, "driver_estop": True}


def test_an_estop_that_reaches_one_robot_only_says_which_is_not_stopped(
        sock_dir: Path, tmp_path: Path) -> None:
    """Only the left robot's driver runs: the left arm latches, the right is reported NOT
    stopped (503), and the answer lists both."""
    cfg = fleet_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    group = ProcessGroup(cfg, log_level="warning")  # makes every robot's keys
    left, left_path = group.robots[0]
    proc = spawn("driver", str(left_path))
    driver = None
    try:
        driver = Driver(left)
        deadline = time.monotonic() + 60
        while True:  # the driver is up once it answers
            try:
                driver.status()
                break
            except Exception:
                assert time.monotonic() < deadline, "the left driver never answered"
        with TestClient(app):
            add_user(app.state.services.store, "viewer", "viewer")
            r = login(app, "viewer").post("/api/control/estop")
            assert r.status_code == 503
            body = r.json()
            assert "NOT confirmed for right" in body["detail"]
            assert "latched: left" in body["detail"]
            assert [(x["robot"], x["estop_latched"], x["via"]) for x in body["robots"]] == [
                ("left", True, "driver"), ("right", False, None)]
            assert driver.status()["estop"] is True
    finally:
        if driver is not None:
            driver.close()
        assert stop(proc) == 0
        group.stop()
        app.state.services.close()
