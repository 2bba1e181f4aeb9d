"""Reward model rows: register one before training with the next version of its kind, mark
it ready or failed, and find models by kind, run and status.

Functions take an ORM session; writers flush and leave committing to the caller. The model
files themselves are written by `robolearn.rewards.records`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from robolearn.store.models import RewardModel

MODELS_DIRNAME = "reward_models"


def add_model(session: Session, kind: str, run_id: int | None) -> RewardModel:
    """Insert a "training" row with the next version of `kind` (flushed, not committed);
    its file path is `reward_models/<kind>_v<version>.pt` under the data directory."""
    version = (session.scalar(
        select(func.max(RewardModel.version)).where(RewardModel.kind == kind)
    ) or 0) + 1
    row = RewardModel(run_id=run_id, kind=kind, version=version,
                      path=f"{MODELS_DIRNAME}/{kind}_v{version}.pt", status="training",
                      metrics={}, error="")
    session.add(row)
    session.flush()
    return row


def finish_model(session: Session, model_id: int, status: str, *,
                 metrics: dict[str, Any] | None = None, error: str = "") -> None:
    """Mark a row "ready" (with its metrics) or "failed" (with the error text); not committed."""
    values: dict[str, Any] = {"status": status, "error": error}
    if metrics is not None:
        values["metrics"] = metrics
    session.execute(update(RewardModel).where(RewardModel.id == model_id).values(**values))


def get_model(session: Session, model_id: int) -> RewardModel | None:
    return session.get(RewardModel, model_id)


def list_models(session: Session, *, kind: str | None = None, run_id: int | None = None,
                status: str | None = None, newest_first: bool = False) -> list[RewardModel]:
    """Models matching every filter given (None: any), by id."""
    query = select(RewardModel).order_by(RewardModel.id.desc() if newest_first
                                         else RewardModel.id)
    if kind is not None:
        query = query.where(RewardModel.kind == kind)
    if run_id is not None:
        query = query.where(RewardModel.run_id == run_id)
    if status is not None:
        query = query.where(RewardModel.status == status)
    return list(session.scalars(query))


def latest_ready(session: Session, kind: str, run_id: int | None = None) -> RewardModel | None:
    """The ready model of `kind` with the highest version (of `run_id` when given)."""
    query = (select(RewardModel).where(RewardModel.kind == kind, RewardModel.status == "ready")
             .order_by(RewardModel.version.desc()).limit(1))
    if run_id is not None:
        query = query.where(RewardModel.run_id == run_id)
    return session.scalars(query).first()


def ready_versions(session: Session, kind: str, run_id: int) -> list[RewardModel]:
    """A run's ready models of `kind`, oldest version first."""
    return list(session.scalars(select(RewardModel).where(
        RewardModel.kind == kind, RewardModel.run_id == run_id,
        RewardModel.status == "ready").order_by(RewardModel.version)))
