from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from agenthq_activity.activity import service
from agenthq_activity.activity.schemas import ActivityOut
from agenthq_activity.models import ActivityLog
from agenthq_common.authz import require
from agenthq_common.deps import Uow
from agenthq_common.schemas import (
    Cursor,
    Limit,
    Page,
    decode_time_id_cursor,
    encode_time_id_cursor,
    paginate,
)

router = APIRouter(prefix="/v1/teams/{team_id}/activity", tags=["activity"])
CanReadActivity = require("activity:read")


def _out(row: ActivityLog) -> ActivityOut:
    return ActivityOut(
        id=row.id,
        team_id=row.team_id,
        user_id=row.user_id,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        metadata=row.metadata_,
        ip_address=str(row.ip_address) if row.ip_address is not None else None,
        user_agent=row.user_agent,
        created_at=row.created_at,
    )


@router.get("", response_model=Page[ActivityOut])
async def list_activity(
    member: CanReadActivity,
    uow: Uow,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[ActivityOut]:
    rows = await service.list_activity(
        uow, member.team_id, limit=limit + 1, before=decode_time_id_cursor(cursor), action=action
    )
    items, next_cursor = paginate(
        [_out(r) for r in rows], limit, lambda a: encode_time_id_cursor(a.created_at, a.id)
    )
    return Page[ActivityOut](items=items, next_cursor=next_cursor)
