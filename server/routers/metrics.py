"""Actor and learner metrics of a run, computed from what the store recorded: a summary,
the learner's periodic samples, and the per-episode learning curve."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from robolearn.server import schemas
from robolearn.server.deps import CurrentUser, DbSession, RunOr404
from robolearn.store import checkpoints, episodes
from robolearn.store.episodes import EpisodeFilter
from robolearn.store.learner_metrics import latest_demo_episodes, list_learner_metrics

router = APIRouter(prefix="/api/metrics", tags=["metrics"])

RECENT_EPISODES = 20
MAX_POINTS = 5000
# Evaluation episodes are stored with the policy name plus this suffix (the actor's
# eval_every); they are measured, not trained on.
EVAL_SUFFIX = "-eval"

AfterId = Annotated[int, Query(ge=0, le=schemas.INT64_MAX,
                               description="Only rows with a larger id (the paging cursor).")]
Limit = Annotated[int, Query(ge=1, le=MAX_POINTS)]


@router.get("/runs/{run_id}")
def run_metrics(_user: CurrentUser, run: RunOr404, db: DbSession) -> schemas.RunMetrics:
    """Episode counts, success rates, interventions, env steps and learner checkpoints."""
    of_run = EpisodeFilter(run_id=run.id)
    complete_of_run = EpisodeFilter(run_id=run.id, status="complete")
    outcomes = episodes.outcome_counts(db, complete_of_run)
    complete = sum(outcomes.values())
    successes = outcomes.get("success", 0)
    recent = episodes.recent_outcomes(
        db, EpisodeFilter(run_id=run.id, status="complete", is_demo=False), RECENT_EPISODES)
    latest = checkpoints.latest_checkpoint(db, run.id)
    return schemas.RunMetrics(
        run_id=run.id,
        episodes=episodes.count_episodes(db, of_run),
        complete=complete,
        successes=successes,
        success_rate=successes / complete if complete else None,
        demos=episodes.count_episodes(db, EpisodeFilter(run_id=run.id, is_demo=True)),
        interventions=episodes.count_episodes(db, EpisodeFilter(run_id=run.id,
                                                                intervention=True)),
        env_steps=episodes.sum_steps(db, complete_of_run),
        recent_success_rate=(sum(o == "success" for o in recent) / len(recent)
                             if recent else None),
        checkpoints=checkpoints.count_checkpoints(db, run.id),
        latest_checkpoint_update_steps=latest.update_steps if latest else None,
        latest_checkpoint_at=latest.created_at if latest else None,
        episodes_per_outcome={str(k): v for k, v in outcomes.items()},
        learner_demo_episodes=latest_demo_episodes(db, run.id),
        robots=[schemas.RobotMetrics(
            robot=s.robot, episodes=s.episodes, successes=s.successes,
            success_rate=s.success_rate, intervention_episodes=s.intervention_episodes,
            env_steps=s.env_steps, robot_hours=round(s.robot_hours, 6),
            interventions_per_robot_hour=s.interventions_per_robot_hour)
            for s in episodes.robot_summaries(db, run.id)],
    )


def _page_end(ids: list[int], limit: int) -> int | None:
    return ids[-1] if len(ids) == limit else None


@router.get("/runs/{run_id}/learner")
def learner_metrics(
    _user: CurrentUser,
    run: RunOr404,
    db: DbSession,
    after_id: AfterId = 0,
    since: Annotated[dt.datetime | None, Query(
        description="Only samples written at or after this time (naive means UTC).")] = None,
    until: Annotated[dt.datetime | None, Query(
        description="Only samples written at or before this time (naive means UTC).")] = None,
    limit: Limit = 1000,
) -> schemas.LearnerMetricsPage:
    """The learner's periodic samples for this run, oldest first: updates/s, buffer sizes,
    counters and losses."""
    since, until = _utc(since, "since"), _utc(until, "until")
    if since is not None and until is not None and since > until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"since ({since.isoformat()}) is after until ({until.isoformat()}); "
                            "swap them or leave one out")
    records = list_learner_metrics(db, run.id, after_id=after_id, since=since, until=until,
                                   limit=limit)
    items = [schemas.LearnerMetricsPoint(id=r.id, created_at=r.created_at, **vars(r.sample))
             for r in records]
    return schemas.LearnerMetricsPage(items=items,
                                      next_after_id=_page_end([r.id for r in records], limit))


def _utc(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """The bound in UTC (naive means UTC, like every time the service returns)."""
    if value is None:
        return None
    try:
        return (value.replace(tzinfo=dt.UTC) if value.tzinfo is None
                else value.astimezone(dt.UTC))
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"{name} {value.isoformat()} is out of range in UTC") from exc


@router.get("/runs/{run_id}/episodes")
def episode_curve(
    _user: CurrentUser,
    run: RunOr404,
    db: DbSession,
    after_id: AfterId = 0,
    limit: Limit = 1000,
) -> schemas.EpisodeCurve:
    """Complete episodes of this run in order with their return, success and the training
    environment steps so far: the learning curve."""
    complete = EpisodeFilter(run_id=run.id, status="complete")
    # Training steps of the episodes before this page, so pages join into one curve.
    steps_before = episodes.sum_steps(
        db, EpisodeFilter(run_id=run.id, status="complete", is_demo=False), up_to_id=after_id,
        excluding_policy_suffix=EVAL_SUFFIX)
    page = episodes.list_episodes(db, complete, after_id=after_id, limit=limit)
    # Sums over this page's episodes only (steps are indexed by episode).
    returns = episodes.returns_of(db, [e.id for e in page])
    items: list[schemas.EpisodePoint] = []
    env_steps = steps_before
    for episode in page:
        total = returns.get(episode.id, 0.0)
        is_eval = episode.policy.endswith(EVAL_SUFFIX)
        if not episode.is_demo and not is_eval:
            env_steps += episode.num_steps
        items.append(schemas.EpisodePoint(
            episode_id=episode.id, env_steps=env_steps, num_steps=episode.num_steps,
            episode_return=float(total), success=episode.outcome == "success",
            outcome=episode.outcome, is_eval=is_eval, is_demo=episode.is_demo,
            has_intervention=episode.has_intervention, finished_at=episode.finished_at,
        ))
    return schemas.EpisodeCurve(items=items,
                                next_after_id=_page_end([i.episode_id for i in items], limit))
