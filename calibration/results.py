"""Versioned calibration results: one JSON file per version beside the database, and a row
in the calibrations table pointing at it. Versions only grow; nothing is overwritten."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from robolearn.errors import CalibrationError
from robolearn.store import Store, calibrations

log = logging.getLogger(__name__)

KINDS = ("intrinsics", "hand_eye", "workspace")
_DEVICE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
CALIBRATIONS_DIRNAME = "calibrations"


@dataclass(frozen=True)
class StoredCalibration:
    id: int
    kind: str
    device: str
    version: int
    data: dict[str, Any]
    path: Path


def _write_new(path: Path, text: str) -> bool:
    """Write `path` complete or not at all, never replacing an existing file (a hard link
    fails if the name is taken). Returns False when the name was taken."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def save_intrinsics(store: Store, camera: str, result: BaseModel,
                    board: BaseModel) -> StoredCalibration:
    """Store an intrinsics fit with the board its views are of (`board` in the data: a
    result says which printed board it came from). The CLI and the live session both
    store intrinsics through here."""
    return save_calibration(store, "intrinsics", camera, {
        **result.model_dump(mode="json"), "board": board.model_dump(mode="json")})


def save_calibration(store: Store, kind: str, device: str, result: BaseModel | dict[str, Any]
                     ) -> StoredCalibration:
    """Store a result as the next version for (kind, device): file first, then the row.

    Raises:
        CalibrationError: unknown kind or a device name unfit for a file name.
    """
    if kind not in KINDS:
        raise CalibrationError(f"calibration kind {kind!r} unknown; known: {list(KINDS)}")
    if not _DEVICE.match(device):
        raise CalibrationError(f"device name {device!r}: use letters, digits, _ and - only")
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else dict(result)
    folder = store.data_dir / CALIBRATIONS_DIRNAME / device
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(5):  # another process may take the same version number first
        with store.session() as session:
            version = calibrations.latest_version(session, kind, device) + 1
            path = folder / f"{kind}_v{version:03d}.json"
            text = json.dumps({"kind": kind, "device": device, "version": version,
                               "data": data}, indent=2)
            if not _write_new(path, text):
                continue
            row = calibrations.add_calibration(session, kind, device, version, data, path)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                path.unlink()  # ours, written just above: the row went to another process
                continue
            log.info("calibration %s of %s stored as version %d (%s)", kind, device, version,
                     path)
            return StoredCalibration(row.id, kind, device, version, data, path)
    raise CalibrationError(f"calibration {kind} of {device}: could not take a version number")


def latest_calibration(store: Store, kind: str, device: str) -> StoredCalibration | None:
    """The newest stored version, or None."""
    with store.session() as session:
        row = calibrations.latest_calibration(session, kind, device)
        if row is None:
            return None
        return StoredCalibration(row.id, row.kind, row.device, row.version, dict(row.data),
                                 Path(row.path or ""))
