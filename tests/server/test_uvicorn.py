"""`robolearn serve` as a real process with real uvicorn: first-start admin password, login,
CSRF, bearer tokens, the rate limit, and a clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from sqlalchemy import select

from robolearn.server.auth import CSRF_HEADER
from robolearn.store import Store
from robolearn.store.models import AuditEntry
from tests.conftest import free_port, run_config_dict

CLI = [sys.executable, "-m", "robolearn.cli.main"]




def start(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*CLI, "--log-level", "warning", "serve", str(config)],
                            stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"serve exited early: {''.join(lines)}"
        lines.append(line)
        if "operator service for run" in line:
            break
    url = re.search(r"at (http://\S+)", lines[-1]).group(1)
    while time.monotonic() < deadline:  # printed just before uvicorn binds
        try:
            httpx.get(url + "/api/auth/me", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, "".join(lines)


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_serve_end_to_end(sock_dir: Path, tmp_path: Path) -> None:
    raw = run_config_dict(sock_dir, tmp_path / "data")
    raw["server"] = {"port": free_port(), "login_max_failures": 3}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "ROBOLEARN_SERVER_SECRET": "s" * 48}
    proc, out = start(config, env)
    try:
        password = re.search(r"one-time password (\S+)", out).group(1)
        url = re.search(r"at (http://\S+)", out).group(1)
        with httpx.Client(base_url=url, timeout=10) as browser:
            r = browser.post("/api/auth/login", json={"username": "admin", "password": password})
            assert r.status_code == 200, r.text
            csrf = r.json()["csrf_token"]
            assert browser.get("/api/auth/me").json()["role"] == "admin"
            # The printed password is good for this one login: replace it before anything.
            r = browser.get("/api/users")
            assert r.status_code == 403 and r.json()["code"] == "password_change_required"
            r = browser.post("/api/auth/password", headers={CSRF_HEADER: csrf},
                             json={"current_password": password,
                                   "new_password": "the admin's own password"})
            assert r.status_code == 200, r.text
            r = browser.post("/api/auth/login", json={"username": "admin",
                                                      "password": "the admin's own password"})
            csrf = r.json()["csrf_token"]
            new_user = {"username": "alice", "password": "a long password", "role": "operator"}
            assert browser.post("/api/users", json=new_user).status_code == 403
            assert browser.post("/api/users", json=new_user,
                                headers={CSRF_HEADER: csrf}).status_code == 201
            token = browser.post("/api/auth/tokens", json={},
                                 headers={CSRF_HEADER: csrf}).json()["token"]
            assert browser.post("/api/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 200
            assert browser.get("/api/auth/me").status_code == 401
        with httpx.Client(base_url=url, timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as script:
            assert script.get("/api/users").status_code == 200
        with httpx.Client(base_url=url, timeout=10) as guesser:
            codes = [guesser.post("/api/auth/login",
                                  json={"username": "alice", "password": f"guess-{i}"}).status_code
                     for i in range(5)]
            assert codes == [401, 401, 401, 429, 429]
            # uvicorn's own proxy-header handling is off: from loopback, a forged
            # X-Forwarded-For is neither a way around the limit nor the audited client.
            r = guesser.post("/api/auth/login", json={"username": "admin", "password": "x"},
                             headers={"X-Forwarded-For": "203.0.113.9"})
            assert r.status_code == 429  # this address is limited, whatever it claims
            spec = guesser.get("/openapi.json").json()
            assert spec["paths"]["/api/auth/login"]["post"]["operationId"] == "auth-login"
    finally:
        assert stop(proc) == 0
    with Store.open(tmp_path / "data") as store, store.session() as db:
        clients = {e.detail.get("client") for e in db.scalars(select(AuditEntry))
                   if e.action.startswith("auth.login")}
    assert clients == {"127.0.0.1"}
    # A second start finds the admin and prints no password.
    proc, out = start(config, env)
    try:
        assert "one-time password" not in out
    finally:
        assert stop(proc) == 0
