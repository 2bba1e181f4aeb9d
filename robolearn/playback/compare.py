"""How a replay compares with the episode it replays: per-step end-effector tracking error.

`replay_comparison` is what the operator service serves for an episode's "replay in sim"
view: the two episodes' ids and cameras (for the logged and replayed videos side by side)
and the tracking error per step (for the chart), all read back from the store.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.errors import ReplayError
from robolearn.store import EpisodeRecord, Store, episodes
from robolearn.store.episodes import EpisodeFilter
from robolearn.store.records import episode_record

log = logging.getLogger(__name__)

REPLAY_POLICY_PREFIX = "replay-"


def tracking_errors(logged_proprio: np.ndarray, replayed_proprio: np.ndarray) -> np.ndarray:
    """Euclidean end-effector position error per observation, metres, float64 [N].

    Both arrays are [N, P] proprio in the actor's layout (ee position first).

    Raises:
        ReplayError: the arrays do not have the same number of observations.
    """
    logged = np.asarray(logged_proprio, dtype=np.float64)
    replayed = np.asarray(replayed_proprio, dtype=np.float64)
    if logged.ndim != 2 or replayed.ndim != 2 or logged.shape[0] != replayed.shape[0]:
        raise ReplayError(f"tracking error: logged proprio {logged.shape} and replayed "
                          f"{replayed.shape} must both be [N, P] with the same N")
    return np.linalg.norm(replayed[:, :3] - logged[:, :3], axis=1)


class ReplayComparison(BaseModel):
    """A stored replay against its source episode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_episode_id: int = Field(description="The logged episode that was replayed.")
    replay_episode_id: int = Field(description="The replay, stored as its own episode.")
    mode: str = Field(description="'joints' or 'actions': what the replay followed.")
    source_cameras: list[str] = Field(description="Cameras of the logged episode's videos.")
    replay_cameras: list[str] = Field(description="Sim cameras of the replay's videos.")
    source_outcome: str | None = Field(description="Outcome of the logged episode.")
    replay_outcome: str | None = Field(description="Outcome of the replay in the sim.")
    tracking_error_m: list[float] = Field(
        description="End-effector position error per observation (index 0 = start), metres.")
    tracking_error_mean_m: float = Field(description="Mean of tracking_error_m, metres.")
    tracking_error_max_m: float = Field(description="Max of tracking_error_m, metres.")


def list_replays(store: Store, episode_id: int) -> list[EpisodeRecord]:
    """Complete replays of an episode, oldest first."""
    with store.session() as session:
        rows = episodes.list_episodes(session, EpisodeFilter(source_episode_id=episode_id,
                                                             status="complete"))
        return [episode_record(row) for row in rows]


def replay_comparison(store: Store, replay_episode_id: int) -> ReplayComparison:
    """Compare a stored replay with its source episode.

    Raises:
        ReplayError: the episode is not a replay (no source) or the two do not line up.
        StoreError: either episode is missing, not complete or its file is unreadable.
    """
    replay = store.load_episode(replay_episode_id)
    source_id = replay.record.source_episode_id
    if source_id is None or not replay.record.policy.startswith(REPLAY_POLICY_PREFIX):
        raise ReplayError(f"episode {replay_episode_id} is not a replay (policy "
                          f"{replay.record.policy!r}, source {source_id}); replay an episode "
                          "with `robolearn replay EPISODE`")
    source = store.load_episode(source_id)
    errors = tracking_errors(source.arrays["proprio"], replay.arrays["proprio"])
    return ReplayComparison(
        source_episode_id=source_id,
        replay_episode_id=replay_episode_id,
        mode=replay.record.policy.removeprefix(REPLAY_POLICY_PREFIX),
        source_cameras=list(source.record.cameras),
        replay_cameras=list(replay.record.cameras),
        source_outcome=source.record.outcome,
        replay_outcome=replay.record.outcome,
        tracking_error_m=[float(e) for e in errors],
        tracking_error_mean_m=float(errors.mean()),
        tracking_error_max_m=float(errors.max()),
    )
