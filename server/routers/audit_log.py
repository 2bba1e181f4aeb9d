"""The audit log of operator actions (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from robolearn.store.models import AuditEntry, User
from server import schemas
from server.deps import CurrentAdmin, DbSession

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def list_entries(
    _admin: CurrentAdmin,
    db: DbSession,
    action: Annotated[str | None, Query(max_length=64, description="Exact action, "
                                        "e.g. run.stop")] = None,
    user_id: Annotated[int | None, Query(ge=1, le=schemas.INT64_MAX)] = None,
    offset: Annotated[int, Query(ge=0, le=schemas.INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> schemas.Page[schemas.AuditEntryPublic]:
    """Entries newest first, with the acting user's name (None: the system itself)."""
    where = []
    if action is not None:
        where.append(AuditEntry.action == action)
    if user_id is not None:
        where.append(AuditEntry.user_id == user_id)
    total = db.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    rows = db.execute(
        select(AuditEntry, User.username).outerjoin(User, AuditEntry.user_id == User.id)
        .where(*where).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    items = [
        schemas.AuditEntryPublic(id=e.id, user_id=e.user_id, username=name, action=e.action,
                                 target=e.target, detail=e.detail or {},
                                 created_at=e.created_at)
        for e, name in rows
    ]
    return schemas.Page[schemas.AuditEntryPublic](items=items, total=total, offset=offset,
                                                  limit=limit)
