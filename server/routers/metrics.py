"""Actor and learner metrics of a run, computed from what the store recorded."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from robolearn.store.models import Checkpoint, Episode
from server import schemas
from server.deps import CurrentUser, DbSession, RunOr404

router = APIRouter(prefix="/api/metrics", tags=["metrics"])

RECENT_EPISODES = 20


@router.get("/runs/{run_id}")
def run_metrics(_user: CurrentUser, run: RunOr404, db: DbSession) -> schemas.RunMetrics:
    """Episode counts, success rates, interventions, env steps and learner checkpoints."""
    of_run = Episode.run_id == run.id
    outcomes = dict(db.execute(
        select(Episode.outcome, func.count()).where(of_run, Episode.status == "complete")
        .group_by(Episode.outcome)
    ).all())
    complete = sum(outcomes.values())
    successes = outcomes.get("success", 0)
    recent = list(db.scalars(
        select(Episode.outcome).where(of_run, Episode.status == "complete",
                                      Episode.is_demo.is_(False))
        .order_by(Episode.id.desc()).limit(RECENT_EPISODES)
    ))
    latest = db.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id)
                        .order_by(Checkpoint.id.desc()).limit(1)).first()
    return schemas.RunMetrics(
        run_id=run.id,
        episodes=db.scalar(select(func.count()).select_from(Episode).where(of_run)),
        complete=complete,
        successes=successes,
        success_rate=successes / complete if complete else None,
        demos=db.scalar(select(func.count()).select_from(Episode)
                        .where(of_run, Episode.is_demo.is_(True))),
        interventions=db.scalar(select(func.count()).select_from(Episode)
                                .where(of_run, Episode.has_intervention.is_(True))),
        env_steps=db.scalar(select(func.coalesce(func.sum(Episode.num_steps), 0))
                            .where(of_run, Episode.status == "complete")),
        recent_success_rate=(sum(o == "success" for o in recent) / len(recent)
                             if recent else None),
        checkpoints=db.scalar(select(func.count()).select_from(Checkpoint)
                              .where(Checkpoint.run_id == run.id)),
        latest_checkpoint_update_steps=latest.update_steps if latest else None,
        latest_checkpoint_at=latest.created_at if latest else None,
        episodes_per_outcome={str(k): v for k, v in outcomes.items()},
    )
