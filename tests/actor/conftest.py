"""Actor tests: the sim driver in its own process, the actor in this one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zmq

from robolearn.actor.loop import Actor, ActorSummary
from robolearn.actor.policies import Policy
from robolearn.config import load_config
from robolearn.processes import ProcessGroup
from robolearn.store import EpisodeData, Store


@pytest.fixture
def driver(write_config):
    def start(**sections: object) -> tuple[ProcessGroup, Path]:
        path = write_config(**sections)
        group = ProcessGroup(load_config(path), log_level="warning")
        group.start_drivers()
        started.append(group)
        return group, path

    started: list[ProcessGroup] = []
    yield start
    for g in started:
        g.stop()


def run_actor(path: Path, episodes: int, policy: Policy | None = None
              ) -> tuple[ActorSummary, list[EpisodeData]]:
    """Run an in-process actor against the started driver; return what it stored."""
    cfg = load_config(path)
    ctx = zmq.Context()
    try:
        with Store.open(cfg.data_dir) as store:
            actor = Actor(cfg, ctx, store=store, policy=policy)
            try:
                summary = actor.run(threading.Event(), episodes=episodes)
            finally:
                actor.close()
            stored = [store.load_episode(e.episode_id) for e in summary.episodes]
    finally:
        ctx.term()
    return summary, stored
