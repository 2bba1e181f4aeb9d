"""`/ws/live` under real uvicorn: a watching viewer's socket is closed once its login no
longer holds (logout, deactivation, deletion, role change, a token revoked by a password
change), without waiting for it to reconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import delete
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from robolearn.server.app import create_app
from robolearn.server.auth import CSRF_HEADER, SESSION_COOKIE
from robolearn.store.models import AuditEntry, User
from tests.conftest import free_port
from tests.server.conftest import PASSWORD, SECRET, add_user, server_config


@dataclass
class Service:
    url: str
    app: object

    def login(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=10)
        r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        client.headers[CSRF_HEADER] = r.json()["csrf_token"]
        return client

    def ws(self, headers: dict[str, str]) -> ClientConnection:
        return connect(self.url.replace("http", "ws") + "/ws/live",
                       additional_headers=headers, open_timeout=10)


@pytest.fixture
def service(sock_dir: Path, tmp_path: Path) -> Iterator[Service]:
    app = create_app(server_config(sock_dir, tmp_path / "data"), token_secret=SECRET)
    store = app.state.services.store
    user_ids = {name: add_user(store, name, role) for name, role in
                (("viewer", "viewer"), ("admin", "admin"))}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    service = Service(f"http://127.0.0.1:{port}", app)
    service.user_ids = user_ids  # type: ignore[attr-defined]
    try:
        yield service
    finally:
        server.should_exit = True
        thread.join(30)


def closed_by_server(ws: ClientConnection) -> int:
    """The close code the server sent; fails if the socket is still open after a generous
    guard (no telemetry flows in these tests, so the only thing to receive is the close)."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=15)
    assert closed.value.rcvd is not None, "closed without a close frame from the server"
    return closed.value.rcvd.code


def admin_patch(service: Service, body: dict) -> None:
    admin = service.login("admin")
    uid = service.user_ids["viewer"]  # type: ignore[attr-defined]
    r = admin.patch(f"/api/users/{uid}", json=body)
    assert r.status_code == 200, r.text


def delete_viewer(service: Service) -> None:
    store = service.app.state.services.store
    uid = service.user_ids["viewer"]  # type: ignore[attr-defined]
    with store.session() as db:
        db.execute(delete(AuditEntry).where(AuditEntry.user_id == uid))
        db.execute(delete(User).where(User.id == uid))
        db.commit()


REVOCATIONS = {
    "logout": lambda service, viewer: viewer.post("/api/auth/logout").raise_for_status(),
    "deactivated": lambda service, viewer: admin_patch(service, {"active": False}),
    "role changed": lambda service, viewer: admin_patch(service, {"role": "operator"}),
    "deleted": lambda service, viewer: delete_viewer(service),
}


@pytest.mark.parametrize("how", list(REVOCATIONS))
def test_a_watching_session_is_closed_when_its_login_ends(service: Service, how: str) -> None:
    viewer = service.login("viewer")
    with service.ws({"Cookie": f"{SESSION_COOKIE}={viewer.cookies[SESSION_COOKIE]}"}) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)  # open and watching: checked again and again, still valid
        REVOCATIONS[how](service, viewer)
        assert closed_by_server(ws) == 1008


def test_a_watching_token_is_closed_when_the_password_changes(service: Service) -> None:
    viewer = service.login("viewer")
    token = viewer.post("/api/auth/tokens", json={}).json()["token"]
    with service.ws({"Authorization": f"Bearer {token}"}) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)
        r = viewer.post("/api/auth/password", json={"current_password": PASSWORD,
                                                    "new_password": "another long password"})
        assert r.status_code == 200, r.text
        assert closed_by_server(ws) == 1008
