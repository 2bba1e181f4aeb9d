"""Episodes: filtered lists, detail, per-step scalars for charts, and the camera MP4s."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse

from robolearn.errors import StoreError
from robolearn.server import schemas
from robolearn.server.deps import CurrentUser, DbSession, EpisodeOr404, ServicesDep
from robolearn.server.media import file_response
from robolearn.server.remote_media import files_address, remote_video_response
from robolearn.store import episodes, labels
from robolearn.store.episodes import EpisodeFilter

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/episodes", tags=["episodes"])

MAX_PAGE = 500


def video_url(episode_id: int, camera: str) -> str:
    return f"/api/episodes/{episode_id}/video/{camera}"


@router.get("")
def list_episodes(
    _user: CurrentUser,
    db: DbSession,
    run_id: Annotated[int | None, Query(ge=1, le=schemas.INT64_MAX)] = None,
    task: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Literal["success", "failure", "timeout", "aborted"] | None = None,
    intervention: bool | None = None,
    direction: Annotated[str | None, Query(max_length=32)] = None,
    is_demo: bool | None = None,
    robot: Annotated[str | None, Query(max_length=64, description="A fleet robot's name.")
                     ] = None,
    episode_status: Annotated[
        Literal["recording", "complete", "incomplete", "aborted"] | None, Query(alias="status")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=schemas.INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> schemas.Page[schemas.EpisodePublic]:
    """Episodes matching every filter given, newest first."""
    where = EpisodeFilter(run_id=run_id, task=task, status=episode_status, outcome=outcome,
                          is_demo=is_demo, intervention=intervention, direction=direction,
                          robot=robot)
    total = episodes.count_episodes(db, where)
    rows = episodes.list_episodes(db, where, newest_first=True, offset=offset, limit=limit)
    return schemas.Page[schemas.EpisodePublic](
        items=[schemas.EpisodePublic.model_validate(r) for r in rows],
        total=total, offset=offset, limit=limit,
    )


@router.get("/{episode_id}")
def get_episode(_user: CurrentUser, episode: EpisodeOr404,
                db: DbSession) -> schemas.EpisodeDetail:
    """One episode with its video URLs (complete episodes only) and label count."""
    label_count = labels.count_labels(db, episode.id)
    urls = ({c: video_url(episode.id, c) for c in episode.cameras}
            if episode.status == "complete" else {})
    return schemas.EpisodeDetail(**schemas.EpisodePublic.model_validate(episode).model_dump(),
                                 video_urls=urls, labels=label_count)


@router.get("/{episode_id}/steps")
def get_steps(_user: CurrentUser, episode: EpisodeOr404, db: DbSession) -> schemas.StepScalars:
    """Per-step reward, success probability, Q-value, intervention and other scalars."""
    rows = episodes.list_steps(db, episode.id)
    names = sorted({name for r in rows for name in (r.scalars or {})})
    return schemas.StepScalars(
        episode_id=episode.id,
        index=[r.index for r in rows],
        reward=[r.reward for r in rows],
        success=[r.success for r in rows],
        success_prob=[r.success_prob for r in rows],
        q_value=[r.q_value for r in rows],
        intervention=[r.intervention for r in rows],
        stamp_ns=[r.stamp_ns for r in rows],
        scalars={n: [_number((r.scalars or {}).get(n)) for r in rows] for n in names},
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@router.get(
    "/{episode_id}/video/{camera}",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"content": {"video/mp4": {}}},
               404: {"model": schemas.Message}, 416: {"model": schemas.Message}},
)
def get_video(
    _user: CurrentUser,
    episode: EpisodeOr404,
    camera: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """One camera's H.264 MP4; honours a single `Range: bytes=...` so browsers can seek."""
    # In a run across hosts, a video recorded on a robot's PC is fetched from that PC.
    try:
        path = services.store.video_path(episode.id, camera)
    except StoreError as exc:
        record = services.store.get_episode(episode.id)
        if (record.status == "complete" and camera in record.cameras
                and files_address(services.config, record) is not None):
            return remote_video_response(services.config, record, camera, range_header)
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return file_response(path, range_header)
