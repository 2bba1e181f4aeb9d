"""Reward models: list, status and metrics; train the success classifier in the background."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import select

from robolearn.store.models import RewardModel, Run
from server import schemas
from server.deps import CurrentOperator, CurrentUser, DbSession, Id, ServicesDep, audit
from server.jobs import JobState

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/reward-models", tags=["reward_models"])

CLASSIFIER_JOB = "train_classifier"


def _public(row: RewardModel) -> schemas.RewardModelPublic:
    return schemas.RewardModelPublic(id=row.id, run_id=row.run_id, kind=row.kind,
                                     version=row.version, status=row.status,
                                     metrics=row.metrics or {}, error=row.error or None,
                                     created_at=row.created_at)


def _job(state: JobState) -> schemas.JobPublic:
    return schemas.JobPublic(job=state.id, status=state.status, detail=state.detail,
                             result=state.result)


@router.get("")
def list_models(
    _user: CurrentUser, db: DbSession,
    kind: Literal["classifier", "preference", "clip"] | None = None,
    run_id: Annotated[int | None, Query(ge=1, le=schemas.INT64_MAX)] = None,
) -> list[schemas.RewardModelPublic]:
    """Every reward model, newest first, with its status and held-out metrics."""
    query = select(RewardModel).order_by(RewardModel.id.desc())
    if kind is not None:
        query = query.where(RewardModel.kind == kind)
    if run_id is not None:
        query = query.where(RewardModel.run_id == run_id)
    return [_public(r) for r in db.scalars(query)]


@router.get("/{model_id}")
def get_model(model_id: Id, _user: CurrentUser, db: DbSession) -> schemas.RewardModelPublic:
    """One reward model."""
    row = db.get(RewardModel, model_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"reward model {model_id}: no such model")
    return _public(row)


@router.post("/classifier/train", status_code=status.HTTP_202_ACCEPTED,
             responses={409: {"model": schemas.Message}})
def train_classifier(body: schemas.TrainClassifierRequest, user: CurrentOperator,
                     services: ServicesDep, db: DbSession) -> schemas.JobPublic:
    """Train the success classifier on the labelled frames, in the background; poll
    GET /api/reward-models/jobs/{job} and then list the models for its metrics."""
    if body.run_id is not None and db.get(Run, body.run_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {body.run_id}: no such run")
    board = services.job_board
    running = board.active(CLASSIFIER_JOB)
    if running is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"a classifier is already training (job {running.id}); wait for it")
    store, cfg, run_id = services.store, services.config.rewards.classifier, body.run_id

    def work(report: Callable[[str], None]) -> dict[str, Any]:
        # Imported here: torch and the encoder load only when someone trains.
        from robolearn.rewards.classifier import train_classifier as train

        result = train(store, cfg, run_id=run_id,
                       progress=lambda stage, done, total: report(f"{stage} {done}/{total}"))
        return result.model_dump(mode="json")

    state = board.submit(CLASSIFIER_JOB, work)
    audit(db, user, "reward_model.train", "classifier", {"run_id": run_id, "job": state.id})
    db.commit()
    return _job(state)


@router.get("/jobs/{job_id}")
def get_job(job_id: Annotated[str, Path(max_length=64)], _user: CurrentUser,
            services: ServicesDep) -> schemas.JobPublic:
    """Status of a training job (queued, running with progress, done, or failed with why)."""
    state = services.job_board.get(job_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"job {job_id}: unknown (jobs are forgotten when the service "
                            "restarts)")
    return _job(state)
