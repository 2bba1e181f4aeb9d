"""The live bridge and GET /api/fleet on a two-robot fleet with real processes (each
robot's sim driver and actor, recording into one run): every robot's telemetry and frames
reach a viewer tagged with its name, `?robot=` watches one, the fleet lists each robot's
state and practice, and a robot whose actor died shows stale."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from robolearn.processes import ProcessGroup
from robolearn.server.app import create_app
from robolearn.server.auth import CSRF_HEADER, SESSION_COOKIE
from tests.conftest import free_port
from tests.server.conftest import PASSWORD, SECRET, add_user, login, server_config
from tests.server.test_fleet_control import fleet_config


@contextmanager
def serving(app: FastAPI, username: str) -> Iterator[tuple[httpx.Client, str]]:
    """The app under real uvicorn (its WebSocket too) and a client logged in as `username`;
    yields (client with the CSRF header set, ws:// URL of the live socket)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.post("/api/auth/login", json={"username": username,
                                                      "password": PASSWORD})
            assert r.status_code == 200, r.text
            client.headers[CSRF_HEADER] = r.json()["csrf_token"]
            yield client, url.replace("http", "ws") + "/ws/live"
    finally:
        server.should_exit = True
        thread.join(30)


def live_socket(client: httpx.Client, url: str):
    return connect(url, additional_headers={
        "Cookie": f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"}, max_size=None)


def wait_fleet(viewer, ready, what: str, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        r = viewer.get("/api/fleet")
        assert r.status_code == 200, r.text
        body = r.json()
        if ready(body):
            return body
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {body}"
        time.sleep(0.2)


def robots_by_name(body: dict) -> dict[str, dict]:
    return {r["name"]: r for r in body["robots"]}


def read_live(ws, count: int) -> list[tuple[str, dict]]:
    """`count` messages: ("telemetry", message) or ("frame", header)."""
    got = []
    for _ in range(count):
        msg = ws.recv(timeout=20)
        if isinstance(msg, bytes):
            header, _, _jpeg = msg.partition(b"\n")
            got.append(("frame", json.loads(header)))
        else:
            got.append(("telemetry", json.loads(msg)))
    return got


def test_fleet_page_data_and_live_streams_per_robot(sock_dir: Path, tmp_path: Path) -> None:
    cfg = fleet_config(sock_dir, tmp_path / "data", record=True, live_fps=5,
                       episode_steps=15)
    app = create_app(cfg, token_secret=SECRET)
    group = ProcessGroup(cfg, log_level="warning")
    try:
        store = app.state.services.store
        add_user(store, "viewer", "viewer")
        with serving(app, "viewer") as (viewer, ws_url):
            run_id = store.create_run("fleet", cfg.model_dump(mode="json"))
            group.start_drivers()
            group.start_actor(run_id=run_id)

            # Both robots practise in the run: state, step and store numbers per robot.
            body = wait_fleet(viewer, lambda b: all(
                r["state"] == "running" and not r["stale"] and (r["episodes"] or 0) >= 1
                for r in b["robots"]), "both robots running with an episode done")
            assert body["fleet"] is True and body["run_id"] == run_id
            robots = robots_by_name(body)
            assert list(robots) == ["left", "right"]
            for r in robots.values():
                assert r["episode"] >= 0 and r["step"] >= 0
                assert 0.0 <= r["success_rate"] <= 1.0
                assert r["intervention_episodes"] == 0
                assert r["interventions_per_robot_hour"] == 0.0
                assert r["telemetry_age_s"] < body["stale_after_s"]
                assert r["cameras"] == ["front", "wrist"]
                assert r["estop"] is False and r["waiting_for_operator"] is False

            # One socket, both robots: telemetry and frames tagged with their robot.
            with live_socket(viewer, ws_url) as ws:
                seen: set[tuple[str, str]] = set()
                deadline = time.monotonic() + 30
                while not {("telemetry", "left"), ("telemetry", "right"),
                           ("frame", "left"), ("frame", "right")} <= seen:
                    assert time.monotonic() < deadline, f"only saw {sorted(seen)}"
                    for kind, message in read_live(ws, 1):
                        seen.add((kind, message["robot"]))
            # ?robot= watches one robot only.
            with live_socket(viewer, ws_url + "?robot=right") as ws:
                got = read_live(ws, 20)
                assert {m["robot"] for _, m in got} == {"right"}
                assert {k for k, _ in got} == {"telemetry", "frame"}
            r = viewer.get("/api/live/telemetry", params={"robot": "left"})
            assert r.status_code == 200 and r.json()["sender"] == "actor-left"
            assert viewer.get("/api/live/telemetry").status_code == 422

            # The e-stop shows on every robot's card.
            assert viewer.post("/api/control/estop").status_code == 200
            wait_fleet(viewer, lambda b: all(r["state"] == "estop" and r["estop"]
                                             for r in b["robots"]), "both robots e-stopped")

            # A dead actor: its robot goes stale, the other stays fresh.
            actor = next(c for c in group.children if c.name == "actor@right")
            actor.proc.terminate()
            actor.proc.wait(30)
            body = wait_fleet(viewer, lambda b: robots_by_name(b)["right"]["stale"],
                              "the right robot to go stale", timeout_s=30)
            assert robots_by_name(body)["left"]["stale"] is False
            assert robots_by_name(body)["right"]["telemetry_age_s"] > body["stale_after_s"]
    finally:
        group.stop()
        app.state.services.close()


def test_fleet_of_a_run_of_one_robot_with_nothing_running(sock_dir: Path,
                                                          tmp_path: Path) -> None:
    cfg = server_config(sock_dir, tmp_path / "data")
    app = create_app(cfg, token_secret=SECRET)
    try:
        with TestClient(app):
            add_user(app.state.services.store, "viewer", "viewer")
            body = login(app, "viewer").get("/api/fleet").json()
            assert body["fleet"] is False and body["run_id"] is None
            [robot] = body["robots"]
            assert robot["name"] is None and robot["state"] == "unknown"
            assert robot["stale"] is True and robot["telemetry_age_s"] is None
            assert robot["episodes"] is None
    finally:
        app.state.services.close()
