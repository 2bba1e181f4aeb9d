"""Every route checks who calls it: enumerated from the app, so a new route that forgets
its auth dependency fails here."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from robolearn.server.app import operation_id
from robolearn.server.deps import AUTH_DEPENDENCIES, current_admin, current_operator
from robolearn.store import Store
from robolearn.store.models import AuditEntry, Label
from tests.server.conftest import Actor, add_query, record_episode

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
PUBLIC = {"auth-login"}
# Mutations any logged-in user may make on their own account.
SELF_SERVICE = {"auth-logout", "auth-create_token", "auth-change_password"}
# Stopping the robot is never gated by role (server/routers/control.py says why).
ANY_USER = {"control-estop"}


def api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    # FastAPI keeps included routers lazily; iter_route_contexts flattens them.
    routes = [c.original_route for c in iter_route_contexts(app.routes)]
    return [(method, route.path, route) for route in routes if isinstance(route, APIRoute)
            for method in sorted(route.methods)]


def calls(dependant: Dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= calls(sub)
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"camera": "front", "job_id": "nojob"}.get(
        m.group(1), "1"), path)


@pytest.fixture
def seeded(users: dict[str, Actor], store: Store) -> dict[str, Actor]:
    """Id 1 exists for every kind of object, so a refusal is about the role, not a 404."""
    run_id = store.create_run("r", {})
    first = record_episode(store, run_id)
    second = record_episode(store, run_id, outcome="failure")
    add_query(store, run_id, first, second)
    with store.session() as db:
        db.add(Label(episode_id=first, step_index=0, label="success"))
        db.commit()
    return users


def test_every_route_requires_authentication_statically(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) > 20
    for method, path, route in routes:
        name = operation_id(route)
        if name in PUBLIC:
            continue
        assert calls(route.dependant) & set(AUTH_DEPENDENCIES), (
            f"{method} {path} ({name}) has no CurrentUser/CurrentOperator/CurrentAdmin")
        if method in MUTATING and name not in SELF_SERVICE | ANY_USER:
            assert calls(route.dependant) & {current_operator, current_admin}, (
                f"{method} {path} ({name}) lets viewers change state")


def test_anonymous_callers_get_401_everywhere(app: FastAPI, seeded: dict[str, Actor]) -> None:
    anonymous = TestClient(app)
    for method, path, route in api_routes(app):
        if operation_id(route) in PUBLIC:
            continue
        r = anonymous.request(method, concrete(path), json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)


def test_viewer_cannot_change_anything(app: FastAPI, seeded: dict[str, Actor],
                                       store: Store) -> None:
    viewer = seeded["viewer"]
    with store.session() as db:
        entries = db.scalar(select(func.count()).select_from(AuditEntry))
    checked = 0
    for method, path, route in api_routes(app):
        if method not in MUTATING or operation_id(route) in PUBLIC | SELF_SERVICE | ANY_USER:
            continue
        r = viewer.client.request(method, concrete(path), json={}, headers=viewer.headers)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert "needs an" in r.json()["detail"]
        checked += 1
    assert checked >= 14
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(AuditEntry)) == entries
        assert db.scalar(select(func.count()).select_from(Label)) == 1
    # ...but may read.
    for method, path, route in api_routes(app):
        admin_only = current_admin in calls(route.dependant)
        if method == "GET" and not admin_only and "{" not in path:
            # The actor's newest telemetry: 503 here only because no actor runs.
            expected = (200, 503) if operation_id(route) == "live-latest_telemetry" else (200,)
            assert viewer.get(path).status_code in expected, path


def test_operator_cannot_administer(app: FastAPI, seeded: dict[str, Actor]) -> None:
    operator = seeded["operator"]
    admin_routes = [(m, p) for m, p, r in api_routes(app) if current_admin in calls(r.dependant)]
    assert {p for _, p in admin_routes} >= {"/api/users", "/api/users/{user_id}", "/api/audit"}
    for method, path in admin_routes:
        r = operator.client.request(method, concrete(path), json={}, headers=operator.headers)
        assert r.status_code == 403, (method, path, r.text)
    assert seeded["admin"].get("/api/audit").status_code == 200
