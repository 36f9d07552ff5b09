"""Quota enforcement at the edge, from the gateway's own read model.

The usage service publishes ``usage.quota_exceeded`` when a team reaches a
hard limit; from then until the period (UTC month) ends or the team's plan
changes, the team's metered writes are refused here with ``429
quota_exceeded``, before they reach a service. Writes a team needs to get out
of that state stay open: changing the plan, deleting the team, removing
members.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from agenthq_common.db import Database, UnitOfWork
from agenthq_common.errors import TooManyRequests
from agenthq_common.events import CloudEvent
from agenthq_common.inbox import EventConsumer

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_TEAM_PATH = re.compile(r"^/v1/teams/([0-9a-fA-F-]{36})(/.*)?$")
# (method, path after the team id) that stay open while a quota is exceeded.
_ALWAYS_OPEN = [
    ("PUT", re.compile(r"^/plan$")),
    ("DELETE", re.compile(r"^$")),
    ("DELETE", re.compile(r"^/members/[^/]+$")),
]
CACHE_SECONDS = 1.0

_BLOCK = text(
    'INSERT INTO quota_blocks (team_id, metric, period, "limit", used, reached_at) '
    "VALUES (:team_id, :metric, :period, :limit, :used, :at) ON CONFLICT DO NOTHING"
)
_RESET = text(
    "INSERT INTO quota_resets (team_id, reset_at) VALUES (:team_id, :at) "
    "ON CONFLICT (team_id) DO UPDATE SET reset_at = greatest(quota_resets.reset_at, :at)"
)
_ACTIVE = text(
    'SELECT metric, "limit", used, period FROM quota_blocks b WHERE team_id = :team_id '
    "AND period = :period AND NOT EXISTS (SELECT 1 FROM quota_resets r "
    "WHERE r.team_id = b.team_id AND r.reset_at >= b.reached_at) ORDER BY metric LIMIT 1"
)


def team_of(path: str) -> tuple[uuid.UUID, str] | None:
    """The team a path is about, and the rest of the path."""
    found = _TEAM_PATH.match(path)
    if not found:
        return None
    try:
        return uuid.UUID(found[1]), found[2] or ""
    except ValueError:
        return None


def register_quota_handlers(consumer: EventConsumer) -> None:
    @consumer.on("usage.quota_exceeded")
    async def block(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        data = event.data
        await uow.session.execute(
            _BLOCK,
            {
                "team_id": uuid.UUID(str(data["team_id"])),
                "metric": data["metric"],
                "period": data["period"],
                "limit": int(data["limit"]),
                "used": int(data["used"]),
                "at": event.time,
            },
        )

    @consumer.on("team.plan_changed")
    async def reset(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        team_id = event.teamid or uuid.UUID(str(event.data["team_id"]))
        await uow.session.execute(_RESET, {"team_id": team_id, "at": event.time})


def _seconds_to_month_end(now: datetime) -> int:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return max(int((datetime(year, month, 1, tzinfo=UTC) - now).total_seconds()), 1)


class QuotaGuard:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[uuid.UUID, tuple[float, Any]] = {}

    async def _active(self, team_id: uuid.UUID, period: str) -> Any:
        cached = self._cache.get(team_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(_ACTIVE, {"team_id": team_id, "period": period})).first()
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[team_id] = (time.monotonic() + CACHE_SECONDS, row)
        return row

    async def check(self, method: str, path: str) -> None:
        if method not in WRITES:
            return
        scoped = team_of(path)
        if scoped is None:
            return
        team_id, rest = scoped
        if any(method == m and pattern.match(rest) for m, pattern in _ALWAYS_OPEN):
            return
        now = datetime.now(UTC)
        active = await self._active(team_id, f"{now.year:04d}-{now.month:02d}")
        if active is None:
            return
        raise TooManyRequests(
            f"The team has used its {active.metric} quota for {active.period} "
            f"({active.used} of {active.limit}); upgrade the plan or wait for the next period",
            code="quota_exceeded",
            details={
                "metric": active.metric,
                "limit": active.limit,
                "used": active.used,
                "period": active.period,
            },
            headers={"Retry-After": str(_seconds_to_month_end(now))},
        )
