"""Replay in sim: replay a logged episode in the MuJoCo sim in the background, list an
episode's replays, and serve one replay against its source (videos side by side and the
per-step end-effector tracking error).

A replay is stored as its own episode (linked by `source_episode_id`), so its videos and
step scalars are served by the episodes routes; its id is the replay episode's id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from robolearn.playback import list_replays, replay_comparison
from robolearn.playback.compare import REPLAY_POLICY_PREFIX
from robolearn.server import schemas
from robolearn.server.deps import (
    CurrentOperator,
    CurrentUser,
    DbSession,
    EpisodeOr404,
    Id,
    ServicesDep,
    audit,
)
from robolearn.server.jobs import JobState
from robolearn.server.playback import preflight, run_replay
from robolearn.server.routers.episodes import video_url
from robolearn.store import episodes

log = logging.getLogger(__name__)

router = APIRouter(tags=["replays"])

# Job kinds are "replay:<episode id>": one replay per episode at a time, several episodes
# may queue (the job board runs them one after another).
REPLAY_JOB = "replay"
# The job board's "is one active?" and "submit" are two calls; two simultaneous requests
# for the same episode must not both pass the check.
_start_lock = threading.Lock()


def _job_kind(episode_id: int) -> str:
    return f"{REPLAY_JOB}:{episode_id}"


def _job(state: JobState) -> schemas.JobPublic:
    return schemas.JobPublic(job=state.id, status=state.status, detail=state.detail,
                             result=state.result)


@router.post("/api/episodes/{episode_id}/replays", status_code=status.HTTP_202_ACCEPTED,
             responses={400: {"model": schemas.Message}, 404: {"model": schemas.Message},
                        409: {"model": schemas.Message}})
def start_replay(user: CurrentOperator, episode: EpisodeOr404, body: schemas.ReplayStart,
                 services: ServicesDep, db: DbSession) -> schemas.JobPublic:
    """Replay the episode in the MuJoCo sim in the background and store the replay as a new
    episode; poll GET /api/replays/jobs/{job}, whose result names the replay's id."""
    config, episode_id, mode = services.config, episode.id, body.mode
    preflight(services.store, episode, mode)
    board = services.job_board

    def work(report: Callable[[str], None]) -> dict[str, Any]:
        return run_replay(config, episode_id, mode, report)

    with _start_lock:
        running = board.active(_job_kind(episode_id))
        if running is not None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"episode {episode_id} is already being replayed (job "
                                f"{running.id}, {running.status}); wait for it")
        state = board.submit(_job_kind(episode_id), work)
    audit(db, user, "replay.start", f"episode:{episode_id}", {"mode": mode, "job": state.id})
    db.commit()
    log.info("%s started a %s replay of episode %d (job %s)", user.username, mode, episode_id,
             state.id)
    return _job(state)


@router.get("/api/episodes/{episode_id}/replays")
def list_episode_replays(_user: CurrentUser, episode: EpisodeOr404,
                         services: ServicesDep) -> schemas.ReplayList:
    """The episode's stored replays, oldest first, and the replay job running for it now."""
    replays = [
        schemas.ReplayPublic(**schemas.EpisodePublic.model_validate(r).model_dump(),
                             mode=r.policy.removeprefix(REPLAY_POLICY_PREFIX))
        for r in list_replays(services.store, episode.id)
    ]
    running = services.job_board.active(_job_kind(episode.id))
    return schemas.ReplayList(episode_id=episode.id, replays=replays,
                              job=_job(running) if running is not None else None)


@router.get("/api/replays/jobs/{job_id}", responses={404: {"model": schemas.Message}})
def get_replay_job(job_id: Annotated[str, Path(max_length=64)], _user: CurrentUser,
                   services: ServicesDep) -> schemas.JobPublic:
    """Status of a replay job: queued, running ("step k/n"), done (result: the replay's id,
    mean/max tracking error, both outcomes) or failed with why."""
    state = services.job_board.get(job_id)
    if state is None or not state.kind.startswith(f"{REPLAY_JOB}:"):
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"replay job {job_id}: unknown (jobs are forgotten when the service "
                            "restarts; the stored replays are listed per episode)")
    return _job(state)


@router.get("/api/replays/{replay_id}",
            responses={404: {"model": schemas.Message}, 409: {"model": schemas.Message}})
def get_replay(replay_id: Id, _user: CurrentUser, db: DbSession,
               services: ServicesDep) -> schemas.ReplayComparisonPublic:
    """A replay against its source: both episodes' cameras and video URLs, both outcomes,
    and the end-effector tracking error per observation (metres) with its mean and max."""
    row = episodes.get_episode(db, replay_id)
    if row is None or row.source_episode_id is None or not row.policy.startswith(
            REPLAY_POLICY_PREFIX):
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"replay {replay_id}: no such replay (not an episode, or an episode "
                            "that replays nothing); list an episode's replays at "
                            "GET /api/episodes/{episode_id}/replays")
    comparison = replay_comparison(services.store, replay_id)
    source = episodes.get_episode(db, comparison.source_episode_id)
    return schemas.ReplayComparisonPublic(
        **comparison.model_dump(),
        fps=source.fps if source is not None else row.fps,
        source_video_urls={c: video_url(comparison.source_episode_id, c)
                           for c in comparison.source_cameras},
        replay_video_urls={c: video_url(replay_id, c) for c in comparison.replay_cameras},
    )
