"""Calibration rows through their query module, on a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from robolearn.store import Store, calibrations


def test_versions_per_kind_and_device(any_store: Store) -> None:
    with any_store.session() as db:
        assert calibrations.latest_version(db, "intrinsics", "wrist_cam") == 0
        assert calibrations.latest_calibration(db, "intrinsics", "wrist_cam") is None
        calibrations.add_calibration(db, "intrinsics", "wrist_cam", 1, {"fx": 1.0}, None)
        calibrations.add_calibration(db, "intrinsics", "wrist_cam", 2, {"fx": 2.0},
                                     Path("/data/c.json"))
        calibrations.add_calibration(db, "hand_eye", "wrist_cam", 1, {"t": [0, 0, 0]}, None)
        db.commit()
        assert calibrations.latest_version(db, "intrinsics", "wrist_cam") == 2
        latest = calibrations.latest_calibration(db, "intrinsics", "wrist_cam")
        assert (latest.version, latest.data, latest.path) == (2, {"fx": 2.0}, "/data/c.json")
        assert calibrations.latest_version(db, "hand_eye", "front_cam") == 0
        # Two processes taking the same version: the second row is refused.
        calibrations.add_calibration(db, "intrinsics", "wrist_cam", 2, {}, None)
        with pytest.raises(IntegrityError):
            db.commit()


def test_list_and_get(any_store: Store) -> None:
    with any_store.session() as db:
        rows = [calibrations.add_calibration(db, kind, device, version, {}, None)
                for kind, device, version in [("workspace", "arm", 1), ("intrinsics", "b", 1),
                                              ("intrinsics", "a", 1), ("intrinsics", "a", 2)]]
        db.commit()
        listed = calibrations.list_calibrations(db, ("intrinsics",))
        assert [(r.device, r.version) for r in listed] == [("a", 2), ("a", 1), ("b", 1)]
        assert [r.kind for r in calibrations.list_calibrations(
            db, ("intrinsics", "workspace"), device="arm")] == ["workspace"]
        assert calibrations.list_calibrations(db, ("intrinsics",), kind="workspace") == []
        assert calibrations.get_calibration(db, rows[0].id).kind == "workspace"
        assert calibrations.get_calibration(db, 10**9) is None
