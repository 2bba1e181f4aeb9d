"""Calibrations: the stored intrinsics, hand-eye and workspace results per device, every
version (read-only; `robolearn calibrate ...` writes them, and viewers may read them)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from robolearn.store.models import Calibration
from server import schemas
from server.deps import CurrentUser, DbSession, Id, ServicesDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/calibrations", tags=["calibrations"])

_VIEWS: dict[str, type[BaseModel]] = {
    "intrinsics": schemas.IntrinsicsView,
    "hand_eye": schemas.HandEyeView,
    "workspace": schemas.WorkspaceView,
}
Device = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


def _file(path: str | None, data_dir: Path) -> str | None:
    # Relative to the data directory: an absolute server path is no business of a viewer.
    if not path:
        return None
    p = Path(path)
    try:
        return str(p.resolve().relative_to(data_dir.resolve()))
    except ValueError:
        return p.name


def _public(row: Calibration, data_dir: Path) -> schemas.CalibrationPublic:
    data = dict(row.data or {})
    views: dict[str, BaseModel] = {}
    problem = None
    view = _VIEWS.get(row.kind)
    if view is None:
        problem = f"unknown calibration kind {row.kind!r}; known: {list(_VIEWS)}"
    else:
        try:
            views[row.kind] = view.model_validate(data)
        except ValidationError as exc:
            # A result written by another robolearn version: show what is there, say why.
            problem = (f"{row.kind} v{row.version} of {row.device}: stored data does not read "
                       f"as {row.kind} ({exc.error_count()} problems, first: "
                       f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']})")
            log.warning("%s", problem)
    return schemas.CalibrationPublic(
        id=row.id, kind=row.kind, device=row.device, version=row.version,
        created_at=row.created_at, file=_file(row.path, data_dir), problem=problem, data=data,
        **views,
    )


@router.get("")
def list_calibrations(
    _user: CurrentUser, db: DbSession, services: ServicesDep,
    kind: schemas.CalibrationKind | None = None,
    device: Device | None = None,
) -> list[schemas.CalibrationDevice]:
    """One entry per (kind, device), sorted by kind then device: the newest version in full
    and every version's id and date, newest first."""
    query = select(Calibration).where(Calibration.kind.in_(list(_VIEWS))).order_by(
        Calibration.kind, Calibration.device, Calibration.version.desc())
    if kind is not None:
        query = query.where(Calibration.kind == kind)
    if device is not None:
        query = query.where(Calibration.device == device)
    groups: dict[tuple[str, str], list[Calibration]] = {}
    for row in db.scalars(query):
        groups.setdefault((row.kind, row.device), []).append(row)
    data_dir = Path(services.config.data_dir)
    return [
        schemas.CalibrationDevice(
            kind=k, device=d, latest=_public(rows[0], data_dir),
            versions=[schemas.CalibrationVersion(id=r.id, version=r.version,
                                                 created_at=r.created_at) for r in rows],
        )
        for (k, d), rows in groups.items()
    ]


@router.get("/{calibration_id}", responses={404: {"model": schemas.Message}})
def get_calibration(calibration_id: Id, _user: CurrentUser, db: DbSession,
                    services: ServicesDep) -> schemas.CalibrationPublic:
    """One stored version, in full."""
    row = db.get(Calibration, calibration_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"calibration {calibration_id}: no such calibration; list them at "
                            "GET /api/calibrations")
    return _public(row, Path(services.config.data_dir))
