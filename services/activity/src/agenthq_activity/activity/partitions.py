"""Monthly partitions of ``activity_logs`` (declarative range partitioning on
``created_at``).

There is no default partition: a row lands only in its month's partition, and
that partition is created before the row is inserted (``ensure``). A default
partition would collect rows that then block creating their month's partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from agenthq_common.logging import get_logger

log = get_logger(__name__)

PARENT = "activity_logs"
_NAME = re.compile(r"^activity_logs_p(\d{4})_(\d{2})$")
# Serialises partition creation between replicas (pg_advisory_xact_lock key).
_LOCK_KEY = 0x61637469  # "acti"


@dataclass(frozen=True, order=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, at: datetime | date) -> Month:
        if isinstance(at, datetime) and at.tzinfo is not None:
            at = at.astimezone(UTC)
        return cls(at.year, at.month)

    @classmethod
    def from_name(cls, name: str) -> Month | None:
        found = _NAME.match(name)
        return cls(int(found[1]), int(found[2])) if found else None

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def plus(self, months: int) -> Month:
        index = self.year * 12 + (self.month - 1) + months
        return Month(index // 12, index % 12 + 1)

    @property
    def name(self) -> str:
        return f"{PARENT}_p{self.year:04d}_{self.month:02d}"

    @property
    def start(self) -> str:
        """The lower bound as a timestamptz literal (year 10000 has no datetime)."""
        return f"{self.year:04d}-{self.month:02d}-01 00:00:00+00"

    def starts_before(self, at: datetime) -> bool:
        return datetime(self.year, self.month, 1, tzinfo=UTC) < at

    def ends_before(self, at: datetime) -> bool:
        upper = self.next()
        if upper.year > 9999:
            return False
        return datetime(upper.year, upper.month, 1, tzinfo=UTC) <= at


class Partitions:
    """Knows which months exist; creates missing ones in a transaction of their own."""

    def __init__(self) -> None:
        self._known: set[Month] = set()

    async def existing(self, conn: asyncpg.Connection) -> list[Month]:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = $1",
            PARENT,
        )
        months = sorted(m for r in rows if (m := Month.from_name(r["relname"])) is not None)
        self._known = set(months)
        return months

    def reset(self) -> None:
        """Forget what we knew (another replica dropped a partition)."""
        self._known.clear()

    def missing(self, months: set[Month]) -> set[Month]:
        return months - self._known

    async def ensure(self, conn: asyncpg.Connection, months: set[Month]) -> None:
        """Create the partitions of ``months`` that do not exist yet.

        ``conn`` must not be inside a transaction that holds locks on the
        log: creating a partition locks the parent table exclusively, and a
        consumer that held row locks meanwhile could deadlock with another.
        """
        missing = months - self._known
        if not missing:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await self.existing(conn)
            for month in sorted(missing - self._known):
                await conn.execute(
                    f'CREATE TABLE IF NOT EXISTS "{month.name}" PARTITION OF {PARENT} '
                    f"FOR VALUES FROM ('{month.start}') TO ('{month.next().start}')"
                )
                log.info("activity partition created", partition=month.name)
        self._known |= missing
