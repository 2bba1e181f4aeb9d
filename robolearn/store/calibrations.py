"""Calibration rows: the newest version of a (kind, device) pair, and adding the next one.

Functions take an ORM session and leave committing to the caller; the result files are
written by `calibration/results.py`, which also retries when another process takes the
same version number first (the unique constraint refuses the second row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robolearn.store.models import Calibration


def latest_version(session: Session, kind: str, device: str) -> int:
    """The highest stored version of (kind, device); 0 when there is none."""
    return session.scalar(select(func.max(Calibration.version)).where(
        Calibration.kind == kind, Calibration.device == device)) or 0


def add_calibration(session: Session, kind: str, device: str, version: int,
                    data: dict[str, Any], path: Path | None) -> Calibration:
    """Add a row (not flushed, not committed)."""
    row = Calibration(kind=kind, device=device, version=version, data=data,
                      path=None if path is None else str(path))
    session.add(row)
    return row


def latest_calibration(session: Session, kind: str, device: str) -> Calibration | None:
    """The newest version of (kind, device), or None."""
    return session.scalars(select(Calibration).where(
        Calibration.kind == kind, Calibration.device == device
    ).order_by(Calibration.version.desc()).limit(1)).first()


def get_calibration(session: Session, calibration_id: int) -> Calibration | None:
    return session.get(Calibration, calibration_id)


def list_calibrations(session: Session, kinds: tuple[str, ...], *, kind: str | None = None,
                      device: str | None = None) -> list[Calibration]:
    """Rows of `kinds` (and `kind`, `device` when given) by kind, device, newest version
    first."""
    query = select(Calibration).where(Calibration.kind.in_(list(kinds))).order_by(
        Calibration.kind, Calibration.device, Calibration.version.desc())
    if kind is not None:
        query = query.where(Calibration.kind == kind)
    if device is not None:
        query = query.where(Calibration.device == device)
    return list(session.scalars(query))
