"""Checkpoint rows of the learner: how many a run has and the newest one."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robolearn.store.models import Checkpoint


def count_checkpoints(session: Session, run_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Checkpoint)
                          .where(Checkpoint.run_id == run_id)) or 0


def latest_checkpoint(session: Session, run_id: int) -> Checkpoint | None:
    return session.scalars(select(Checkpoint).where(Checkpoint.run_id == run_id)
                           .order_by(Checkpoint.id.desc()).limit(1)).first()


def add_checkpoint(session: Session, run_id: int, path: str, *, env_steps: int,
                   update_steps: int, episodes: int) -> Checkpoint:
    """Record a written checkpoint file (`path` relative to the data directory when it is
    inside it); not committed."""
    row = Checkpoint(run_id=run_id, path=path, env_steps=env_steps, update_steps=update_steps,
                     episodes=episodes)
    session.add(row)
    return row
