"""Calibrations: the stored intrinsics, hand-eye and workspace results per device, every
version (`robolearn calibrate ...` writes them, and viewers may read them), and a live
intrinsics calibration of a running camera (`/live/...`): the newest frame with the ChArUco
corners found in it, views captured by an operator, the board they are of (the default
`CharucoBoardConfig()` until an operator sets the lab's own), and a solve stored as the next
version.

The live routes run calibration/'s own session (calibration.session), the one code path the
CLI also uses for detection, the fit and the storage: the service depends on calibration/
here, and only here.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from pathlib import Path
from typing import Annotated

import zmq
from fastapi import APIRouter, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ValidationError

from robolearn.actor.live import encode_jpeg
from robolearn.calibration.session import MIN_CORNERS, MIN_VIEWS, IntrinsicsSession
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.errors import CalibrationError, StaleFrame
from robolearn.server import calibration_schemas as live_schemas
from robolearn.server import schemas
from robolearn.server.deps import CurrentOperator, CurrentUser, DbSession, Id, ServicesDep, audit
from robolearn.server.services import Services
from robolearn.store import calibrations
from robolearn.store.models import Calibration

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/calibrations", tags=["calibrations"])

_VIEWS: dict[str, type[BaseModel]] = {
    "intrinsics": schemas.IntrinsicsView,
    "hand_eye": schemas.HandEyeView,
    "workspace": schemas.WorkspaceView,
}
Device = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
_SESSIONS_KEY = "calibration_sessions"
_JPEG_QUALITY = 85


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
    groups: dict[tuple[str, str], list[Calibration]] = {}
    for row in calibrations.list_calibrations(db, tuple(_VIEWS), kind=kind, device=device):
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
    row = calibrations.get_calibration(db, calibration_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"calibration {calibration_id}: no such calibration; list them at "
                            "GET /api/calibrations")
    return _public(row, Path(services.config.data_dir))


# -- live intrinsics calibration ------------------------------------------------------------
class LiveSessions:
    """One IntrinsicsSession per camera of the run, opened on first use, closed with the
    app (Services.close closes every extra)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._sessions: dict[str, IntrinsicsSession] = {}
        self._lock = threading.Lock()

    def get(self, camera: str) -> IntrinsicsSession:
        cams = [c.name for c in self._services.config.cameras]
        if camera not in cams:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"camera {camera!r}: not in this run's config; cameras: {cams}")
        with self._lock:
            session = self._sessions.get(camera)
            if session is None:
                session = self._sessions[camera] = IntrinsicsSession(
                    self._services.config, zmq.Context.instance(), camera,
                    identity="service")
            return session

    def view_count(self, camera: str) -> int:
        with self._lock:
            session = self._sessions.get(camera)
        return 0 if session is None else len(session.views)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


_sessions_lock = threading.Lock()


def _sessions(services: Services) -> LiveSessions:
    with _sessions_lock:
        sessions = services.extras.get(_SESSIONS_KEY)
        if sessions is None:
            sessions = services.extras[_SESSIONS_KEY] = LiveSessions(services)
        return sessions


def _session_public(session: IntrinsicsSession,
                    image_size: tuple[int, int] | None = None
                    ) -> live_schemas.CalibrationSessionPublic:
    views = session.views
    grid = session.coverage(image_size)
    return live_schemas.CalibrationSessionPublic(
        camera=session.camera, board=session.board,
        views=[live_schemas.CapturedViewPublic(index=i, frame_index=v.frame_index,
                                               corners=v.detection.count)
               for i, v in enumerate(views)],
        min_views=MIN_VIEWS, min_corners=MIN_CORNERS,
        coverage_grid=grid.tolist(), coverage=float((grid > 0).mean()),
    )


CameraName = Annotated[str, PathParam(min_length=1, max_length=64,
                                      pattern=r"^[A-Za-z0-9_\-]+$")]
_LIVE_ERRORS = {404: {"model": schemas.Message}}
_CAPTURE_ERRORS = {404: {"model": schemas.Message}, 422: {"model": schemas.Message}}


@router.get("/live/cameras")
def live_cameras(_user: CurrentUser, services: ServicesDep) -> list[live_schemas.LiveCamera]:
    """The run's cameras, each with the views captured in its live session."""
    sessions = _sessions(services)
    return [live_schemas.LiveCamera(name=c.name, kind=c.kind, views=sessions.view_count(c.name))
            for c in services.config.cameras]


