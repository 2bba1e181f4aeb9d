"""Success/failure frame labels on episodes (the success classifier trains on them)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy.orm import Session

from robolearn.config.rewards import ClassifierConfig
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
from robolearn.store import labels
from robolearn.store.models import Episode

log = logging.getLogger(__name__)

router = APIRouter(tags=["labels"])


@router.get("/api/episodes/{episode_id}/labels")
def list_labels(_user: CurrentUser, episode: EpisodeOr404,
                db: DbSession) -> list[schemas.LabelPublic]:
    """Labels of one episode, by frame."""
    return [schemas.LabelPublic.model_validate(r) for r in labels.list_labels(db, episode.id)]


def _check_labellable(episode: Episode, frames: list[int]) -> None:
    if episode.status != "complete":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"episode {episode.id} is {episode.status}: only complete episodes "
                            "can be labelled")
    bad = sorted({f for f in frames if f > episode.num_steps})
    if bad:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"episode {episode.id}: frame {bad[0]} does not exist; "
                            f"frames are 0..{episode.num_steps}")


def _refuse_conflicts(episode: Episode, label: str, frames: list[int],
                      existing: dict[str, set[int]]) -> None:
    """A frame cannot be both a success and a failure: training would refuse the set."""
    other = "failure" if label == "success" else "success"
    clash = sorted(set(frames) & existing.get(other, set()))
    if clash:
        shown = ", ".join(map(str, clash[:10])) + (" …" if len(clash) > 10 else "")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"episode {episode.id}: frame(s) {shown} are labelled {other}; a frame cannot "
            f"also be {label}. Remove those {other} labels first, then label again")


@router.post("/api/episodes/{episode_id}/labels", status_code=status.HTTP_201_CREATED)
def add_label(user: CurrentOperator, episode: EpisodeOr404, body: schemas.LabelCreate,
              db: DbSession) -> schemas.LabelPublic:
    """Mark one frame (optionally one camera) of a complete episode as success or failure."""
    _check_labellable(episode, [body.step_index])
    _refuse_conflicts(episode, body.label, [body.step_index],
                      labels.frames_by_class(db, episode.id))
    if body.camera is not None and body.camera not in episode.cameras:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"episode {episode.id}: no camera {body.camera!r}; it has "
                            f"{list(episode.cameras)}")
    [label] = labels.add_labels(db, episode.id, [body.step_index], body.label,
                                camera=body.camera, user_id=user.id)
    audit(db, user, "label.add", f"episode:{episode.id}",
          {"label_id": label.id, "step_index": body.step_index, "camera": body.camera,
           "label": body.label})
    db.commit()
    return schemas.LabelPublic.model_validate(label)


@router.post("/api/episodes/{episode_id}/labels/frames", status_code=status.HTTP_201_CREATED,
             responses={409: {"model": schemas.Message}})
def add_frame_labels(user: CurrentOperator, episode: EpisodeOr404,
                     body: schemas.LabelFramesCreate, db: DbSession) -> list[schemas.LabelPublic]:
    """Label many frames (every camera) with one class, or the whole episode when `frames`
    is left out. Frames that already carry this class are skipped; a frame of the other
    class refuses the whole request (409, nothing stored). Returns the new labels."""
    frames = (list(range(episode.num_steps + 1)) if body.frames is None
              else sorted(set(body.frames)))
    _check_labellable(episode, frames)
    existing = labels.frames_by_class(db, episode.id)
    _refuse_conflicts(episode, body.label, frames, existing)
    new = [f for f in frames if f not in existing.get(body.label, set())]
    rows = labels.add_labels(db, episode.id, new, body.label, user_id=user.id)
    audit(db, user, "label.add_frames", f"episode:{episode.id}",
          {"label": body.label, "whole_episode": body.frames is None, "frames": new,
           "label_ids": [r.id for r in rows]})
    db.commit()
    return [schemas.LabelPublic.model_validate(r) for r in rows]


def count_labels(db: Session, cfg: ClassifierConfig, run_id: int | None) -> schemas.LabelCounts:
    """The labelled frames per class that `train_classifier` would gather for `run_id`
    (None: every run), with what to do when a class is missing."""
    classes: dict[tuple[int, int], set[str]] = {}
    num_steps: dict[int, int] = {}
    for episode_id, step, value, steps, _camera in labels.labelled_frames(
            db, run_id=run_id, task=cfg.task):
        classes.setdefault((episode_id, step), set()).add(value)
        num_steps[episode_id] = steps
    success = sum("success" in v for v in classes.values())
    failure = sum("failure" in v for v in classes.values())
    conflicts = sum(len(v) > 1 for v in classes.values())
    unmarked = cfg.unmarked == "failure"
    if unmarked:
        marked = {e: 0 for e in num_steps}
        for episode_id, _ in classes:
            marked[episode_id] += 1
        failure += sum(num_steps[e] + 1 - marked[e] for e in num_steps)
    missing = None
    if cfg.source == "labels":
        if success == 0 and failure == 0:
            missing = ("no labelled frames yet: on an episode's page hold L over the success "
                       "frames and F over the failure frames (or mark a failed episode as "
                       "failure), then train")
        elif failure == 0:
            missing = (f"{success} success and 0 failure frames: the classifier needs both "
                       "classes. Mark failure frames (hold F on an episode's page) or mark a "
                       "failed episode as failure, then train again")
        elif success == 0:
            missing = (f"0 success and {failure} failure frames: the classifier needs both "
                       "classes. Mark success frames (hold L while an episode shows the "
                       "success), then train again")
        elif conflicts:
            missing = (f"{conflicts} frame(s) are labelled both success and failure: remove "
                       "one label of each, then train")
    return schemas.LabelCounts(
        run_id=run_id, task=cfg.task, success=success, failure=failure,
        unmarked_as_failure=unmarked, episodes=len(num_steps), conflicts=conflicts,
        source=cfg.source, missing=missing)


@router.get("/api/labels/counts")
def label_counts(
    _user: CurrentUser, services: ServicesDep, db: DbSession,
    run_id: Annotated[int | None, Query(ge=1, le=schemas.INT64_MAX)] = None,
) -> schemas.LabelCounts:
    """Labelled frames per class in the classifier's training selection."""
    return count_labels(db, services.config.rewards.classifier, run_id)


@router.delete("/api/labels/{label_id}")
def remove_label(label_id: Id, user: CurrentOperator, db: DbSession) -> schemas.LabelPublic:
    """Remove one label; the audit log keeps what it was."""
    label = labels.get_label(db, label_id)
    if label is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"label {label_id}: no such label")
    removed = schemas.LabelPublic.model_validate(label)
    audit(db, user, "label.remove", f"episode:{label.episode_id}",
          removed.model_dump(mode="json"))
    labels.remove_label(db, label)
    db.commit()
    return removed
