"""Fixtures for store tests: each test gets a fresh data folder with a migrated SQLite file;
`any_store` also runs a test against PostgreSQL when ROBOLEARN_TEST_POSTGRES_URL names an
empty scratch database (`tools/with_postgres.sh` provides one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from robolearn.store import EpisodeWriter, Store, make_engine
from robolearn.store.models import Base

CAMERAS = ["wrist_cam", "front_cam"]
POSTGRES_URL = os.environ.get("ROBOLEARN_TEST_POSTGRES_URL", "")
NO_POSTGRES = ("ROBOLEARN_TEST_POSTGRES_URL is not set (point it at an empty scratch "
               "PostgreSQL database to run the PostgreSQL store tests)")


def empty_postgres() -> str:
    """The scratch PostgreSQL database with every robolearn table dropped."""
    pytest.importorskip("psycopg", reason="pip install 'robolearn[postgres]' (psycopg)")
    engine = make_engine(POSTGRES_URL)
    try:
        with engine.begin() as connection:
            Base.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on SQLite, then on PostgreSQL when one is provided."""
    url = None
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip(NO_POSTGRES)
        url = empty_postgres()
    with Store.open(tmp_path / "data", url) as opened:
        yield opened


@pytest.fixture
def run_id(store: Store) -> int:
    return store.create_run("pick_cube", {"task": "pick_cube", "lr": 1e-4}, kind="sim")


def observation(
    rng: np.random.Generator, cameras: list[str], size: tuple[int, int] = (84, 84)
) -> dict[str, np.ndarray]:
    return {c: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for c in cameras}


def record(
    writer: EpisodeWriter,
    steps: int,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (84, 84),
    outcome: str = "success",
) -> tuple[int, dict[str, np.ndarray]]:
    """Record `steps` random steps and finish; returns the id and the arrays expected back."""
    cameras = list(writer.cameras)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    proprio, action, reward, success, intervention, stamp = [], [], [], [], [], []
    for t in range(steps):
        obs = observation(rng, cameras, size)
        p = rng.normal(size=7).astype(np.float32)
        a = rng.uniform(-1, 1, size=4).astype(np.float32)
        r = float(rng.uniform())
        s = t == steps - 1
        i = bool(t % 3 == 1)
        writer.add_step(
            obs,
            p,
            a,
            r,
            s,
            intervention=i,
            stamp_ns=1_000_000 * t,
            scalars={"success_prob": r / 2, "q_value": -r, "latency_ms": 3.5},
        )
        for c in cameras:
            frames[c].append(obs[c])
        proprio.append(p)
        action.append(a)
        reward.append(r)
        success.append(s)
        intervention.append(i)
        stamp.append(1_000_000 * t)
    final_obs = observation(rng, cameras, size)
    final_p = rng.normal(size=7).astype(np.float32)
    episode_id = writer.finish(final_obs, final_p, outcome, end_reason="test")
    expected = {f"images_{c}": np.stack([*frames[c], final_obs[c]]) for c in cameras}
    expected.update(
        proprio=np.stack([*proprio, final_p]),
        action=np.stack(action),
        reward=np.array(reward, dtype=np.float32),
        success=np.array(success),
        intervention=np.array(intervention),
        stamp_ns=np.array(stamp, dtype=np.int64),
    )
    return episode_id, expected
