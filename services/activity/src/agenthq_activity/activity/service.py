"""Recording and reading the activity log. The log is append-only."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from typing import Any

from agenthq_activity.activity.repository import ActivityRepository
from agenthq_activity.models import ActivityLog
from agenthq_common.db import UnitOfWork
from agenthq_common.events import CloudEvent


def _valid_ip(value: str | None) -> str | None:
    # A producer outside the project may send anything; an unparsable address
    # is dropped rather than failing the whole record.
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _storable(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold NUL; a producer may still send it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def record_from_event(event: CloudEvent) -> dict[str, Any]:
    resource_type, resource_id = event.resource
    return {
        "id": uuid.uuid4(),
        "event_id": event.id,
        "team_id": event.teamid,
        "user_id": event.actorid,
        "action": _storable(event.type[:100]),
        "resource_type": _storable(resource_type[:50]) if resource_type else None,
        "resource_id": _storable(resource_id[:200]) if resource_id else None,
        "metadata_": _storable(event.data),
        "ip_address": _valid_ip(event.actorip),
        "user_agent": _storable(event.actorua),
        "created_at": event.time,
    }


async def record(uow: UnitOfWork, event: CloudEvent) -> None:
    await ActivityRepository(uow.session).append([record_from_event(event)])


async def list_activity(
    uow: UnitOfWork,
    team_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
    action: str | None,
) -> list[ActivityLog]:
    return await ActivityRepository(uow.session).list_for_team(
        team_id, limit=limit, before=before, action=action
    )
