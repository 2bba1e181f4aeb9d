"""User administration (admins only). Users are deactivated, never deleted: their labels,
answers and audit entries keep pointing at them."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status

from robolearn.server import schemas
from robolearn.server.auth import hash_password
from robolearn.server.deps import CurrentAdmin, DbSession, Id, ServicesDep, audit
from robolearn.server.users import check_password, create_user
from robolearn.store import users

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("")
def list_users(_admin: CurrentAdmin, db: DbSession) -> list[schemas.UserPublic]:
    """Every account, oldest first."""
    return [schemas.UserPublic.model_validate(u) for u in users.list_users(db)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: schemas.UserCreate, admin: CurrentAdmin, db: DbSession) -> schemas.UserPublic:
    """Add an account."""
    user = create_user(db, body.username, body.password, body.role)
    audit(db, admin, "user.create", f"user:{user.username}", {"role": user.role})
    db.commit()
    return schemas.UserPublic.model_validate(user)


@router.patch("/{user_id}")
def update(user_id: Id, body: schemas.UserUpdate, admin: CurrentAdmin, db: DbSession,
           services: ServicesDep) -> schemas.UserPublic:
    """Change a role, (de)activate, or reset a password. Deactivation or a new password ends
    the user's sessions and revokes their tokens."""
    user = users.get_user(db, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id}: no such user")
    demoting = (body.role not in (None, "admin") or body.active is False) and user.role == "admin"
    if demoting and user.active:
        if users.count_active_admins(db) <= 1:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"user {user.username!r} is the last active admin; make "
                                "another admin first")
    changes: dict[str, object] = {}
    if body.role is not None and body.role != user.role:
        changes["role"] = body.role
        user.role = body.role
    if body.active is not None and body.active != user.active:
        changes["active"] = body.active
        user.active = body.active
    if body.password is not None:
        check_password(body.password)
        user.password_hash = hash_password(body.password)
        # The admin knows it now: it is a one-time password for the user's next login.
        user.must_change_password = user.id != admin.id
        changes["password"] = "reset"
    audit(db, admin, "user.update", f"user:{user.username}", changes)
    db.commit()
    if "active" in changes or "password" in changes or "role" in changes:
        services.sessions.revoke_user(user.id)
    return schemas.UserPublic.model_validate(user)
