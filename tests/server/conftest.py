"""Fixtures of the operator-service tests: an app on a fresh migrated SQLite store, a
controllable clock, accounts of every role and logged-in clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robolearn.config import RunConfig, parse_config
from robolearn.server.app import create_app
from robolearn.server.auth import CSRF_HEADER
from robolearn.server.users import create_user
from robolearn.store import Store
from robolearn.store.models import PreferenceQuery
from tests.conftest import run_config_dict

PASSWORD = "correct horse battery"
SECRET = b"test-secret-" + b"x" * 32


class FakeClock:
    """time.time stand-in that tests move forward explicitly."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def server_config(sock_dir: Path, data_dir: Path, **server: Any) -> RunConfig:
    raw = run_config_dict(sock_dir, data_dir)
    raw["server"] = {"development": True, **server}
    return parse_config(raw)


@pytest.fixture
def config(sock_dir: Path, tmp_path: Path) -> RunConfig:
    return server_config(sock_dir, tmp_path / "data")


@pytest.fixture
def app(config: RunConfig, clock: FakeClock) -> Iterator[FastAPI]:
    application = create_app(config, clock=clock, token_secret=SECRET)
    yield application
    application.state.services.close()  # idempotent: the lifespan may have closed it


def add_user(store: Store, username: str, role: str, password: str = PASSWORD) -> int:
    with store.session() as db:
        user = create_user(db, username, password, role)
        db.commit()
        return user.id


@dataclass
class Actor:
    """A logged-in TestClient plus the headers a browser would send on a mutation."""

    client: TestClient
    username: str
    role: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {CSRF_HEADER: self.csrf}

    def post(self, url: str, **kwargs: Any):
        return self.client.post(url, headers=self.headers, **kwargs)

    def patch(self, url: str, **kwargs: Any):
        return self.client.patch(url, headers=self.headers, **kwargs)

    def delete(self, url: str, **kwargs: Any):
        return self.client.delete(url, headers=self.headers, **kwargs)

    def get(self, url: str, **kwargs: Any):
        return self.client.get(url, **kwargs)


def login(app: FastAPI, username: str, password: str = PASSWORD) -> Actor:
    client = TestClient(app)
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    return Actor(client, username, body["user"]["role"], body["csrf_token"])


@pytest.fixture
def store(app: FastAPI) -> Store:
    return app.state.services.store


@pytest.fixture
def users(app: FastAPI, store: Store) -> Iterator[dict[str, Actor]]:
    """Logged-in clients for one user of each role (viewer, operator, admin)."""
    with TestClient(app):  # runs the lifespan, so the store closes at the end
        for role in ("viewer", "operator", "admin"):
            add_user(store, role, role)
        actors = {role: login(app, role) for role in ("viewer", "operator", "admin")}
        yield actors
        for actor in actors.values():
            actor.client.close()


CAMERAS = ("front", "wrist")


def record_episode(store: Store, run_id: int, *, steps: int = 6, outcome: str = "success",
                   intervention: bool = False, direction: str | None = None,
                   task: str = "reach", is_demo: bool = False,
                   robot: str | None = None) -> int:
    """Write a real episode (npz + H.264 MP4s + step rows) of small synthetic frames."""
    rng = np.random.default_rng(run_id * 1000 + steps)

    def frames() -> dict[str, np.ndarray]:
        return {c: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for c in CAMERAS}

    with store.begin_episode(run_id, task, list(CAMERAS), direction=direction,
                             is_demo=is_demo, robot=robot) as writer:
        for t in range(steps):
            writer.add_step(frames(), np.zeros(4, np.float32), np.zeros(4, np.float32),
                            reward=float(t), success=t == steps - 1,
                            intervention=intervention and t == 1,
                            scalars={"success_prob": t / steps, "q_value": 0.5 * t,
                                     "latency_ms": 3.0})
        return writer.finish(frames(), np.zeros(4, np.float32), outcome)


def add_query(store: Store, run_id: int, episode_a: int, episode_b: int) -> int:
    with store.session() as db:
        query = PreferenceQuery(run_id=run_id, episode_a_id=episode_a, episode_a_start=0,
                                episode_a_end=2, episode_b_id=episode_b, episode_b_start=1,
                                episode_b_end=3, status="pending")
        db.add(query)
        db.commit()
        return query.id