@router.get("/live/{camera}", responses=_LIVE_ERRORS)
def live_detection(camera: CameraName, _user: CurrentUser,
                   services: ServicesDep) -> live_schemas.LiveCalibration:
    """The camera's newest frame with the detected ChArUco corners drawn, how many there
    are, and the session's captured views and coverage. A silent camera is a state of the
    answer (`no_frame`), not an error."""
    session = _sessions(services).get(camera)
    try:
        live = session.live()
    except StaleFrame as exc:
        return live_schemas.LiveCalibration(
            camera=camera, state="no_frame", problem=str(exc), frame_index=None,
            stamp_ns=None, age_ms=None, image_width=None, image_height=None, image_jpeg=None,
            corners=0,
            session=_session_public(session))
    ok = live.corners >= MIN_CORNERS
    problem = None if ok else (
        f"board not in view: {live.corners} corners, a view needs {MIN_CORNERS}; show the "
        "whole board to the camera")
    jpeg = encode_jpeg(live.annotated, _JPEG_QUALITY)
    return live_schemas.LiveCalibration(
        camera=camera, state="ok" if ok else "board_not_found", problem=problem,
        frame_index=live.frame_index, stamp_ns=live.stamp_ns,
        age_ms=(time.monotonic_ns() - live.stamp_ns) / 1e6, image_width=live.image_size[0],
        image_height=live.image_size[1], image_jpeg=base64.b64encode(jpeg).decode("ascii"),
        corners=live.corners, session=_session_public(session, live.image_size))


@router.post("/live/{camera}/views", status_code=status.HTTP_201_CREATED,
             responses=_CAPTURE_ERRORS)
def capture_view(camera: CameraName, user: CurrentOperator, db: DbSession,
                 services: ServicesDep) -> live_schemas.CalibrationSessionPublic:
    """Add the board as seen in the camera's next frame to the session (operators)."""
    session = _sessions(services).get(camera)
    try:
        view = session.capture()
    except (CalibrationError, StaleFrame) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    audit(db, user, "calibration.capture_view", f"camera:{camera}",
          {"frame_index": view.frame_index, "corners": view.detection.count})
    db.commit()
    return _session_public(session)


@router.delete("/live/{camera}/views", responses=_LIVE_ERRORS)
def clear_views(camera: CameraName, user: CurrentOperator, db: DbSession,
                services: ServicesDep) -> live_schemas.CalibrationSessionPublic:
    """Drop the session's captured views (stored calibrations are untouched)."""
    session = _sessions(services).get(camera)
    dropped = session.clear()
    audit(db, user, "calibration.clear_views", f"camera:{camera}", {"views": dropped})
    db.commit()
    return _session_public(session)


@router.put("/live/{camera}/board", responses=_LIVE_ERRORS)
def set_board(camera: CameraName, board: CharucoBoardConfig, user: CurrentOperator,
              db: DbSession, services: ServicesDep) -> live_schemas.BoardChange:
    """Detect and solve with another printed board from now on (operators). A different
    board drops the captured views (views of two boards cannot be fitted together); the
    same board again drops nothing. An invalid board (marker not smaller than the square,
    an unknown dictionary or one too small for the board, numbers out of range) is a 422
    that changes nothing."""
    session = _sessions(services).get(camera)
    dropped = session.set_board(board)
    audit(db, user, "calibration.set_board", f"camera:{camera}",
          {"board": board.model_dump(mode="json"), "views_dropped": dropped})
    db.commit()
    return live_schemas.BoardChange(views_dropped=dropped, session=_session_public(session))


@router.post("/live/{camera}/solve", status_code=status.HTTP_201_CREATED,
             responses=_CAPTURE_ERRORS)
def solve_intrinsics(camera: CameraName, user: CurrentOperator, db: DbSession,
                     services: ServicesDep) -> live_schemas.IntrinsicsSolve:
    """Fit intrinsics to the captured views and store them as the camera's next version,
    the way `robolearn calibrate intrinsics` does; too few or degenerate views store
    nothing and say why."""
    session = _sessions(services).get(camera)
    try:
        _result, stored = session.solve(services.store)
    except CalibrationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    audit(db, user, "calibration.solve", f"calibration:{stored.id}",
          {"kind": "intrinsics", "device": camera, "version": stored.version})
    db.commit()
    row = db.get(Calibration, stored.id)
    assert row is not None  # committed by save_calibration before it returned
    return live_schemas.IntrinsicsSolve(
        calibration=_public(row, Path(services.config.data_dir)),
        session=_session_public(session))
