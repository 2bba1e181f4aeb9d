"""A LeRobot import streams: it holds one episode's frames at a time, so its peak memory
does not grow with the number of episodes in the dataset (a reader that decoded every
video before writing would hold them all)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from robolearn.datasets import export_lerobot, import_lerobot
from robolearn.store import Store
from tests.playback.recording import record_sim_episode

IMAGE = (96, 128)  # frames large enough that they, not the bookkeeping, set the peak
STEPS = 30


def _dataset(root: Path, episodes: int) -> tuple[Path, int]:
    """A lossless export of `episodes` same-length reach episodes; returns its folder and
    the bytes of decoded frames one episode holds."""
    with Store.open(root / "source") as store:
        hold = np.array([0.0, 0.0, 0.0, 1.0], np.float32)  # never succeeds: full length
        ids = [record_sim_episode(store, "reach", seed=k, max_steps=STEPS, image_size=IMAGE,
                                  policy=lambda _b: hold)
               for k in range(episodes)]
        export_lerobot(store, ids, root / "dataset", lossless=True)
    frame = IMAGE[0] * IMAGE[1] * 3
    return root / "dataset", 2 * (STEPS + 1) * frame  # two cameras


def _import_peak(dataset: Path, target: Path) -> int:
    with Store.open(target) as store:
        tracemalloc.start()
        try:
            report = import_lerobot(store, dataset)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert report.episode_ids, "nothing was imported"
    return peak


@pytest.mark.timeout(600)
def test_import_peak_memory_does_not_grow_with_the_episodes(tmp_path: Path) -> None:
    small, per_episode = _dataset(tmp_path / "two", 2)
    large, _ = _dataset(tmp_path / "ten", 10)
    peak_small = _import_peak(small, tmp_path / "into_two")
    peak_large = _import_peak(large, tmp_path / "into_ten")
    # Eight more episodes would add 8 x per_episode bytes to a whole-dataset reader; the
    # streaming one may grow by its per-episode bookkeeping only.
    assert peak_large - peak_small < 2 * per_episode, (
        f"import peak grew from {peak_small / 2**20:.1f} MiB (2 episodes) to "
        f"{peak_large / 2**20:.1f} MiB (10); one episode's frames are "
        f"{per_episode / 2**20:.1f} MiB")
