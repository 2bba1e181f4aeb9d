"""Users, sessions, CSRF, bearer tokens and the login rate limit (through the app)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from robolearn.server.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, verify_password
from robolearn.server.users import ensure_first_admin
from robolearn.store import Store
from robolearn.store.models import AuditEntry, User
from tests.server.conftest import PASSWORD, Actor, FakeClock, add_user, login


def audit_actions(store: Store) -> list[str]:
    with store.session() as db:
        return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_passwords_are_argon2_hashes(users: dict[str, Actor], store: Store) -> None:
    with store.session() as db:
        user = db.scalar(select(User).where(User.username == "viewer"))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, PASSWORD)
    assert not verify_password(user.password_hash, PASSWORD + "x")


def test_login_sets_httponly_strict_cookie_and_returns_csrf(app: FastAPI, store: Store) -> None:
    with TestClient(app) as client:
        add_user(store, "alice", "operator")
        r = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookies = r.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
        assert "HttpOnly" in session and "SameSite=strict" in session
        csrf = next(c for c in cookies if c.startswith(CSRF_COOKIE + "="))
        assert "HttpOnly" not in csrf
        assert r.json()["csrf_token"] in csrf
        me = client.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["username"] == "alice"
        assert "auth.login" in audit_actions(store)


def test_wrong_password_and_unknown_user_are_401(app: FastAPI, store: Store) -> None:
    with TestClient(app) as client:
        add_user(store, "alice", "operator")
        for body in ({"username": "alice", "password": "nope-nope-nope"},
                     {"username": "mallory", "password": PASSWORD}):
            r = client.post("/api/auth/login", json=body)
            assert r.status_code == 401
            assert "wrong user name or password" in r.json()["detail"]
        assert client.get("/api/auth/me").status_code == 401


def test_csrf_missing_or_wrong_is_403_and_changes_nothing(users: dict[str, Actor],
                                                         store: Store) -> None:
    admin = users["admin"]
    body = {"username": "bob", "password": PASSWORD, "role": "viewer"}
    before = audit_actions(store)
    for headers in ({}, {CSRF_HEADER: "wrong"}, {CSRF_HEADER: users["operator"].csrf}):
        r = admin.client.post("/api/users", json=body, headers=headers)
        assert r.status_code == 403, r.text
        assert "CSRF" in r.json()["detail"]
    with store.session() as db:
        assert db.scalar(select(User).where(User.username == "bob")) is None
    assert audit_actions(store) == before
    ok = admin.post("/api/users", json=body)
    assert ok.status_code == 201, ok.text
    assert audit_actions(store)[-1] == "user.create"


def test_expired_session_is_refused(users: dict[str, Actor], clock: FakeClock,
                                    app: FastAPI) -> None:
    viewer = users["viewer"]
    assert viewer.get("/api/auth/me").status_code == 200
    clock.advance(app.state.services.config.server.session_lifetime_s + 1)
    r = viewer.get("/api/auth/me")
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


def test_logout_ends_the_session(users: dict[str, Actor]) -> None:
    viewer = users["viewer"]
    cookie = viewer.client.cookies[SESSION_COOKIE]
    assert viewer.post("/api/auth/logout").status_code == 200
    viewer.client.cookies.set(SESSION_COOKIE, cookie)  # a copy kept by an attacker
    assert viewer.get("/api/auth/me").status_code == 401


def test_login_rate_limit(app: FastAPI, store: Store, clock: FakeClock) -> None:
    settings = app.state.services.config.server
    with TestClient(app) as client:
        add_user(store, "alice", "operator")
        bad = {"username": "alice", "password": "wrong-password"}
        for _ in range(settings.login_max_failures):
            assert client.post("/api/auth/login", json=bad).status_code == 401
        # Even the right password is refused while limited: guessing cannot continue.
        good = {"username": "alice", "password": PASSWORD}
        r = client.post("/api/auth/login", json=good)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        clock.advance(settings.login_window_s + 1)
        assert client.post("/api/auth/login", json=good).status_code == 200


def test_bearer_token_needs_no_csrf_and_is_revoked_by_password_change(
    users: dict[str, Actor], app: FastAPI, clock: FakeClock
) -> None:
    admin = users["admin"]
    r = admin.post("/api/auth/tokens", json={"lifetime_s": 3600})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    script = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert script.get("/api/auth/me").json()["username"] == "admin"
    created = script.post("/api/users", json={"username": "carol", "password": PASSWORD,
                                              "role": "operator"})
    assert created.status_code == 201, created.text
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert TestClient(app, headers={"Authorization": f"Bearer {tampered}"}).get(
        "/api/auth/me").status_code == 401
    changed = admin.post("/api/auth/password",
                         json={"current_password": PASSWORD, "new_password": "a new long one"})
    assert changed.status_code == 200
    assert script.get("/api/auth/me").status_code == 401
    assert admin.get("/api/auth/me").status_code == 401  # sessions ended too


def test_bearer_token_expires(users: dict[str, Actor], app: FastAPI, clock: FakeClock) -> None:
    token = users["viewer"].post("/api/auth/tokens", json={"lifetime_s": 60}).json()["token"]
    script = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert script.get("/api/auth/me").status_code == 200
    clock.advance(61)
    assert script.get("/api/auth/me").status_code == 401


def test_deactivated_user_is_locked_out(users: dict[str, Actor], store: Store) -> None:
    with store.session() as db:
        op_id = db.scalar(select(User.id).where(User.username == "operator"))
    r = users["admin"].patch(f"/api/users/{op_id}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert users["operator"].get("/api/auth/me").status_code == 401
    again = TestClient(users["operator"].client.app).post(
        "/api/auth/login", json={"username": "operator", "password": PASSWORD})
    assert again.status_code == 401


def test_last_admin_cannot_be_demoted(users: dict[str, Actor], store: Store) -> None:
    with store.session() as db:
        admin_id = db.scalar(select(User.id).where(User.username == "admin"))
    r = users["admin"].patch(f"/api/users/{admin_id}", json={"role": "viewer"})
    assert r.status_code == 409
    assert "last active admin" in r.json()["detail"]


def test_bad_user_input_is_a_clear_error_and_stores_nothing(users: dict[str, Actor],
                                                            store: Store) -> None:
    admin = users["admin"]
    with store.session() as db:
        before = db.scalar(select(func.count()).select_from(User))
    cases = [
        ({"username": "x y", "password": PASSWORD, "role": "viewer"}, 400, "user name"),
        ({"username": "dave", "password": "short", "role": "viewer"}, 400, "password"),
        ({"username": "dave", "password": PASSWORD, "role": "root"}, 422, "role"),
        ({"username": "viewer", "password": PASSWORD, "role": "viewer"}, 400, "already"),
        ({"username": "dave", "password": PASSWORD, "extra": 1}, 422, "extra"),
    ]
    for body, code, word in cases:
        r = admin.post("/api/users", json=body)
        assert r.status_code == code, (body, r.text)
        assert word in r.text
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(User)) == before


def test_first_admin_is_created_once(store: Store, app: FastAPI) -> None:
    with TestClient(app), store.session() as db:
        password = ensure_first_admin(db)
        assert password is not None and len(password) >= 16
        assert ensure_first_admin(db) is None
        assert login(app, "admin", password).role == "admin"
