"""Replay logged episodes in simulation and compare the replay with the log.

from robolearn.replay import replay_episode, replay_comparison
with Store.open(data_dir) as store:
    report = replay_episode(store, 12, mode="joints")
    chart = replay_comparison(store, report.replay_episode_id)
"""

from robolearn.replay.backend import MujocoBackend, ReplayBackend, SimObservation
from robolearn.replay.compare import (
    ReplayComparison,
    list_replays,
    replay_comparison,
    tracking_errors,
)
from robolearn.replay.runner import (
    BACKENDS,
    PolicyComparison,
    ReplayReport,
    make_backend,
    replay_episode,
)

__all__ = [
    "BACKENDS",
    "MujocoBackend",
    "PolicyComparison",
    "ReplayBackend",
    "ReplayComparison",
    "ReplayReport",
    "SimObservation",
    "list_replays",
    "make_backend",
    "replay_comparison",
    "replay_episode",
    "tracking_errors",
]
