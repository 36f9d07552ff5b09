"""Recording, searching, exporting and verifying the activity log.

The log is append-only: nothing here updates or deletes a record; only the
retention job (``retention.py``) removes records, whole chain prefixes at a time.
"""

from __future__ import annotations

import ipaddress
import json
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from agenthq_activity.activity.chain import Verification, chain_key, verify_chain
from agenthq_activity.activity.export import ExportFormat, render
from agenthq_activity.activity.partitions import Month, Partitions
from agenthq_activity.activity.repository import ActivityRepository, NewRecord
from agenthq_activity.activity.search import ActivityFilter
from agenthq_common.db import Database, UnitOfWork, driver_connection
from agenthq_common.events import CloudEvent
from agenthq_common.logging import get_logger

log = get_logger(__name__)


def _valid_ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # A producer outside the project may send anything; an unparsable address
    # is dropped rather than failing the whole record. Parsed once: the hash
    # and the insert both use this object.
    if not value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _storable_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL nor lone surrogates; a producer may send both."""
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "\ufffd")


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _clip(value: str | None, length: int) -> str | None:
    return _storable_text(value[:length]) if value else None


def record_from_event(event: CloudEvent) -> NewRecord:
    resource_type, resource_id = event.resource
    at = event.time if event.time.tzinfo is not None else event.time.replace(tzinfo=UTC)
    return NewRecord(
        id=uuid.uuid4(),
        event_id=event.id,
        team_id=event.teamid,
        user_id=event.actorid,
        action=_storable_text(event.type[:100]),
        resource_type=_clip(resource_type, 50),
        resource_id=_clip(resource_id, 200),
        metadata=json.dumps(_storable(event.data), default=str),
        ip_address=_valid_ip(event.actorip),
        user_agent=_clip(event.actorua, 2000),
        created_at=at.astimezone(UTC),
    )


class ActivityLog:
    """The service's view of its log: owns the partition bookkeeping."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.partitions = Partitions()

    async def record(
        self, uow: UnitOfWork, events: Sequence[tuple[CloudEvent, BaseModel | None]]
    ) -> int:
        """Append one batch of events (inside the consumer's unit of work)."""
        records = [record_from_event(event) for event, _ in events]
        months = {Month.of(r.created_at) for r in records}
        if self.partitions.missing(months):
            async with self.db.driver_connection() as conn:
                await self.partitions.ensure(conn, months)
        try:
            return await ActivityRepository(await driver_connection(uow.session)).append(records)
        except asyncpg.CheckViolationError:
            # "no partition of relation found": another replica's retention
            # dropped a partition this one still believed in. Forget what we
            # knew; the redelivery creates it again.
            self.partitions.reset()
            raise

    async def page(
        self,
        uow: UnitOfWork,
        where: ActivityFilter,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[asyncpg.Record]:
        conn = await driver_connection(uow.session)
        return await ActivityRepository(conn).page(where, limit=limit, before=before)

    async def export(self, where: ActivityFilter, fmt: ExportFormat) -> AsyncIterator[bytes]:
        """The whole selection rendered in ``fmt``, in chunks, from one snapshot.

        Constant memory: rows come through a server-side cursor and leave as
        soon as a chunk is full, whatever the size of the selection.
        """
        async with self.db.driver_connection() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = ActivityRepository(conn).stream(where)
                async for chunk in render(rows, fmt):
                    yield chunk

    async def verify(self, team_id: uuid.UUID) -> Verification:
        """Recompute the team's chain from one snapshot (new records may arrive meanwhile)."""
        async with self.db.driver_connection() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                repository = ActivityRepository(conn)
                head = await repository.chain_head(chain_key(team_id))
                result = await verify_chain(head, repository.chain_records(team_id))
        if not result.valid:
            log.warning(
                "activity chain broken",
                team_id=str(team_id),
                first_invalid_id=str(result.first_invalid_id),
                reason=result.reason,
            )
        return result
