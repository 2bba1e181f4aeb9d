"""Live intrinsics calibration through the service: the ChArUco board in the MuJoCo scene,
seen by the sim wrist camera behind the real DriverServer, detected per request; captured
views grow the coverage, and a solve stores a versioned result (with its board) that the
stored-calibration routes list. The board is the operator's to set: another board is what
detection looks for next and drops the views of the old one. Bad input (board out of view,
too few views, an invalid board, a viewer) changes nothing."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from robolearn.config import RunConfig, parse_config
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.protocol import Subscriber
from robolearn.server.app import create_app
from robolearn.sim.model import HOME_Q_RAD
from robolearn.store import Store
from robolearn.store.models import AuditEntry, Calibration
from tests.calibration.board_driver import (
    BoardSceneArm,
    board_poses,
    serve_board_scene,
    wait_posed,
)
from tests.calibration.conftest import BOARD
from tests.conftest import run_config_dict
from tests.server.conftest import SECRET, Actor, add_user, login

BOARD_POS_M = (0.55, 0.05, 0.001)
VIEWS = 9


@pytest.fixture
def rig(sock_dir: Path, tmp_path: Path) -> Iterator[tuple[RunConfig, BoardSceneArm]]:
    raw = run_config_dict(sock_dir, tmp_path / "data")
    raw["server"] = {"development": True}
    cfg = parse_config(raw)
    with serve_board_scene(cfg, BOARD, board_pos_m=BOARD_POS_M) as arm:
        yield cfg, arm


@pytest.fixture
def clients(rig: tuple[RunConfig, BoardSceneArm]) -> Iterator[dict[str, Actor]]:
    app = create_app(rig[0], token_secret=SECRET)
    with TestClient(app):
        for role in ("viewer", "operator"):
            add_user(app.state.services.store, role, role)
        actors = {role: login(app, role) for role in ("viewer", "operator")}
        actors["store"] = app.state.services.store  # type: ignore[assignment]
        yield actors
        for role in ("viewer", "operator"):
            actors[role].client.close()


def pose(arm: BoardSceneArm, state: Subscriber, q: np.ndarray) -> int:
    """Pose the arm; returns a time after which every frame shows the pose."""
    arm.pose_to(q)
    wait_posed(state, q)
    return time.monotonic_ns()


def live_after(actor: Actor, posed_ns: int) -> dict:
    """A live answer for a frame captured after `posed_ns`."""
    for _ in range(100):
        r = actor.get("/api/calibrations/live/wrist")
        assert r.status_code == 200, r.text
        if (r.json()["stamp_ns"] or -1) > posed_ns:
            return r.json()
    raise AssertionError("no new frame from the wrist camera")


def rows(store: Store) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(Calibration)) or 0


def test_live_detection_capture_coverage_and_versioned_solve(
        rig: tuple[RunConfig, BoardSceneArm], clients: dict[str, Actor]) -> None:
    cfg, arm = rig
    op, viewer = clients["operator"], clients["viewer"]
    store: Store = clients["store"]  # type: ignore[assignment]
    qs, _ = board_poses(VIEWS, BOARD, BOARD_POS_M)
    ctx = zmq.Context()
    state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                       security=cfg.socket_security(cfg.robot.state_address, "operator"))
    try:
        cams = viewer.get("/api/calibrations/live/cameras").json()
        assert [(c["name"], c["views"]) for c in cams] == [("front", 0), ("wrist", 0)]

        # Board out of view: the frame is shown, 0 corners, and a capture changes nothing.
        away = HOME_Q_RAD.copy()
        away[0] = 1.5
        live = live_after(viewer, pose(arm, state, away))
        assert live["state"] == "board_not_found" and live["corners"] == 0
        assert "board not in view" in live["problem"]
        image = Image.open(io.BytesIO(base64.b64decode(live["image_jpeg"])))
        assert image.size == (live["image_width"], live["image_height"]) == (640, 480)
        r = op.post("/api/calibrations/live/wrist/views")
        assert r.status_code == 422 and "board not in view" in r.json()["detail"]
        assert live_after(viewer, 0)["session"]["views"] == []

        # Too few views: the solve says why and stores nothing.
        r = op.post("/api/calibrations/live/wrist/solve")
        assert r.status_code == 422 and "0 usable views" in r.json()["detail"]

        covered = []
        for i, q in enumerate(qs):
            live = live_after(viewer, pose(arm, state, q))
            assert live["state"] == "ok" and live["corners"] >= 12, live["problem"]
            r = op.post("/api/calibrations/live/wrist/views")
            assert r.status_code == 201, r.text
            session = r.json()
            assert len(session["views"]) == i + 1
            assert session["views"][-1]["corners"] >= 12
            grid = np.asarray(session["coverage_grid"])
            assert grid.shape == (8, 8)
            assert grid.sum() == sum(v["corners"] for v in session["views"])
            covered.append(session["coverage"])
        assert covered == sorted(covered) and covered[-1] > covered[0] > 0
        assert viewer.post("/api/calibrations/live/wrist/views").status_code == 403
        assert viewer.post("/api/calibrations/live/wrist/solve").status_code == 403
        assert rows(store) == 0

        first = op.post("/api/calibrations/live/wrist/solve")
        assert first.status_code == 201, first.text
        body = first.json()
        stored = body["calibration"]
        assert (stored["kind"], stored["device"], stored["version"]) == ("intrinsics", "wrist", 1)
        intr = stored["intrinsics"]
        errors = [e for e in intr["per_view_error_px"] if e is not None]
        assert len(intr["per_view_error_px"]) == VIEWS and errors and max(errors) < 1.0
        assert stored["file"] == "calibrations/wrist/intrinsics_v001.json"
        assert stored["data"]["board"] == BOARD.model_dump(mode="json")
        second = op.post("/api/calibrations/live/wrist/solve").json()["calibration"]
        assert second["version"] == 2
        listed = viewer.get("/api/calibrations", params={"kind": "intrinsics"}).json()
        assert [v["version"] for v in listed[0]["versions"]] == [2, 1]

        # Clearing the views leaves the stored versions alone.
        cleared = op.delete("/api/calibrations/live/wrist/views")
        assert cleared.status_code == 200 and cleared.json()["views"] == []
        assert rows(store) == 2
        with store.session() as db:
            actions = list(db.scalars(select(AuditEntry.action)))
        assert actions.count("calibration.capture_view") == VIEWS
        assert actions.count("calibration.solve") == 2
    finally:
        state.close()
        ctx.term()


def put_board(actor: Actor, board: dict):
    return actor.client.put("/api/calibrations/live/wrist/board", headers=actor.headers,
                            json=board)


def test_set_board_detects_with_it_and_drops_views_of_the_old_one(
        rig: tuple[RunConfig, BoardSceneArm], clients: dict[str, Actor]) -> None:
    cfg, arm = rig
    op, viewer = clients["operator"], clients["viewer"]
    store: Store = clients["store"]  # type: ignore[assignment]
    right = BOARD.model_dump(mode="json")
    # The scene's board measured right but looked up in another dictionary: no marker in the
    # image is one of its markers.
    wrong = {**right, "dictionary": "DICT_5X5_100"}
    (q,), _ = board_poses(1, BOARD, BOARD_POS_M)
    ctx = zmq.Context()
    state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                       security=cfg.socket_security(cfg.robot.state_address, "operator"))
    try:
        posed_ns = pose(arm, state, q)
        live = live_after(viewer, posed_ns)
        assert live["state"] == "ok" and live["session"]["board"] == right
        for _ in range(2):
            assert op.post("/api/calibrations/live/wrist/views").status_code == 201

        # The same board again keeps the views.
        r = put_board(op, right)
        assert r.status_code == 200, r.text
        assert r.json()["views_dropped"] == 0 and len(r.json()["session"]["views"]) == 2

        # Invalid boards and viewers change nothing.
        for bad, says in [
            ({**right, "marker_length_m": 0.04}, "must be smaller than square_length_m"),
            ({**right, "dictionary": "DICT_7X7_1000"}, "DICT_4X4_50"),
            ({**right, "squares_x": 12, "squares_y": 10}, "DICT_4X4_50 holds 50 markers"),
            ({**right, "squares_x": 2}, "greater than or equal to 3"),
            ({**right, "square_length_m": 2.0}, "less than or equal to 0.5"),
        ]:
            r = put_board(op, bad)
            assert r.status_code == 422 and says in r.text, (bad, r.text)
        assert put_board(viewer, wrong).status_code == 403
        live = live_after(viewer, 0)
        assert live["session"]["board"] == right and len(live["session"]["views"]) == 2

        # Another board: its views are gone, and detection looks for it (and finds none).
        r = put_board(op, wrong)
        assert r.status_code == 200, r.text
        assert r.json()["views_dropped"] == 2
        assert r.json()["session"]["views"] == [] and r.json()["session"]["board"] == wrong
        live = live_after(viewer, 0)
        assert live["state"] == "board_not_found" and live["corners"] == 0
        assert live["session"]["board"] == wrong
        assert op.post("/api/calibrations/live/wrist/views").status_code == 422

        # Back to the board in the scene: found again.
        r = put_board(op, right)
        assert r.status_code == 200 and r.json()["views_dropped"] == 0
        live = live_after(viewer, 0)
        assert live["state"] == "ok" and live["corners"] >= 12

        with store.session() as db:
            entries = list(db.scalars(select(AuditEntry).where(
                AuditEntry.action == "calibration.set_board").order_by(AuditEntry.id)))
        assert [(e.target, e.detail["views_dropped"], e.detail["board"]["dictionary"])
                for e in entries] == [("camera:wrist", 0, "DICT_4X4_50"),
                                      ("camera:wrist", 2, "DICT_5X5_100"),
                                      ("camera:wrist", 0, "DICT_4X4_50")]
        assert CharucoBoardConfig.model_validate(entries[-1].detail["board"]) == BOARD
    finally:
        state.close()
        ctx.term()


def test_unknown_camera_and_silent_camera(sock_dir: Path, tmp_path: Path) -> None:
    """No driver running: the live view says no_frame; an unknown camera is a 404."""
    raw = run_config_dict(sock_dir, tmp_path / "data")
    raw["server"] = {"development": True}
    app = create_app(parse_config(raw), token_secret=SECRET)
    with TestClient(app):
        add_user(app.state.services.store, "operator", "operator")
        op = login(app, "operator")
        r = op.get("/api/calibrations/live/nope")
        assert r.status_code == 404 and "cameras: ['front', 'wrist']" in r.json()["detail"]
        live = op.get("/api/calibrations/live/front").json()
        assert live["state"] == "no_frame" and live["image_jpeg"] is None
        assert "no frame within" in live["problem"]
        r = op.post("/api/calibrations/live/front/views")
        assert r.status_code == 422 and "driver running" in r.json()["detail"]
        op.client.close()
