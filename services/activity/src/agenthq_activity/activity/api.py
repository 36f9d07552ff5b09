from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from agenthq_activity.activity.export import ExportFormat
from agenthq_activity.activity.schemas import ActivityOut, VerificationOut
from agenthq_activity.activity.search import ActivityFilter
from agenthq_activity.activity.service import ActivityLog
from agenthq_common.authz import require
from agenthq_common.deps import Uow, get_service
from agenthq_common.errors import Unprocessable
from agenthq_common.schemas import (
    Cursor,
    IsoDateTime,
    Limit,
    Page,
    decode_time_id_cursor,
    encode_time_id_cursor,
    paginate,
)

router = APIRouter(prefix="/v1/teams/{team_id}/activity", tags=["activity"])
CanReadActivity = require("activity:read")


def activity_log(request: Request) -> ActivityLog:
    return get_service(request).component(ActivityLog)


Log = Annotated[ActivityLog, Depends(activity_log)]


def activity_filter(
    member: CanReadActivity,
    user_id: Annotated[uuid.UUID | None, Query(description="Only this actor's records")] = None,
    action: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="An event type (member.added), or a prefix ending in '.' or '*' "
            "(member. or member.*)",
        ),
    ] = None,
    resource_type: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    resource_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    since: Annotated[
        IsoDateTime | None,
        Query(description="From this time, inclusive (ISO 8601; UTC if no offset)"),
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="Before this time, exclusive")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Full-text search over action, resource and metadata: words "
            'match whole tokens; "quoted phrases", OR and -word as in web search engines',
        ),
    ] = None,
) -> ActivityFilter:
    # In UTC already (IsoDateTime): a time without an offset is UTC, so
    # ?since=2026-11-01 works.
    if since is not None and until is not None and since >= until:
        raise Unprocessable.field("until", "must be later than since")
    exact, prefix = action, None
    if action is not None and action.endswith(("*", ".")):
        exact, prefix = None, action.rstrip("*")
        if not prefix:
            raise Unprocessable.field("action", "a prefix needs at least one character before '*'")
    if q is not None and not any(ch.isalnum() for ch in q):
        raise Unprocessable.field("q", "must contain at least one letter or digit")
    return ActivityFilter(
        team_id=member.team_id,
        user_id=user_id,
        action=exact,
        action_prefix=prefix,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
        q=q,
    )


Filter = Annotated[ActivityFilter, Depends(activity_filter)]


def _out(row: Any) -> ActivityOut:
    metadata = row["metadata"]
    return ActivityOut(
        id=row["id"],
        team_id=row["team_id"],
        user_id=row["user_id"],
        action=row["action"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        metadata=json.loads(metadata) if metadata is not None else None,
        ip_address=row["ip_address"],
        user_agent=row["user_agent"],
        created_at=row["created_at"],
    )


@router.get("", response_model=Page[ActivityOut], summary="Search the team's activity log")
async def list_activity(
    where: Filter, log: Log, uow: Uow, limit: Limit = 50, cursor: Cursor = None
) -> Page[ActivityOut]:
    """Newest first. Pages are keyset pages: following ``next_cursor`` never
    repeats nor skips a record, however many arrive meanwhile."""
    rows = await log.page(uow, where, limit=limit + 1, before=decode_time_id_cursor(cursor))
    items, next_cursor = paginate(
        [_out(r) for r in rows], limit, lambda a: encode_time_id_cursor(a.created_at, a.id)
    )
    return Page[ActivityOut](items=items, next_cursor=next_cursor)


@router.get(
    "/export",
    summary="Download the team's activity log",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every matching record, newest first",
            "content": {"text/csv": {}, "application/x-ndjson": {}},
        }
    },
)
async def export_activity(
    where: Filter,
    log: Log,
    format: Annotated[ExportFormat, Query(description="csv or ndjson")] = ExportFormat.csv,
) -> StreamingResponse:
    """The same filters as the listing, streamed from one consistent snapshot."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"activity-{where.team_id}-{stamp}.{format.value}"
    return StreamingResponse(
        log.export(where, format),
        media_type=format.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/verify", response_model=VerificationOut, summary="Verify the team's hash chain")
async def verify_activity(member: CanReadActivity, log: Log) -> VerificationOut:
    """Recompute every retained record's hash and link, oldest first, and name
    the first that does not match."""
    result = await log.verify(member.team_id)
    return VerificationOut(
        valid=result.valid,
        checked=result.checked,
        first_invalid_id=result.first_invalid_id,
        reason=result.reason,
    )
