"""User accounts: creation with validated names, roles and argon2 hashes; the first admin.

Shared by the REST routes and `robolearn user add`, so both refuse the same bad input.
"""

from __future__ import annotations

import logging
import re
import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from robolearn.errors import UserError
from robolearn.server.auth import hash_password
from robolearn.store import users
from robolearn.store.models import USER_ROLES, User

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256
FIRST_ADMIN = "admin"


def check_password(password: str) -> None:
    """Raises UserError if the password is too short or too long."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise UserError(
            f"password: needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, got "
            f"{len(password)}; a few random words make a good one"
        )


def create_user(db: Session, username: str, password: str, role: str) -> User:
    """Add a user (flushed, not committed: the caller commits with its audit entry).

    Raises:
        UserError: bad name, unknown role, weak password, or the name is taken.
    """
    if not USERNAME_RE.match(username):
        raise UserError(
            f"user name {username!r}: use 2 to 64 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit"
        )
    if role not in USER_ROLES:
        raise UserError(f"user {username!r}: role must be one of {USER_ROLES}, got {role!r}")
    check_password(password)
    if users.find_user(db, username) is not None:
        raise UserError(f"user {username!r} already exists; pick another name")
    return users.add_user(db, username, hash_password(password), role)


def ensure_first_admin(db: Session) -> str | None:
    """On a store with no users at all, create `admin` with a random password, which must
    be changed at the first login (the service refuses everything else until then).

    Returns:
        The one-time password (the caller shows it once), or None if users exist.
    """
    if users.count_users(db):
        return None
    password = secrets.token_urlsafe(15)
    try:
        user = create_user(db, FIRST_ADMIN, password, "admin")
        # It was printed to a terminal (and maybe a log): good for one login only.
        user.must_change_password = True
        db.commit()
    except IntegrityError:
        # Another process created it between our count and insert: it shows its password.
        db.rollback()
        return None
    log.info("created the first admin account %r", FIRST_ADMIN)
    return password
