"""The operator service's own defences: runs only from allowed configs with safe overrides,
a request-size limit, security headers, proxy headers believed only from trusted proxies,
the forced change of the one-time admin password, and login and the e-stop on a full disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from robolearn.config import parse_config
from robolearn.processes import ProcessGroup
from robolearn.server.app import create_app
from robolearn.server.auth import CSRF_HEADER
from robolearn.server.users import ensure_first_admin
from robolearn.store import Store
from robolearn.store.models import AuditEntry, Run, User
from tests.conftest import run_config_dict
from tests.server.conftest import PASSWORD, SECRET, Actor, add_user, login, server_config


def allowed_config(directory: Path, sock_dir: Path, name: str = "sim_reach") -> Path:
    raw = run_config_dict(sock_dir, directory / "ignored-data",
                          actor={"episode_steps": 8, "policy": {"kind": "random"}})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def configs_app(sock_dir: Path, tmp_path: Path) -> Iterator[FastAPI]:
    allowed_config(tmp_path / "configs", sock_dir)
    (tmp_path / "configs" / "broken.yaml").write_text("robot: {kind: nope}\n")
    cfg = server_config(sock_dir, tmp_path / "data", allowed_configs=[str(tmp_path / "configs")])
    app = create_app(cfg, token_secret=SECRET)
    with TestClient(app):
        add_user(app.state.services.store, "op", "operator")
        yield app


def run_count(app: FastAPI) -> int:
    with app.state.services.store.session() as db:
        return db.scalar(select(func.count()).select_from(Run))


# -- runs from allowed configs --------------------------------------------------------------


def test_runs_are_created_only_from_allowed_configs_with_safe_overrides(
        configs_app: FastAPI, tmp_path: Path) -> None:
    op = login(configs_app, "op")
    listed = op.get("/api/runs/configs").json()
    by_id = {c["id"]: c for c in listed["configs"]}
    assert by_id["sim_reach"]["problem"] is None and by_id["sim_reach"]["task"] == "reach"
    assert by_id["broken"]["problem"]  # listed with why it cannot be used
    assert "actor.episodes" in listed["overridable"]

    r = op.post("/api/runs", json={"config": "sim_reach", "name": "morning",
                                   "overrides": {"actor.episodes": 3}})
    assert r.status_code == 201, r.text
    stored = r.json()["config"]
    assert stored["name"] == "morning" and stored["actor"]["episodes"] == 3
    # Recorded into the service's own store, whatever the file said.
    assert Path(stored["data_dir"]) == configs_app.state.services.config.data_dir
    assert run_count(configs_app) == 1


@pytest.mark.parametrize("overrides, word", [
    ({"security": {"allow_insecure_network": True}}, "security"),
    ({"security.allow_insecure_network": True}, "security"),
    ({"robot.command_address": "tcp://0.0.0.0:5552"}, "socket addresses"),
    ({"cameras.0.address": "tcp://0.0.0.0:6000"}, "socket addresses"),
    ({"actor.control_address": "tcp://0.0.0.0:5561"}, "socket addresses"),
    ({"actor.telemetry_address": "tcp://0.0.0.0:5560"}, "socket addresses"),
    ({"learner.transitions_address": "tcp://0.0.0.0:5570"}, "socket addresses"),
    ({"learner.weights_address": "tcp://0.0.0.0:5571"}, "socket addresses"),
    ({"server.host": "0.0.0.0"}, "service's own settings"),
    ({"server.port": 80}, "service's own settings"),
    ({"data_dir": "/etc"}, "data directory"),
    ({"database_url": "sqlite:////etc/x.db"}, "database"),
    ({"learner.checkpoint_dir": "/etc"}, "paths"),
    ({"actor.policy.checkpoint": "/etc/passwd"}, "paths"),
    ({"safety.max_step_m": 1.0}, "safety limits"),
])
def test_unsafe_overrides_are_422_and_create_nothing(
        configs_app: FastAPI, overrides: dict[str, Any], word: str) -> None:
    op = login(configs_app, "op")
    r = op.post("/api/runs", json={"config": "sim_reach", "overrides": overrides})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert word in detail and "Allowed overrides" in detail
    assert run_count(configs_app) == 0


def test_a_pasted_config_or_an_unknown_one_is_422_and_creates_nothing(
        configs_app: FastAPI, sock_dir: Path, tmp_path: Path) -> None:
    op = login(configs_app, "op")
    pasted = run_config_dict(sock_dir, tmp_path / "elsewhere")
    r = op.post("/api/runs", json={"config": pasted})
    assert r.status_code == 422 and "allowed config" in r.text
    r = op.post("/api/runs", json={"config": "not_there"})
    assert r.status_code == 422
    assert "not one this deployment allows" in r.json()["detail"]
    assert "sim_reach" in r.json()["detail"]
    r = op.post("/api/runs", json={"config": "broken"})
    assert r.status_code == 422 and "cannot be used" in r.json()["detail"]
    assert run_count(configs_app) == 0


def test_without_allowed_configs_no_run_can_be_created(app: FastAPI,
                                                       users: dict[str, Actor]) -> None:
    r = users["operator"].post("/api/runs", json={"config": "sim_reach"})
    assert r.status_code == 422 and "server.allowed_configs" in r.json()["detail"]
    assert run_count(app) == 0


# -- request size ---------------------------------------------------------------------------


def test_bodies_over_the_limit_are_413_declared_or_streamed(sock_dir: Path,
                                                            tmp_path: Path) -> None:
    cfg = server_config(sock_dir, tmp_path / "data", max_body_bytes=4096)
    app = create_app(cfg, token_secret=SECRET)
    with TestClient(app) as client:
        add_user(app.state.services.store, "op", "operator")
        big = {"username": "op", "password": "x" * 10_000}
        r = client.post("/api/auth/login", json=big)
        assert r.status_code == 413 and "server.max_body_bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
            yield b'{"username": "op", "password": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        r = client.post("/api/auth/login", content=chunks(),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert "content-security-policy" in r.headers
        with app.state.services.store.session() as db:  # the app never saw a login attempt
            assert db.scalar(select(func.count()).select_from(AuditEntry)) == 0
        # A body under the limit still works, chunked or not.
        r = client.post("/api/auth/login", content=iter([b'{"username": "op", ',
                                                         f'"password": "{PASSWORD}"}}'.encode()]),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text


# -- security headers -----------------------------------------------------------------------


def test_every_response_carries_the_security_headers(sock_dir: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>x</title>")
    cfg = server_config(sock_dir, tmp_path / "data", frontend_dir=str(dist))
    app = create_app(cfg, token_secret=SECRET)
    with TestClient(app) as client:
        for r in (client.get("/"), client.get("/api/auth/me"),  # page, 401
                  client.post("/api/auth/login", json={}),  # 422
                  client.get("/api/nothing-here")):
            csp = r.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-eval" not in csp
            assert "blob:" in csp  # live frames
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "same-origin"


# -- proxy headers ---------------------------------------------------------------------------


def test_rotating_x_forwarded_for_neither_bypasses_the_login_limit_nor_reaches_the_audit_log(
        app: FastAPI, store: Store) -> None:
    settings = app.state.services.config.server
    assert settings.trusted_proxies == ()
    with TestClient(app) as client:
        add_user(store, "alice", "operator")
        for i in range(settings.login_max_failures):
            r = client.post("/api/auth/login", json={"username": f"nobody{i}", "password": "x"},
                            headers={"X-Forwarded-For": f"203.0.113.{i}"})
            assert r.status_code == 401
        # Another claimed address and a real user name: still this peer, still limited.
        r = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                        headers={"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 429
        with store.session() as db:
            clients = {e.detail["client"] for e in db.scalars(select(AuditEntry))}
    assert clients == {"testclient"}  # the TCP peer of the test client


def test_x_forwarded_for_is_believed_from_a_trusted_proxy(sock_dir: Path,
                                                          tmp_path: Path) -> None:
    cfg = server_config(sock_dir, tmp_path / "data", trusted_proxies=["127.0.0.1"])
    app = create_app(cfg, token_secret=SECRET)
    # The test client's peer is "testclient"; a proxy on loopback is what is trusted.
    with TestClient(app, client=("127.0.0.1", 5000)) as client:
        add_user(app.state.services.store, "alice", "operator")
        r = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                        headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.7"})
        assert r.status_code == 200
        with app.state.services.store.session() as db:
            entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login")).one()
    # The right-most address the trusted proxy saw, not what the client claimed before it.
    assert entry.detail["client"] == "198.51.100.7"


def test_bad_trusted_proxy_is_a_config_error(sock_dir: Path, tmp_path: Path) -> None:
    from robolearn.errors import ConfigError

    with pytest.raises(ConfigError, match="not an IP address or CIDR"):
        server_config(sock_dir, tmp_path / "data", trusted_proxies=["proxy.local"])


# -- forced password change -----------------------------------------------------------------


def test_the_one_time_admin_password_must_be_changed_before_anything_else(
        app: FastAPI, store: Store) -> None:
    with TestClient(app):  # the lifespan keeps the store open
        with store.session() as db:
            password = ensure_first_admin(db)
        admin = login(app, "admin", password)
        me = admin.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["must_change_password"] is True
        for method, url, body in (("GET", "/api/users", None), ("GET", "/api/runs", None),
                                  ("POST", "/api/users", {"username": "bob", "password": PASSWORD,
                                                          "role": "admin"}),
                                  ("POST", "/api/auth/tokens", {})):
            r = admin.client.request(method, url, json=body, headers=admin.headers)
            assert r.status_code == 403, (url, r.text)
            assert r.json()["code"] == "password_change_required"
            assert "one-time password" in r.json()["detail"]
        with store.session() as db:
            assert db.scalar(select(func.count()).select_from(User)) == 1  # bob was not made

        r = admin.post("/api/auth/password", json={"current_password": password,
                                                   "new_password": password})
        assert r.status_code == 422  # the same password again does not count
        r = admin.post("/api/auth/password", json={"current_password": password,
                                                   "new_password": "a brand new password"})
        assert r.status_code == 200, r.text
        admin = login(app, "admin", "a brand new password")
        assert admin.get("/api/auth/me").json()["must_change_password"] is False
        assert admin.get("/api/users").status_code == 200


def test_logout_works_before_the_password_change(app: FastAPI, store: Store) -> None:
    with TestClient(app):  # the lifespan keeps the store open
        with store.session() as db:
            password = ensure_first_admin(db)
        admin = login(app, "admin", password)
        assert admin.post("/api/auth/logout").status_code == 200
        assert admin.get("/api/auth/me").status_code == 401


# -- a full data disk -----------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="rl-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
    for k in range(10_000):  # the last partial blocks
        try:
            (disk / f"crumb{k}").write_bytes(b"\0" * 512)
        except OSError:
            break


def test_login_and_estop_keep_working_on_a_full_data_disk(sock_dir: Path) -> None:
    with small_tmpfs("8m") as disk:
        raw = run_config_dict(sock_dir, disk / "data",
                              actor={"policy": {"kind": "random"}, "record": False})
        raw["server"] = {"development": True}
        cfg = parse_config(raw)
        app = create_app(cfg, token_secret=SECRET)
        group = ProcessGroup(cfg, log_level="warning")  # its config file is on the disk too
        try:
            group.start_drivers()  # no actor: the e-stop goes to the driver itself
            with TestClient(app):
                store = app.state.services.store
                add_user(store, "viewer", "viewer")
                with store.session() as db:
                    audit_rows = db.scalar(select(func.count()).select_from(AuditEntry))
                # A run that was up before the disk filled has its keys on that disk already.
                cfg.socket_security(cfg.robot.command_address, "service")
                fill(disk)

                viewer = login(app, "viewer")  # asserts 200
                r = viewer.client.post("/api/auth/login",
                                       json={"username": "viewer", "password": "wrong pass"})
                assert r.status_code == 401
                r = viewer.post("/api/control/estop", json={"reason": "disk full test"})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["estop_latched"] is True and body["via"] == "driver"
                assert "could not be written" in body["audit_error"]
                assert viewer.get("/api/auth/me").status_code == 200
                with store.session() as db:  # nothing was written, and nothing pretends so
                    assert db.scalar(select(func.count()).select_from(AuditEntry)) == audit_rows
        finally:
            group.stop()
            app.state.services.close()


def test_the_bootstrap_password_header_is_a_csrf_protected_mutation(app: FastAPI,
                                                                    store: Store) -> None:
    with TestClient(app):  # the lifespan keeps the store open
        with store.session() as db:
            password = ensure_first_admin(db)
        admin = login(app, "admin", password)
        r = admin.client.post("/api/auth/password", json={"current_password": password,
                                                          "new_password": "another new password"})
        assert r.status_code == 403 and CSRF_HEADER in r.json()["detail"]



def test_a_password_an_admin_reset_must_be_changed_at_the_next_login(
        users: dict[str, Actor], app: FastAPI, store: Store) -> None:
    with store.session() as db:
        op_id = db.scalar(select(User.id).where(User.username == "operator"))
    r = users["admin"].patch(f"/api/users/{op_id}", json={"password": "set by the admin"})
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    op = login(app, "operator", "set by the admin")
    assert op.get("/api/runs").json()["code"] == "password_change_required"
    assert op.post("/api/auth/password", json={"current_password": "set by the admin",
                                               "new_password": "only the operator knows"}
                   ).status_code == 200
    assert login(app, "operator", "only the operator knows").get("/api/runs").status_code == 200
