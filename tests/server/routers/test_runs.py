"""Runs started from the API against real processes: the service's supervisor spawns the sim
driver and the actor (`robolearn actor --run-id`) as OS processes talking over ZeroMQ,
recording into the service's SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
import zmq
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robolearn.actor.control import ActorControlClient
from robolearn.config import RunConfig
from robolearn.protocol import Subscriber
from robolearn.runlock import LockOwner, RobotLock, describe_owner, process_started_at
from robolearn.server.app import create_app
from robolearn.store import Store
from robolearn.store.runs import create_owned_run
from tests.conftest import run_config_dict
from tests.server.conftest import SECRET, Actor, add_user, login, server_config


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll until `predicate()` is truthy; its value is returned."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
    return value


def fast_run_config(sock_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """Small cameras, short episodes, a random policy and no learner: quick to start."""
    raw = run_config_dict(sock_dir, tmp_path / "ignored",
                          actor={"episode_steps": 8, "end_on_success": False,
                                 "policy": {"kind": "random"}},
                          learner={"enabled": False})
    for cam in raw["cameras"]:
        cam.update(width=32, height=32)
    return raw


def episodes_of(user: Actor, run_id: int) -> list[dict[str, Any]]:
    r = user.get("/api/episodes", params={"run_id": run_id, "status": "complete"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def paused_at(telemetry: Subscriber) -> tuple[int, int] | None:
    """(episode, step) from the actor's next heartbeat if it says it holds paused."""
    msg = telemetry.wait_new("telemetry", timeout_s=1.0)
    values = msg.body["values"] if msg is not None else {}
    if values.get("state") != "paused":
        return None
    return values["episode"], values["episode_step"]


def actor_pid(app: FastAPI, run_id: int) -> int:
    """The pid of the actor the service spawned (a child of this test process)."""
    pids = [p.pid for p in psutil.Process().children()
            if "actor" in p.cmdline() and "--run-id" in p.cmdline()
            and str(run_id) in p.cmdline()]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.fixture
def config(sock_dir: Path, tmp_path: Path) -> RunConfig:
    """The service's config, allowing one config file: the fast sim run."""
    allowed = tmp_path / "configs" / "fast_sim.yaml"
    allowed.parent.mkdir()
    allowed.write_text(yaml.safe_dump(fast_run_config(sock_dir, tmp_path)))
    return server_config(sock_dir, tmp_path / "data", allowed_configs=[str(allowed)])


@pytest.fixture
def create(users: dict[str, Actor]) -> Callable[[], int]:
    def make() -> int:
        r = users["operator"].post("/api/runs", json={"config": "fast_sim"})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "created"
        return r.json()["id"]

    return make


def test_run_lifecycle_records_into_its_own_row(
    app: FastAPI, config: RunConfig, users: dict[str, Actor], store: Store,
    create: Callable[[], int],
) -> None:
    op, viewer = users["operator"], users["viewer"]
    run_id = create()
    assert viewer.post(f"/api/runs/{run_id}/start").status_code == 403
    assert op.get(f"/api/runs/{run_id}").json()["processes"] == {}

    r = op.post(f"/api/runs/{run_id}/start")
    assert r.status_code == 200, r.text
    procs = r.json()["processes"]
    assert "actor" in procs and len(procs) >= 2  # the sim driver and the actor
    try:
        # The actor marks the API's row running and records under it: one run, one row.
        wait_for(lambda: op.get(f"/api/runs/{run_id}").json()["status"] == "running", 30,
                 "the actor to mark the run running")
        wait_for(lambda: episodes_of(op, run_id), 30, "an episode under the run")
        assert [r.id for r in store.list_runs()] == [run_id]

        # One robot, one run: a second start is refused and changes nothing.
        other = create()
        r = op.post(f"/api/runs/{other}/start")
        assert r.status_code == 409 and f"run {run_id}" in r.json()["detail"]
        assert op.get(f"/api/runs/{other}").json()["status"] == "created"
        assert op.get(f"/api/runs/{other}").json()["processes"] == {}
        assert op.post(f"/api/runs/{run_id}/start").status_code == 409

        # Pause holds the loop at a step boundary: no step is taken for a second.
        ctx = zmq.Context()
        telemetry = Subscriber(ctx, config.actor.telemetry_address, types=("telemetry",),
                               security=config.socket_security(config.actor.telemetry_address,
                                                               "operator"))
        control = ActorControlClient(
            config.actor.control_address,
            config.socket_security(config.actor.control_address, "operator"))
        try:
            assert op.post(f"/api/runs/{run_id}/pause").status_code == 200
            held = wait_for(lambda: paused_at(telemetry), 10, "the actor to hold")
            time.sleep(1.0)
            assert paused_at(telemetry) == held
            now = control.status()
            assert now.paused and (now.episode, now.step) == held

            assert op.post(f"/api/runs/{run_id}/resume").status_code == 200
            wait_for(lambda: (s := control.status()).step != held[1] or s.episode != held[0],
                     10, "a step after resume")
            assert not control.status().paused
        finally:
            control.close()
            telemetry.close()
            ctx.term()
    finally:
        r = op.post(f"/api/runs/{run_id}/stop")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "stopped" and body["ended_at"] is not None
    assert body["processes"] and all(s.startswith("exited") for s in body["processes"].values())
    assert store.get_run(run_id).status == "stopped"  # written by the actor as it stopped
    assert store.list_episodes(status="recording") == []


