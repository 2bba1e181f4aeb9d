"""The `reward_models` rows: register a model before training, mark it ready or failed,
find the newest ready one. Files live under `<data_dir>/reward_models/`, written atomically
(temp file + rename) before the row says "ready"."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import torch

from robolearn.errors import RewardModelError, StoreError
from robolearn.store import Store, reward_models
from robolearn.store.models import RewardModel
from robolearn.store.reward_models import MODELS_DIRNAME

log = logging.getLogger(__name__)

__all__ = ["MODELS_DIRNAME", "RewardModelRecord", "begin_model", "finish_model", "latest_ready",
           "list_models", "load_payload", "save_atomic"]


@dataclasses.dataclass(frozen=True)
class RewardModelRecord:
    id: int
    run_id: int | None
    kind: str
    version: int
    path: str
    status: str
    metrics: dict[str, Any]
    error: str
    created_at: dt.datetime


def _record(row: RewardModel) -> RewardModelRecord:
    return RewardModelRecord(
        id=row.id, run_id=row.run_id, kind=row.kind, version=row.version, path=row.path,
        status=row.status, metrics=dict(row.metrics or {}), error=row.error or "",
        created_at=row.created_at,
    )


def begin_model(store: Store, kind: str, run_id: int | None) -> RewardModelRecord:
    """Insert a "training" row with the next version of `kind`; returns it.

    Raises:
        StoreError: unknown run or a database failure.
    """
    try:
        with store.session() as session, session.begin():
            return _record(reward_models.add_model(session, kind, run_id))
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(
            f"reward model {kind}: cannot register it in the database ({exc}); "
            f"is run {run_id} a real run and the database writable?"
        ) from exc


def finish_model(store: Store, model_id: int, status: str, *, metrics: dict | None = None,
                 error: str = "") -> None:
    """Mark a row "ready" (with its metrics) or "failed" (with the error text)."""
    with store.session() as session, session.begin():
        reward_models.finish_model(session, model_id, status, metrics=metrics, error=error)


def latest_ready(store: Store, kind: str, run_id: int | None = None) -> RewardModelRecord | None:
    """The newest ready model of `kind` (of `run_id` when given), or None."""
    with store.session() as session:
        row = reward_models.latest_ready(session, kind, run_id)
        return None if row is None else _record(row)


def list_models(store: Store, kind: str | None = None) -> list[RewardModelRecord]:
    with store.session() as session:
        return [_record(r) for r in reward_models.list_models(session, kind=kind)]


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to `path` through a fsynced temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    try:
        with open(temp, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def load_payload(path: Path, kind: str) -> dict[str, Any]:
    """Read a reward model file written by `save_atomic`.

    Raises:
        RewardModelError: missing, corrupt, or a file of another kind.
    """
    if not path.is_file():
        raise RewardModelError(f"{kind} model file {path} does not exist; train one with "
                               f"`robolearn reward train-classifier` / `robolearn prefs train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a broken file
        raise RewardModelError(f"{kind} model file {path} is corrupt ({exc}); retrain it") from exc
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        seen = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise RewardModelError(f"{path} is not a {kind} model (it holds {seen!r})")
    return payload
