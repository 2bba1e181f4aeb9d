"""Success/failure frame labels: add and remove them, read an episode's labels, and gather
the labelled frames of complete episodes that the success classifier trains on.

Functions take an ORM session; writers flush and leave committing to the caller, so a label
commits together with its audit entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robolearn.store.models import Episode, Label


class LabelledFrame(NamedTuple):
    """One label of a complete episode, with what the classifier's selection needs."""

    episode_id: int
    step_index: int
    label: str
    num_steps: int
    camera: str | None


def list_labels(session: Session, episode_id: int) -> list[Label]:
    """An episode's labels by frame, then by age."""
    return list(session.scalars(select(Label).where(Label.episode_id == episode_id)
                                .order_by(Label.step_index, Label.id)))


def count_labels(session: Session, episode_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Label)
                          .where(Label.episode_id == episode_id))


def frames_by_class(session: Session, episode_id: int) -> dict[str, set[int]]:
    """Frames of an episode that already carry each class (any camera)."""
    out: dict[str, set[int]] = {"success": set(), "failure": set()}
    for step, value in session.execute(select(Label.step_index, Label.label)
                                       .where(Label.episode_id == episode_id)):
        out.setdefault(value, set()).add(step)
    return out


def add_labels(session: Session, episode_id: int, frames: Iterable[int], label: str, *,
               camera: str | None = None, user_id: int | None = None) -> list[Label]:
    """Label each of `frames` with `label` (flushed: ids exist; not committed).

    The caller has checked the episode is complete, the frames exist and do not carry the
    other class.
    """
    rows = [Label(episode_id=episode_id, step_index=frame, camera=camera, label=label,
                  user_id=user_id) for frame in frames]
    session.add_all(rows)
    session.flush()
    return rows


def get_label(session: Session, label_id: int) -> Label | None:
    return session.get(Label, label_id)


def remove_label(session: Session, label: Label) -> None:
    """Delete a label (not committed)."""
    session.delete(label)


def labelled_frames(session: Session, *, run_id: int | None = None, task: str | None = None,
                    episode_ids: Iterable[int] | None = None) -> list[LabelledFrame]:
    """Every label on complete episodes matching `run_id`, `task` and `episode_ids`
    (None: any), in episode then label order."""
    query = (select(Label.episode_id, Label.step_index, Label.label, Episode.num_steps,
                    Label.camera)
             .join(Episode, Episode.id == Label.episode_id)
             .where(Episode.status == "complete"))
    if run_id is not None:
        query = query.where(Episode.run_id == run_id)
    if task is not None:
        query = query.where(Episode.task == task)
    if episode_ids is not None:
        query = query.where(Episode.id.in_(list(episode_ids)))
    query = query.order_by(Label.episode_id, Label.id)
    return [LabelledFrame(*row) for row in session.execute(query)]


def labelled_episode_ids(session: Session) -> set[int]:
    """Ids of the episodes that carry at least one label."""
    return set(session.scalars(select(Label.episode_id).distinct()))


def every_label(session: Session) -> list[Label]:
    """Every label of every episode, oldest first."""
    return list(session.scalars(select(Label).order_by(Label.id)))