def test_a_run_whose_actor_died_is_reported_failed_then_stopped(
    app: FastAPI, users: dict[str, Actor], store: Store, create: Callable[[], int],
) -> None:
    op = users["operator"]
    run_id = create()
    assert op.post(f"/api/runs/{run_id}/start").status_code == 200
    try:
        wait_for(lambda: op.get(f"/api/runs/{run_id}").json()["status"] == "running", 30,
                 "the actor to mark the run running")
        psutil.Process(actor_pid(app, run_id)).send_signal(signal.SIGKILL)
        body = wait_for(lambda: (b := op.get(f"/api/runs/{run_id}").json())["status"]
                        != "running" and b, 10, "the dead actor to show")
        assert body["status"] == "failed"
        assert body["processes"]["actor"] == f"exited({-signal.SIGKILL})"
        listed = {r["id"]: r for r in op.get("/api/runs").json()}
        assert listed[run_id]["status"] == "failed"
        # The killed actor never ended its row; the database still says so until stop.
        assert store.get_run(run_id).status == "running"
    finally:
        r = op.post(f"/api/runs/{run_id}/stop")
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    assert store.get_run(run_id).status == "stopped"


def test_stop_of_a_run_not_started_here_is_refused(
    users: dict[str, Actor], create: Callable[[], int],
) -> None:
    op = users["operator"]
    run_id = create()
    r = op.post(f"/api/runs/{run_id}/stop")
    assert r.status_code == 409 and "not started by this service" in r.json()["detail"]
    assert op.get(f"/api/runs/{run_id}").json()["status"] == "created"


def test_start_while_another_process_holds_the_robot_is_409_and_spawns_nothing(
    app: FastAPI, config: RunConfig, users: dict[str, Actor], store: Store,
    create: Callable[[], int],
) -> None:
    op = users["operator"]
    run_id = create()
    # What `robolearn up` of the same arm holds while it runs.
    other = describe_owner("night_shift", run_id=77)
    # Earlier tests in this process may have left helpers (a multiprocessing tracker).
    before = {c.pid for c in psutil.Process().children()}
    with RobotLock.acquire(config.robot.command_address, other):
        r = op.post(f"/api/runs/{run_id}/start")
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert "run 77 ('night_shift')" in detail and f"pid {os.getpid()}" in detail
        assert "stop that run first" in detail
        body = op.get(f"/api/runs/{run_id}").json()
        assert body["status"] == "created" and body["processes"] == {}
        assert {c.pid for c in psutil.Process().children()} - before == set()
    assert store.get_run(run_id).status == "created"


def test_service_start_marks_runs_of_dead_owners_died_and_removes_their_configs(
    config: RunConfig, tmp_path: Path,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone_owner = LockOwner(pid=gone.pid, host=socket.gethostname(),
                           process_started_at=process_started_at(gone.pid), run_name="x")
    gone.kill()
    gone.wait()
    run_files = config.data_dir / "run"
    with Store.open(config.data_dir) as store:
        dead = create_owned_run(store, "killed", {}, "sim", gone_owner)
        store.mark_running(dead)  # what its actor did before everything was SIGKILLed
        alive = create_owned_run(store, "alive", {}, "sim", describe_owner("alive"))
        orphan = store.create_run("standalone actor", {})  # no owner: not judged
    run_files.mkdir(parents=True, exist_ok=True)
    stale = run_files / f"config-{gone.pid}-killed-abc.yaml"
    stale.write_text("name: killed\n")
    live = run_files / f"config-{os.getpid()}-alive-def.yaml"
    live.write_text("name: alive\n")

    app = create_app(config, token_secret=SECRET)
    try:
        with TestClient(app):
            store = app.state.services.store
            add_user(store, "viewer", "viewer")
            viewer = login(app, "viewer")
            runs = {r["id"]: r for r in viewer.get("/api/runs").json()}
    finally:
        app.state.services.close()
    assert runs[dead]["status"] == "died" and runs[dead]["ended_at"] is not None
    assert f"pid {gone.pid}" in runs[dead]["end_reason"]
    assert runs[alive]["status"] == "started" and runs[orphan]["status"] == "running"
    assert not stale.exists() and live.exists()


def test_a_run_started_by_robolearn_up_shows_its_owner_and_lives_while_it_does(
    users: dict[str, Actor], store: Store,
) -> None:
    owner_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = LockOwner(pid=owner_process.pid, host=socket.gethostname(),
                          process_started_at=process_started_at(owner_process.pid),
                          run_name="night_shift")
        run_id = create_owned_run(store, "night_shift", {}, "sim", owner)
        store.mark_running(run_id)  # what its actor does once it runs
        viewer = users["viewer"]
        row = {r["id"]: r for r in viewer.get("/api/runs").json()}[run_id]
        assert row["live"] is True and row["processes"] == {}
        assert row["started_by"] == (f"robolearn up (pid {owner_process.pid} on "
                                     f"{socket.gethostname()})")
        # Not this service's to stop: Ctrl-C where it was started.
        r = users["operator"].post(f"/api/runs/{run_id}/stop")
        assert r.status_code == 409 and "robolearn up" in r.json()["detail"]
    finally:
        owner_process.kill()
        owner_process.wait()
    row = viewer.get(f"/api/runs/{run_id}").json()
    assert row["live"] is False and row["status"] == "running"  # the row, as last written
