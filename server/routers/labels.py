"""Success/failure frame labels on episodes (the success classifier trains on them)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from robolearn.store.models import Label
from server import schemas
from server.deps import CurrentOperator, CurrentUser, DbSession, EpisodeOr404, Id, audit

log = logging.getLogger(__name__)

router = APIRouter(tags=["labels"])


@router.get("/api/episodes/{episode_id}/labels")
def list_labels(_user: CurrentUser, episode: EpisodeOr404,
                db: DbSession) -> list[schemas.LabelPublic]:
    """Labels of one episode, by frame."""
    rows = db.scalars(select(Label).where(Label.episode_id == episode.id)
                      .order_by(Label.step_index, Label.id))
    return [schemas.LabelPublic.model_validate(r) for r in rows]


@router.post("/api/episodes/{episode_id}/labels", status_code=status.HTTP_201_CREATED)
def add_label(user: CurrentOperator, episode: EpisodeOr404, body: schemas.LabelCreate,
              db: DbSession) -> schemas.LabelPublic:
    """Mark one frame (optionally one camera) of a complete episode as success or failure."""
    if episode.status != "complete":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"episode {episode.id} is {episode.status}: only complete episodes "
                            "can be labelled")
    if body.step_index > episode.num_steps:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"episode {episode.id}: frame {body.step_index} does not exist; "
                            f"frames are 0..{episode.num_steps}")
    if body.camera is not None and body.camera not in episode.cameras:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"episode {episode.id}: no camera {body.camera!r}; it has "
                            f"{list(episode.cameras)}")
    label = Label(episode_id=episode.id, step_index=body.step_index, camera=body.camera,
                  label=body.label, user_id=user.id)
    db.add(label)
    db.flush()
    audit(db, user, "label.add", f"episode:{episode.id}",
          {"label_id": label.id, "step_index": body.step_index, "camera": body.camera,
           "label": body.label})
    db.commit()
    return schemas.LabelPublic.model_validate(label)


@router.delete("/api/labels/{label_id}")
def remove_label(label_id: Id, user: CurrentOperator, db: DbSession) -> schemas.LabelPublic:
    """Remove one label; the audit log keeps what it was."""
    label = db.get(Label, label_id)
    if label is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"label {label_id}: no such label")
    removed = schemas.LabelPublic.model_validate(label)
    audit(db, user, "label.remove", f"episode:{label.episode_id}",
          removed.model_dump(mode="json"))
    db.delete(label)
    db.commit()
    return removed
