"""A fleet robot that asks for help, with real processes (each robot's sim driver and actor
process, the service app on the same store): its request names the robot, shows on its
Fleet card and in the one queue, the robot holds while it waits (no motion reaches its
driver, the other robot keeps practising), and the answer records how long it waited."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from robolearn.config import RunConfig, parse_config
from robolearn.config.fleet import robot_views
from robolearn.processes import ProcessGroup
from robolearn.server.app import create_app
from tests.conftest import run_config_dict
from tests.server.conftest import SECRET, add_user, login
from tests.server.test_control import Driver


def attention_config(sock_dir: Path, data_dir: Path) -> RunConfig:
    # Reset-free drawer practice; "stuck" holds still (never moves the drawer: no progress
    # after 6 steps, so it asks at once), "busy" runs the scripted expert and never asks.
    raw = run_config_dict(
        sock_dir, data_dir, robot={"task": "drawer_open"},
        cameras=[{"kind": "sim", "name": "front", "width": 32, "height": 32, "fps": 10}],
        actor={"policy": {"kind": "expert"}, "episode_steps": 60, "record": True,
               "live_fps": 0, "max_obs_age_ms": 1000.0},
        reset_free={"enabled": True, "forward_task": "drawer_open",
                    "backward_task": "drawer_close", "request_poll_s": 0.05})
    raw["server"] = {"development": True}
    raw["fleet"] = {"robots": [
        {"name": "stuck", "set": {"actor.policy.kind": "zero", "reset_free.stuck_steps": 6}},
        {"name": "busy"}]}
    return parse_config(raw)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_robot_asks_holds_and_is_answered(sock_dir: Path, tmp_path: Path) -> None:
    cfg = attention_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    group = ProcessGroup(cfg, log_level="warning")
    drivers: dict[str | None, Driver] = {}
    try:
        with TestClient(app):
            store = app.state.services.store
            add_user(store, "op", "operator")
            op = login(app, "op")
            run_id = store.create_run("attention", cfg.model_dump(mode="json"))
            group.start_drivers()
            group.start_actor(run_id=run_id)
            drivers = {v.robot_name: Driver(v) for v in robot_views(cfg)}

            def cards() -> dict[str, dict]:
                body = op.get("/api/fleet").json()
                return {r["name"]: r for r in body["robots"]}

            def asking() -> dict[str, dict] | None:
                c = cards()
                return c if c["stuck"]["requests"] and c["stuck"]["waiting_for_operator"] \
                    else None

            robots = wait_for("the stuck robot's request on its card", asking)
            [request] = robots["stuck"]["requests"]
            assert (request["robot"], request["kind"], request["priority"]) == (
                "stuck", "no_progress", 0)
            assert request["status"] == "open" and request["waited_s"] >= 0.0
            assert robots["busy"]["requests"] == []
            queue = op.get("/api/operator-requests/queue").json()
            assert queue["run_id"] == run_id
            assert [(r["id"], r["robot"]) for r in queue["requests"]] == [
                (request["id"], "stuck")]

            # Holds: while the request is open no motion reaches the stuck robot's arm and
            # its actor says it waits; the other robot keeps practising meanwhile.
            before = drivers["stuck"].status()
            busy_before = drivers["busy"].status()["motions"]
            time.sleep(1.5)
            after = drivers["stuck"].status()
            assert after["motions"] == before["motions"], (before, after)
            assert after["moving"] is False and after["estop"] is False
            assert drivers["busy"].status()["motions"] > busy_before
            card = cards()["stuck"]
            assert card["state"] == "operator_request" and not card["stale"]
            assert card["requests"][0]["waited_s"] >= 1.5

            r = op.post(f"/api/operator-requests/{request['id']}/resolve",
                        json={"resolution": "human_reset"})
            assert r.status_code == 200, r.text
            answered = r.json()
            created = dt.datetime.fromisoformat(answered["created_at"])
            resolved = dt.datetime.fromisoformat(answered["resolved_at"])
            assert answered["waited_s"] >= 1.5
            assert abs(answered["waited_s"] - (resolved - created).total_seconds()) < 0.01
            # The answer stands: waited_s no longer grows once answered.
            time.sleep(0.3)
            [listed] = [x for x in op.get("/api/operator-requests",
                                          params={"status": "all"}).json()
                        if x["id"] == request["id"]]
            assert listed["waited_s"] == answered["waited_s"]
            # It resumed: it moves again (and, still holding still, asks again).
            wait_for("the stuck robot to move again",
                     lambda: drivers["stuck"].status()["motions"] > after["motions"])
            again = wait_for("a second request", lambda: [
                x for x in cards()["stuck"]["requests"] if x["id"] != request["id"]])
            assert again[0]["robot"] == "stuck"
    finally:
        for d in drivers.values():
            d.close()
        group.stop()
        app.state.services.close()
