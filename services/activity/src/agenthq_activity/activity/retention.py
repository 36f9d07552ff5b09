"""Retention: each team keeps its plan's number of days of activity.

The chain must stay verifiable, so retention removes a *prefix* of each chain:
every record up to (not including) the first one that is still young enough.
Records arrive roughly in time order, so this is everything older than the
cut-off, except that an event which arrived late, after younger ones, waits
until the records before it in its chain expire too: it is kept at most its
retention period after it arrived. The chain's head then remembers where the
chain now starts and the hash the first kept record links to.

Months whose partitions retention has emptied are dropped whole.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from agenthq_activity.activity.chain import NO_TEAM
from agenthq_activity.activity.partitions import Month, Partitions
from agenthq_common.db import Database
from agenthq_common.logging import get_logger

log = get_logger(__name__)

# Only one replica applies retention at a time (pg_try_advisory_lock key).
_LOCK_KEY = 0x72657465  # "rete"


@dataclass(frozen=True)
class RetentionPolicy:
    days_by_plan: dict[str, int]
    default_days: int

    def days(self, plan: str | None) -> int:
        return self.days_by_plan.get(plan or "", self.default_days)

    @property
    def shortest(self) -> int:
        return min([self.default_days, *self.days_by_plan.values()])


@dataclass
class RetentionReport:
    ran: bool = True
    deleted: int = 0
    chains_pruned: int = 0
    partitions_dropped: list[str] = field(default_factory=list)


def _team_condition(key: uuid.UUID) -> tuple[str, list[object]]:
    if key == NO_TEAM:
        return "team_id IS NULL", []
    return "team_id = $1", [key]


async def _prune_chain(
    conn: asyncpg.Connection, key: uuid.UUID, cutoff: datetime, now: datetime
) -> int:
    """Delete the chain's prefix older than ``cutoff``; returns the records deleted."""
    where, args = _team_condition(key)
    n = len(args)
    async with conn.transaction():
        # The head's lock keeps the consumer from appending meanwhile.
        head = await conn.fetchrow(
            "SELECT first_seq, last_seq, last_hash FROM activity_chains "
            "WHERE chain_key = $1 FOR UPDATE",
            key,
        )
        if head is None:
            return 0
        first_young = await conn.fetchval(
            f"SELECT seq FROM activity_logs WHERE {where} "
            f"AND seq >= ${n + 1} AND created_at >= ${n + 2} ORDER BY seq LIMIT 1",
            *args,
            head["first_seq"],
            cutoff,
        )
        boundary = first_young if first_young is not None else head["last_seq"] + 1
        if boundary <= head["first_seq"]:
            return 0
        anchor = await conn.fetchval(
            f"SELECT hash FROM activity_logs WHERE {where} AND seq = ${n + 1}",
            *args,
            boundary - 1,
        )
        if anchor is None:  # the record is gone already; the head knows the last one
            anchor = head["last_hash"] if boundary - 1 == head["last_seq"] else None
        status = await conn.execute(
            f"DELETE FROM activity_logs WHERE {where} AND seq >= ${n + 1} AND seq < ${n + 2} "
            f"AND created_at < ${n + 3}",
            *args,
            head["first_seq"],
            boundary,
            cutoff,
        )
        await conn.execute(
            "UPDATE activity_chains SET first_seq = $2, "
            "anchor_hash = coalesce($3, anchor_hash), pruned_at = $4 WHERE chain_key = $1",
            key,
            boundary,
            anchor,
            now,
        )
        return int(status.split()[-1])


async def _drop_empty_partitions(
    conn: asyncpg.Connection, partitions: Partitions, before: datetime
) -> list[str]:
    dropped = []
    for month in await partitions.existing(conn):
        if not month.ends_before(before):
            continue
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{month.name}")'):
            continue
        await conn.execute(f'DROP TABLE IF EXISTS "{month.name}"')
        dropped.append(month.name)
    await partitions.existing(conn)
    return dropped


async def apply_retention(
    db: Database, partitions: Partitions, policy: RetentionPolicy, *, now: datetime | None = None
) -> RetentionReport:
    now = now or datetime.now(UTC)
    report = RetentionReport()
    async with db.driver_connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            return RetentionReport(ran=False)
        try:
            chains = await conn.fetch(
                "SELECT c.chain_key, t.plan FROM activity_chains c "
                "LEFT JOIN rm_teams t ON t.team_id = c.chain_key ORDER BY c.chain_key"
            )
            for chain in chains:
                cutoff = now - timedelta(days=policy.days(chain["plan"]))
                deleted = await _prune_chain(conn, chain["chain_key"], cutoff, now)
                if deleted:
                    report.deleted += deleted
                    report.chains_pruned += 1
            report.partitions_dropped = await _drop_empty_partitions(
                conn, partitions, now - timedelta(days=policy.shortest)
            )
            # The months about to be written get their partitions ahead of time.
            this_month = Month.of(now)
            await partitions.ensure(conn, {this_month, this_month.next()})
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    if report.deleted or report.partitions_dropped:
        log.info(
            "activity retention applied",
            deleted=report.deleted,
            chains=report.chains_pruned,
            partitions_dropped=report.partitions_dropped,
        )
    return report


async def run_periodically(
    db: Database, partitions: Partitions, policy: RetentionPolicy, interval: float
) -> None:
    while True:
        try:
            await apply_retention(db, partitions, policy)
        except Exception as exc:  # the next run tries again; the service stays up
            log.error("activity retention failed", error=repr(exc))
        await asyncio.sleep(interval)
