"""Playback: replay logged episodes in simulation and compare the replay with the log.

Operators know this as "replay in sim" (the `robolearn replay` command, the UI's button and
the REST routes keep that name); in the code "replay" alone means the learner's replay
buffer (`robolearn.learn.replay`), so this package is called playback.

from robolearn.playback import replay_episode, replay_comparison
with Store.open(data_dir) as store:
    report = replay_episode(store, 12, mode="joints")
    chart = replay_comparison(store, report.replay_episode_id)
"""

from robolearn.playback.backend import MujocoBackend, ReplayBackend, SimObservation
from robolearn.playback.compare import (
    ReplayComparison,
    list_replays,
    replay_comparison,
    tracking_errors,
)
from robolearn.playback.runner import (
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
