"""The audit log of operator actions (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from robolearn.server import schemas
from robolearn.server.deps import CurrentAdmin, DbSession
from robolearn.store import audit

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
    total, rows = audit.list_entries(db, action=action, user_id=user_id, offset=offset,
                                     limit=limit)
    items = [
        schemas.AuditEntryPublic(id=e.id, user_id=e.user_id, username=name, action=e.action,
                                 target=e.target, detail=e.detail or {},
                                 created_at=e.created_at)
        for e, name in rows
    ]
    return schemas.Page[schemas.AuditEntryPublic](items=items, total=total, offset=offset,
                                                  limit=limit)
