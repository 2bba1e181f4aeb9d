"""Request dependencies: the database session, who is calling, role checks, lookups.

Handlers declare what they need as annotated parameters::

    @router.post("/{run_id}/stop", operation_id="runs-stop")
    def stop(run: RunOr404, user: CurrentOperator, db: DbSession) -> RunPublic:
        ...
        audit(db, user, "run.stop", f"run:{run.id}")
        db.commit()

Authentication: a browser sends the session cookie and, on every state-changing request,
the CSRF token in the `X-CSRF-Token` header; a script sends `Authorization: Bearer <token>`
(no CSRF: a browser never attaches it on its own). Every mutating route must depend on
CurrentUser, CurrentOperator or CurrentAdmin; tests/server/test_roles.py enumerates the
app's routes and fails on one that does not.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from robolearn.server.auth import CSRF_HEADER, SESSION_COOKIE, hash_fingerprint
from robolearn.server.services import Services
from robolearn.store import audit as audit_log
from robolearn.store import episodes, runs, users
from robolearn.store.models import AuditEntry, Episode, Run, User, utcnow

log = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATOR_ROLES = frozenset({"operator", "admin"})

# Ids in paths are bounded so an absurd number is a 422, not a database overflow.
Id = Annotated[int, Path(ge=1, le=INT64_MAX)]

_cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                              description="Browser session (login); CSRF header required "
                              "on state-changing requests.")
_bearer_scheme = HTTPBearer(auto_error=False, description="Bearer token for scripts.")


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def db_session(services: ServicesDep) -> Iterator[Session]:
    with services.store.session() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    id: int
    username: str
    role: str
    via: Literal["session", "bearer"]
    session_token: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role in OPERATOR_ROLES


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail,
                         headers={"WWW-Authenticate": "Bearer"})


PASSWORD_CHANGE_REQUIRED = "password_change_required"
# What an account that still has its one-time password may do: replace it, leave, and ask
# who it is (so the UI knows to show the change-password form). The e-stop stays open to
# every logged-in user (it never reads the database; stopping cannot move the robot).
PASSWORD_CHANGE_PATHS = frozenset({"/api/auth/password", "/api/auth/logout", "/api/auth/me"})


class PasswordChangeRequired(HTTPException):
    """403 with `code: password_change_required` (see server/app.py's handler)."""

    code = PASSWORD_CHANGE_REQUIRED

    def __init__(self, username: str) -> None:
        super().__init__(
            status.HTTP_403_FORBIDDEN,
            f"user {username!r} still has the one-time password printed at the first start: "
            "change it first (POST /api/auth/password, or the form the web UI shows); "
            "nothing else is allowed until then")


def _check_password_changed(request: Request, user: User) -> None:
    if user.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired(user.username)


def current_user(
    request: Request,
    services: ServicesDep,
    db: DbSession,
    cookie: Annotated[str | None, Depends(_cookie_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """The logged-in user; 401 without valid credentials, 403 on a missing/wrong CSRF."""
    if bearer is not None:
        claims = services.tokens.verify(bearer.credentials)
        if claims is None:
            raise _unauthorized("bearer token is invalid or expired; create a new one with "
                                "POST /api/auth/tokens or `robolearn user token`")
        user = users.get_user(db, claims.user_id)
        if (user is None or not user.active
                or not hmac.compare_digest(claims.fingerprint,
                                           hash_fingerprint(user.password_hash))):
            raise _unauthorized("bearer token was revoked (user deactivated or password "
                                "changed); create a new one")
        _check_password_changed(request, user)
        return Principal(user.id, user.username, user.role, "bearer")
    if cookie is None:
        raise _unauthorized("not logged in: POST /api/auth/login or send a bearer token")
    session = services.sessions.get(cookie)
    if session is None:
        raise _unauthorized("session expired or logged out: log in again")
    user = users.get_user(db, session.user_id)
    if user is None or not user.active:
        services.sessions.revoke(cookie)
        raise _unauthorized("this account is deactivated; ask an admin")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"missing or wrong CSRF token: send the token from login in the {CSRF_HEADER} "
                "header on every state-changing request",
            )
    _check_password_changed(request, user)
    return Principal(user.id, user.username, user.role, "session", session.token)


CurrentUser = Annotated[Principal, Depends(current_user)]


def current_operator(user: CurrentUser) -> Principal:
    if not user.is_operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"user {user.username!r} is a {user.role}: this needs an operator "
                            "or admin")
    return user


def current_admin(user: CurrentUser) -> Principal:
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"user {user.username!r} is a {user.role}: this needs an admin")
    return user


def current_user_without_db(
    request: Request,
    services: ServicesDep,
    cookie: Annotated[str | None, Depends(_cookie_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """Like current_user, from memory and signatures only (no database read), for the
    e-stop, which must never wait on the database. It skips the revocation checks that need
    the database (deactivated user, changed password): the worst a revoked credential can do
    here is stop the robot. `role` is "unknown"; `username` is "user:<id>"."""
    if bearer is not None:
        claims = services.tokens.verify(bearer.credentials)
        if claims is None:
            raise _unauthorized("bearer token is invalid or expired; create a new one")
        return Principal(claims.user_id, f"user:{claims.user_id}", "unknown", "bearer")
    if cookie is None:
        raise _unauthorized("not logged in: POST /api/auth/login or send a bearer token")
    session = services.sessions.get(cookie)
    if session is None:
        raise _unauthorized("session expired or logged out: log in again")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"missing or wrong CSRF token: send the token from login in the {CSRF_HEADER} "
            "header on every state-changing request",
        )
    return Principal(session.user_id, f"user:{session.user_id}", "unknown", "session",
                     session.token)


CurrentOperator = Annotated[Principal, Depends(current_operator)]
CurrentAdmin = Annotated[Principal, Depends(current_admin)]
# The dependencies that make a route authenticated (tests check every mutating route).
AUTH_DEPENDENCIES = (current_user, current_operator, current_admin, current_user_without_db)


def audit(
    db: Session,
    user: Principal | None,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction (it commits with the change itself,
    so the log never claims an action that was rolled back, nor misses one that stuck).

    Args:
        user: who acted; None for the service itself.
        action: dotted verb, e.g. "run.stop", "label.add".
        target: what it acted on, e.g. "episode:12".
    """
    return audit_log.add_entry(db, action, target, detail, user.id if user else None,
                               created_at=utcnow())


def commit_or_report(db: Session, what: str) -> str | None:
    """Commit, or (the database cannot be written: full disk, read-only file) roll back, log
    and return why. For the paths that must keep working then: login, logout, the e-stop.

    Returns:
        None when committed; otherwise a sentence saying what was not written.
    """
    try:
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        cause = getattr(exc, "orig", None) or exc
        problem = (f"{what} could not be written to the database ({type(exc).__name__}: "
                   f"{str(cause)[:200]}); is its disk full?")
        log.error("%s", problem)
        return problem
    return None


# Lookups depend on CurrentUser, so an anonymous caller gets 401 before learning whether
# an id exists; handlers list their role dependency before the lookup for the same reason.
def run_or_404(run_id: Id, db: DbSession, _user: CurrentUser) -> Run:
    run = runs.get_run(db, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id}: no such run")
    return run


def episode_or_404(episode_id: Id, db: DbSession, _user: CurrentUser) -> Episode:
    episode = episodes.get_episode(db, episode_id)
    if episode is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"episode {episode_id}: no such episode")
    return episode


RunOr404 = Annotated[Run, Depends(run_or_404)]
EpisodeOr404 = Annotated[Episode, Depends(episode_or_404)]
