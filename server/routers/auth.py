"""Login, logout, who am I, bearer tokens and password change."""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from robolearn.server import schemas
from robolearn.server.auth import CSRF_COOKIE, SESSION_COOKIE, hash_password, verify_password
from robolearn.server.deps import (
    CurrentUser,
    DbSession,
    Principal,
    ServicesDep,
    audit,
    commit_or_report,
)
from robolearn.server.users import check_password
from robolearn.store import users
from robolearn.store.models import User

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@router.post("/login", responses={401: {"model": schemas.Message},
                                  429: {"model": schemas.Message}})
def login(body: schemas.LoginRequest, request: Request, response: Response,
          services: ServicesDep, db: DbSession) -> schemas.LoginResponse:
    """Start a browser session: sets the HttpOnly session cookie and returns the CSRF token."""
    client = request.client.host if request.client else "unknown"
    keys = (f"ip:{client}", f"user:{body.username.lower()}")
    wait = services.limiter.retry_after(keys)
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many failed logins; try again in {wait:.0f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})
    user = users.find_user(db, body.username)
    # Always verify (a dummy hash for unknown names), so timing does not reveal valid names.
    ok = verify_password(user.password_hash if user else None, body.password)
    if not ok or user is None or not user.active:
        services.limiter.record_failure(keys)
        audit(db, None, "auth.login_failed", f"user:{body.username}", {"client": client})
        commit_or_report(db, f"audit entry of a failed login as {body.username!r}")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password, or "
                            "the account is deactivated")
    session = services.sessions.create(user.id)
    settings = services.config.server
    max_age = int(settings.session_lifetime_s)
    response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, httponly=True,
                        samesite="strict", secure=settings.cookie_secure, path="/")
    # Readable by the page's script (double submit); useless to another site (SameSite).
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=max_age, httponly=False,
                        samesite="strict", secure=settings.cookie_secure, path="/")
    audit(db, _principal(user), "auth.login", f"user:{user.username}", {"client": client})
    # Sessions live in memory: a full disk loses the audit entry (logged), not the login.
    commit_or_report(db, f"audit entry of {user.username!r} logging in")
    return schemas.LoginResponse(user=schemas.UserPublic.model_validate(user),
                                 csrf_token=session.csrf_token,
                                 expires_at=_at(session.expires_at))


def _principal(user: User) -> Principal:
    return Principal(user.id, user.username, user.role, "session")


@router.post("/logout")
def logout(user: CurrentUser, response: Response, services: ServicesDep,
           db: DbSession) -> schemas.Message:
    """End this browser session (a bearer token stays valid until it expires)."""
    if user.session_token is not None:
        services.sessions.revoke(user.session_token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    audit(db, user, "auth.logout", f"user:{user.username}")
    commit_or_report(db, f"audit entry of {user.username!r} logging out")
    return schemas.Message(detail="logged out")


@router.get("/me")
def me(user: CurrentUser, db: DbSession) -> schemas.UserPublic:
    """The logged-in user."""
    return schemas.UserPublic.model_validate(users.get_user(db, user.id))


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: schemas.TokenCreate, user: CurrentUser, services: ServicesDep,
                 db: DbSession) -> schemas.TokenPublic:
    """A bearer token for scripts, acting as the calling user with the same role."""
    row = users.get_user(db, user.id)
    lifetime = body.lifetime_s or services.config.server.token_lifetime_s
    token = services.tokens.issue(user.id, row.password_hash, lifetime)
    audit(db, user, "auth.token_create", f"user:{user.username}", {"lifetime_s": lifetime})
    db.commit()
    return schemas.TokenPublic(token=token, expires_at=_at(services.clock() + lifetime))


@router.post("/password")
def change_password(body: schemas.PasswordChange, user: CurrentUser, services: ServicesDep,
                    db: DbSession) -> schemas.Message:
    """Change your own password; ends all your sessions and revokes your tokens."""
    row = users.get_user(db, user.id)
    if not verify_password(row.password_hash, body.current_password):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "current password is wrong")
    check_password(body.new_password)
    if verify_password(row.password_hash, body.new_password):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "the new password is the current one; choose a different one")
    row.password_hash = hash_password(body.new_password)
    row.must_change_password = False
    audit(db, user, "auth.password_change", f"user:{user.username}")
    db.commit()
    services.sessions.revoke_user(user.id)
    return schemas.Message(detail="password changed; log in again")
