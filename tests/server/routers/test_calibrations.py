"""Stored calibrations through the service: every kind and version, as calibration/ wrote
them (save_calibration on a real store), readable by a viewer; unreadable data is shown with
the reason, never a 500."""

from __future__ import annotations

import math
import typing

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from robolearn.calibration.handeye import HandEyeResult, MethodResult
from robolearn.calibration.intrinsics import IntrinsicsResult
from robolearn.calibration.results import KINDS, save_calibration
from robolearn.calibration.workspace import teach_box
from robolearn.server import schemas
from robolearn.store import Store
from robolearn.store.models import Calibration
from tests.server.conftest import Actor

IDENTITY = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.05],
            [0.0, 0.0, 0.0, 1.0]]


def intrinsics(fx: float) -> IntrinsicsResult:
    return IntrinsicsResult(
        image_width=640, image_height=480,
        camera_matrix=[[fx, 0.0, 320.0], [0.0, fx, 240.0], [0.0, 0.0, 1.0]],
        dist_coeffs=[0.01, -0.02, 0.0, 0.0, 0.0], rms_px=0.21, focal_std_px=0.4,
        per_view_error_px=[0.2, None, 0.25, 0.18], rejected={1: "7 corners (need 8)"},
        coverage=0.62,
    )


def hand_eye() -> HandEyeResult:
    methods = {name: MethodResult(transform=IDENTITY, residual_mm=mm, residual_deg=deg)
               for name, mm, deg in (("tsai", 0.8, 0.1), ("park", 0.6, 0.08),
                                     ("daniilidis", 1.5, 0.3))}
    return HandEyeResult(mode="eye_in_hand", method="park", transform=IDENTITY, residual_mm=0.6,
                         residual_deg=0.08, views=12, methods=methods)


@pytest.fixture
def stored(store: Store) -> dict[str, int]:
    return {
        "front_v1": save_calibration(store, "intrinsics", "front", intrinsics(500.0)).id,
        "front_v2": save_calibration(store, "intrinsics", "front", intrinsics(510.0)).id,
        "wrist": save_calibration(store, "intrinsics", "wrist", intrinsics(300.0)).id,
        "hand_eye": save_calibration(store, "hand_eye", "wrist", hand_eye()).id,
        "workspace": save_calibration(store, "workspace", "panda", teach_box(
            [[0.3, -0.2, 0.0], [0.7, 0.2, 0.4]], margin_m=0.01)).id,
    }


def test_the_kinds_match_what_calibration_stores() -> None:
    assert set(typing.get_args(schemas.CalibrationKind)) == set(KINDS)


def test_viewer_lists_every_device_with_its_versions(
        users: dict[str, Actor], stored: dict[str, int]) -> None:
    r = users["viewer"].get("/api/calibrations")
    assert r.status_code == 200, r.text
    groups = {(g["kind"], g["device"]): g for g in r.json()}
    assert list(groups) == [("hand_eye", "wrist"), ("intrinsics", "front"),
                            ("intrinsics", "wrist"), ("workspace", "panda")]

    front = groups[("intrinsics", "front")]
    assert [v["version"] for v in front["versions"]] == [2, 1]
    assert [v["id"] for v in front["versions"]] == [stored["front_v2"], stored["front_v1"]]
    latest = front["latest"]
    assert latest["id"] == stored["front_v2"] and latest["problem"] is None
    assert latest["hand_eye"] is None and latest["workspace"] is None
    assert latest["intrinsics"]["camera_matrix"][0][0] == 510.0
    assert latest["intrinsics"]["per_view_error_px"] == [0.2, None, 0.25, 0.18]
    assert latest["intrinsics"]["rejected"] == {"1": "7 corners (need 8)"}
    assert latest["file"] == "calibrations/front/intrinsics_v002.json"

    he = groups[("hand_eye", "wrist")]["latest"]["hand_eye"]
    assert he["method"] == "park" and he["views"] == 12
    assert {m: v["residual_mm"] for m, v in he["methods"].items()} == {
        "tsai": 0.8, "park": 0.6, "daniilidis": 1.5}

    ws = groups[("workspace", "panda")]["latest"]["workspace"]
    assert ws["workspace_min_m"] == pytest.approx([0.31, -0.19, 0.01])
    assert ws["workspace_max_m"] == pytest.approx([0.69, 0.19, 0.39])
    assert len(ws["points_m"]) == 2 and math.isclose(ws["margin_m"], 0.01)


def test_filters_and_one_version(users: dict[str, Actor], stored: dict[str, int]) -> None:
    v = users["viewer"]
    r = v.get("/api/calibrations", params={"kind": "intrinsics", "device": "wrist"})
    assert [(g["kind"], g["device"]) for g in r.json()] == [("intrinsics", "wrist")]
    assert v.get("/api/calibrations", params={"device": "nobody"}).json() == []

    old = v.get(f"/api/calibrations/{stored['front_v1']}").json()
    assert old["version"] == 1 and old["intrinsics"]["camera_matrix"][0][0] == 500.0


def test_bad_requests_are_refused_and_change_nothing(
        users: dict[str, Actor], store: Store, stored: dict[str, int]) -> None:
    v = users["viewer"]
    assert v.get("/api/calibrations", params={"kind": "colour"}).status_code == 422
    assert v.get("/api/calibrations", params={"device": "../etc"}).status_code == 422
    r = v.get("/api/calibrations/999999")
    assert r.status_code == 404 and "no such calibration" in r.json()["detail"]
    assert v.get("/api/calibrations/0").status_code == 422
    # No write route: a POST is not allowed for anyone.
    assert users["admin"].post("/api/calibrations", json={}).status_code == 405
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Calibration)) == len(stored)


def test_anonymous_is_refused(app: FastAPI, stored: dict[str, int]) -> None:
    with TestClient(app) as client:
        assert client.get("/api/calibrations").status_code == 401


def test_data_that_does_not_read_as_its_kind_is_shown_with_the_reason(
        users: dict[str, Actor], store: Store) -> None:
    # An older or hand-edited result: stored as it is, served as it is, with why.
    row_id = save_calibration(store, "workspace", "panda", {"note": "retaught by hand"}).id
    r = users["viewer"].get(f"/api/calibrations/{row_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["workspace"] is None and body["data"] == {"note": "retaught by hand"}
    assert "does not read as workspace" in body["problem"]
