"""SQL of metering: one statement counts a batch exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from agenthq_usage.plans.catalog import METRICS


@dataclass(frozen=True, slots=True)
class Metered:
    """One metered event, whichever way it came in."""

    event_id: uuid.UUID
    team_id: uuid.UUID | None
    user_id: uuid.UUID | None
    metric: str
    quantity: int
    occurred_at: datetime
    source: str  # "bus" | "http"


_SUMS = ",\n    ".join(f"coalesce(sum(quantity) FILTER (WHERE metric = '{m}'), 0)" for m in METRICS)
_ADD = ", ".join(f"{m} = u.{m} + excluded.{m}" for m in METRICS)

# The ledger insert drops every event seen before (by the bus or by HTTP,
# today or a year ago); only what it inserted reaches the counters, added in
# the same statement. Days are UTC days of the event's own time, so late
# events land on the day they happened. Rows are upserted in key order so
# that concurrent batches queue instead of deadlocking.
_COUNT = f"""
WITH new AS (
    INSERT INTO metered_events (event_id, team_id, user_id, metric, quantity, occurred_at, source)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[],
                         $6::timestamptz[], $7::text[])
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, team_id, user_id, metric, quantity, occurred_at
), team_days AS (
    INSERT INTO usage_stats AS u (team_id, date, {", ".join(METRICS)})
    SELECT team_id, (occurred_at AT TIME ZONE 'UTC')::date,
    {_SUMS}
    FROM new WHERE team_id IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (team_id, date) DO UPDATE SET {_ADD}
), personal_days AS (
    INSERT INTO personal_usage_stats AS p (user_id, date, api_calls)
    SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date, sum(quantity)
    FROM new WHERE team_id IS NULL AND user_id IS NOT NULL AND metric = 'api_calls'
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (user_id, date) DO UPDATE SET api_calls = p.api_calls + excluded.api_calls
)
SELECT event_id, team_id, metric, occurred_at FROM new
"""


class UsageRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def count(self, events: Sequence[Metered]) -> list[asyncpg.Record]:
        """Count the events not counted before; returns those (event_id, team_id,
        metric, occurred_at)."""
        if not events:
            return []
        return await self.conn.fetch(
            _COUNT,
            [e.event_id for e in events],
            [e.team_id for e in events],
            [e.user_id for e in events],
            [e.metric for e in events],
            [e.quantity for e in events],
            [e.occurred_at for e in events],
            [e.source for e in events],
        )

    async def daily(self, team_id: uuid.UUID, first: date, last: date) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            f"SELECT date, {', '.join(METRICS)} FROM usage_stats "
            "WHERE team_id = $1 AND date >= $2 AND date <= $3 ORDER BY date",
            team_id,
            first,
            last,
        )

    async def totals(self, team_id: uuid.UUID, first: date, end: date) -> dict[str, int]:
        """Sums of the days in [first, end), as the seed's get_monthly_usage sums them."""
        row = await self.conn.fetchrow(
            "SELECT "
            + ", ".join(f"coalesce(sum({m}), 0)::bigint AS {m}" for m in METRICS)
            + " FROM usage_stats WHERE team_id = $1 AND date >= $2 AND date < $3",
            team_id,
            first,
            end,
        )
        return {m: int(row[m]) for m in METRICS}

    async def totals_of_teams(
        self, team_ids: list[uuid.UUID], first: date, end: date
    ) -> dict[uuid.UUID, dict[str, int]]:
        """``totals`` of many teams in one query (teams without usage are absent)."""
        rows = await self.conn.fetch(
            "SELECT team_id, "
            + ", ".join(f"sum({m})::bigint AS {m}" for m in METRICS)
            + " FROM usage_stats WHERE team_id = ANY($1::uuid[]) AND date >= $2 AND date < $3 "
            "GROUP BY team_id",
            team_ids,
            first,
            end,
        )
        return {r["team_id"]: {m: int(r[m]) for m in METRICS} for r in rows}

    async def storage_total(self, team_id: uuid.UUID, end: date) -> int:
        """Bytes stored at the end of the day before ``end``: every change before it."""
        total = await self.conn.fetchval(
            "SELECT coalesce(sum(storage_bytes), 0)::bigint FROM usage_stats "
            "WHERE team_id = $1 AND date < $2",
            team_id,
            end,
        )
        return int(total)
