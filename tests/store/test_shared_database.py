"""Stores of several hosts on one database (here two data directories naming one SQLite
file by URL): a host's recovery never closes an episode another host is recording, and the
recording host still recovers its own after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from robolearn.store import Store
from robolearn.store.recovery import RECOVERED_REASON

CAMERAS = ["front"]


def step(writer) -> None:
    writer.add_step({"front": np.zeros((8, 8, 3), np.uint8)}, np.zeros(4, np.float32),
                    np.zeros(4, np.float32), reward=0.0, success=False)


def test_another_hosts_recovery_leaves_a_live_recording_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Store.open(tmp_path / "left", url) as left:
        run = left.create_run("fleet", {})
        writer = left.begin_episode(run, "reach", CAMERAS, robot="left")
        step(writer)
        # The right host starts (its store recovers what it can judge) while left records.
        with Store.open(tmp_path / "right", url) as right:
            [row] = right.list_episodes(status="recording")
            assert row.id == writer.episode_id
        episode_id = writer.finish({"front": np.zeros((8, 8, 3), np.uint8)},
                                   np.zeros(4, np.float32), "success")
        assert left.get_episode(episode_id).status == "complete"
        assert not (tmp_path / "right" / "runs").exists() or not list(
            (tmp_path / "right" / "runs").rglob("*"))  # nothing made on the other host


def test_the_recording_host_still_recovers_its_own_dead_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    # A writer on the left host, SIGKILLed mid-episode.
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "left"), url],
                             stdout=subprocess.PIPE, text=True)
    try:
        episode_id = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with Store.open(tmp_path / "right", url) as right:
        assert right.get_episode(episode_id).status == "recording"  # not right's to judge
    with Store.open(tmp_path / "left", url) as left_again:
        record = left_again.get_episode(episode_id)
        assert (record.status, record.end_reason) == ("incomplete", RECOVERED_REASON)


WRITER = """
import sys, time
import numpy as np
from robolearn.store import Store
store = Store.open(sys.argv[1], sys.argv[2])
writer = store.begin_episode(store.create_run("fleet", {}), "reach", ["front"], robot="left")
writer.add_step({"front": np.zeros((8, 8, 3), np.uint8)}, np.zeros(4, np.float32),
                np.zeros(4, np.float32), reward=0.0, success=False)
print(writer.episode_id, flush=True)
time.sleep(60)
"""
