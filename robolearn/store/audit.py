"""The audit log: append an operator's (or the system's) action, list entries with who did it.

Functions take an ORM session and leave committing to the caller, so an entry commits with
the change it describes: the log never claims an action that was rolled back, nor misses one
that stuck.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robolearn.store.models import AuditEntry, User


def add_entry(session: Session, action: str, target: str = "",
              detail: dict[str, Any] | None = None, user_id: int | None = None,
              created_at: dt.datetime | None = None) -> AuditEntry:
    """Add an entry to the session (not flushed, not committed).

    Args:
        action: dotted verb, e.g. "run.stop", "label.add".
        target: what it acted on, e.g. "episode:12".
        user_id: who acted; None for the system itself.
        created_at: when (default: the database's default, now).
    """
    entry = AuditEntry(action=action, target=target, detail=dict(detail or {}),
                       user_id=user_id)
    if created_at is not None:
        entry.created_at = created_at
    session.add(entry)
    return entry


def list_entries(session: Session, *, action: str | None = None, user_id: int | None = None,
                 offset: int = 0, limit: int = 100,
                 ) -> tuple[int, list[tuple[AuditEntry, str | None]]]:
    """Entries matching `action` and `user_id` (None: any), newest first.

    Returns:
        (how many match in all, this page of (entry, the acting user's name or None)).
    """
    where = []
    if action is not None:
        where.append(AuditEntry.action == action)
    if user_id is not None:
        where.append(AuditEntry.user_id == user_id)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    rows = session.execute(
        select(AuditEntry, User.username).outerjoin(User, AuditEntry.user_id == User.id)
        .where(*where).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    return total, [(entry, name) for entry, name in rows]



def last_entry(session: Session, action: str, target: str) -> AuditEntry | None:
    """The newest entry of `action` on `target` (e.g. "run.start" on "run:3")."""
    return session.scalars(select(AuditEntry)
                           .where(AuditEntry.action == action, AuditEntry.target == target)
                           .order_by(AuditEntry.id.desc()).limit(1)).first()
