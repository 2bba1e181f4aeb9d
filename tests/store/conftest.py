"""Fixtures for store tests: each test gets a fresh data folder with a migrated SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robolearn.store import EpisodeWriter, Store

CAMERAS = ["wrist_cam", "front_cam"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
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
