"""Operator requests: everyone lists the open ones, operators resolve or dismiss (audited),
a closed request stays closed, and the help rates count human resets and interventions."""

from __future__ import annotations

from sqlalchemy import select

from robolearn.errors import StoreError
from robolearn.store import Store
from robolearn.store.models import AuditEntry, OperatorRequest
from robolearn.store.operator_requests import open_request
from tests.server.conftest import Actor, record_episode


def _open(store: Store, run_id: int, kind: str = "no_progress") -> int:
    with store.session() as db:
        rec = open_request(db, run_id, kind, "drawer did not move for 200 steps")
        db.commit()
        return rec.id


def test_list_resolve_dismiss(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("rf", {})
    first, second = _open(store, run), _open(store, run, "workspace_limit")
    viewer, op = users["viewer"], users["operator"]
    listed = viewer.get("/api/operator-requests", params={"run_id": run}).json()
    assert [r["id"] for r in listed] == [second, first]
    assert listed[0]["status"] == "open" and listed[0]["resolution"] is None

    r = op.post(f"/api/operator-requests/{first}/resolve", json={"resolution": "human_reset"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["resolution"]) == ("resolved", "human_reset")
    assert body["resolved_at"] is not None and body["user_id"] is not None
    r = op.post(f"/api/operator-requests/{second}/dismiss")
    assert (r.json()["status"], r.json()["resolution"]) == ("dismissed", "dismiss")

    assert viewer.get("/api/operator-requests").json() == []
    every = viewer.get("/api/operator-requests", params={"status": "all"}).json()
    assert {r["id"] for r in every} == {first, second}
    with store.session() as db:
        actions = list(db.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("operator_request.%")).order_by(AuditEntry.id)))
    assert actions == ["operator_request.resolve", "operator_request.dismiss"]


def test_viewers_cannot_resolve_and_closed_requests_stay_closed(
        users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("rf", {})
    rid = _open(store, run)
    r = users["viewer"].post(f"/api/operator-requests/{rid}/resolve",
                             json={"resolution": "takeover"})
    assert r.status_code == 403
    op = users["operator"]
    for body in ({"resolution": "dismiss"}, {"resolution": "magic"}, {}, {"resolution":
                                                                          "takeover", "x": 1}):
        assert op.post(f"/api/operator-requests/{rid}/resolve", json=body).status_code == 422
    assert op.post("/api/operator-requests/999/resolve",
                   json={"resolution": "takeover"}).status_code == 404
    assert op.post(f"/api/operator-requests/{rid}/resolve",
                   json={"resolution": "takeover"}).status_code == 200
    r = op.post(f"/api/operator-requests/{rid}/dismiss")
    assert r.status_code == 409 and "already resolved" in r.text
    with store.session() as db:
        row = db.get(OperatorRequest, rid)
        assert (row.status, row.resolution) == ("resolved", "takeover")


def test_open_request_refuses_unknown_run(store: Store) -> None:
    with store.session() as db:
        try:
            open_request(db, 4242, "no_progress", "")
        except StoreError as e:
            assert "run 4242" in str(e)
        else:
            raise AssertionError("an unknown run must be refused")


def test_help_rates_per_robot_hour(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("rf", {})
    # 2 episodes x 9 steps at the default 10 Hz = 1.8 s of robot time (0.0005 h).
    record_episode(store, run, steps=9, intervention=True, direction="forward")
    record_episode(store, run, steps=9, direction="backward")
    rid = _open(store, run)
    users["operator"].post(f"/api/operator-requests/{rid}/resolve",
                           json={"resolution": "human_reset"})
    rates = users["viewer"].get(f"/api/operator-requests/rates/{run}").json()
    assert rates["requests"] == 1 and rates["human_resets"] == 1 and rates["interventions"] == 1
    assert abs(rates["robot_hours"] - 18 / 10 / 3600) < 1e-12
    assert abs(rates["human_resets_per_hour"] - 2000.0) < 1e-6
    assert users["viewer"].get("/api/operator-requests/rates/999").status_code == 404


def test_one_queue_across_robots_by_priority_then_age(users: dict[str, Actor],
                                                      store: Store) -> None:
    import datetime as dt

    from robolearn.store.operator_requests import resolve_request

    run = store.create_run("fleet", {})
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with store.session() as db:
        def ask(kind: str, robot: str | None, after_s: float) -> int:
            return open_request(db, run, kind, "", robot=robot,
                                now=t0 + dt.timedelta(seconds=after_s)).id

        pref = ask("preference", "left", 0)
        take = ask("uncertain_takeover", "right", 5)
        stuck_late = ask("workspace_limit", "left", 30)
        stuck_early = ask("no_progress", "right", 10)
        odd = ask("gripper_jammed", None, 20)  # unknown kind: treated as stuck
        answered = ask("no_progress", "left", 1)
        rec = resolve_request(db, answered, "human_reset", None,
                              now=t0 + dt.timedelta(seconds=46))
        db.commit()
    assert rec.robot == "left" and rec.waited_s() == 45.0
    viewer = users["viewer"]
    body = viewer.get("/api/operator-requests/queue").json()  # the running run's
    assert body["run_id"] == run
    assert [r["id"] for r in body["requests"]] == [stuck_early, odd, stuck_late, take, pref]
    assert [r["priority"] for r in body["requests"]] == [0, 0, 0, 1, 2]
    assert [r["robot"] for r in body["requests"]] == ["right", None, "left", "right", "left"]
    assert body["priorities"]["uncertain_takeover"] == "takeover"
    # Open ones have waited until now (hours here: they were opened at t0).
    assert all(r["waited_s"] > 3600 for r in body["requests"])
    [closed] = [r for r in viewer.get("/api/operator-requests",
                                      params={"status": "all"}).json() if r["id"] == answered]
    assert closed["waited_s"] == 45.0 and closed["robot"] == "left"
    # No run running: the default queue is empty; naming the run still lists it.
    store.end_run(run, "stopped")
    assert viewer.get("/api/operator-requests/queue").json() == {
        "run_id": None, "requests": [], "priorities": body["priorities"]}
    named = viewer.get("/api/operator-requests/queue", params={"run_id": run}).json()
    assert len(named["requests"]) == 5
