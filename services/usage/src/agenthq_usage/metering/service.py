"""Metering: usage events from the bus and from HTTP ingest become exact
daily counters. Every event id is counted once, ever, whichever way it came."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import asyncpg

from agenthq_common.db import UnitOfWork, driver_connection
from agenthq_common.events import CloudEvent
from agenthq_usage.metering.repository import Metered, UsageRepository

# Event type -> (metric, how much of it one event is).
METERED_TYPES: dict[str, str] = {
    "task.created": "tasks_created",
    "task.completed": "tasks_completed",
    "llm.tokens.used": "llm_tokens_used",
    "api.calls": "api_calls",
    "storage.changed": "storage_bytes",
}


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def quantity_of(event: CloudEvent) -> int:
    data = event.data
    match event.type:
        case "task.created" | "task.completed":
            return 1
        case "llm.tokens.used":
            return int(data["tokens"])
        case "api.calls":
            return int(data["count"])
        case "storage.changed":
            return int(data["delta_bytes"])
    raise ValueError(f"{event.type} is not metered")


def metered_from_event(event: CloudEvent) -> Metered:
    return Metered(
        event_id=event.id,
        team_id=event.teamid,
        user_id=event.actorid,
        metric=METERED_TYPES[event.type],
        quantity=quantity_of(event),
        occurred_at=_utc(event.time),
        source="bus",
    )


async def count(uow: UnitOfWork, events: Sequence[Metered]) -> list[asyncpg.Record]:
    """Count what is new among ``events`` (in the caller's transaction)."""
    return await UsageRepository(await driver_connection(uow.session)).count(events)


def month_bounds(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return first, end


async def daily(
    uow: UnitOfWork, team_id: uuid.UUID, first: date, last: date
) -> list[dict[str, object]]:
    """Every day of [first, last], zero-filled, so a chart needs no gaps filled."""
    rows = {
        r["date"]: dict(r)
        for r in await UsageRepository(await driver_connection(uow.session)).daily(
            team_id, first, last
        )
    }
    # Counted, not stepped past ``last``: the day after 9999-12-31 does not exist.
    every_day = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [rows.get(day) or {"date": day} for day in every_day]


async def monthly(uow: UnitOfWork, team_id: uuid.UUID, year: int, month: int) -> dict[str, int]:
    first, end = month_bounds(year, month)
    return await UsageRepository(await driver_connection(uow.session)).totals(team_id, first, end)
