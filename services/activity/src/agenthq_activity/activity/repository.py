"""SQL of the activity log, on the asyncpg connection of the unit of work.

Plain parameterised SQL rather than ORM statements: the log's hot paths are a
batch insert of hundreds of rows and reads of thousands, where SQLAlchemy's
per-row work would cost more than PostgreSQL's.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from agenthq_activity.activity.chain import ChainHead, chain_key, record_hash
from agenthq_activity.activity.search import ActivityFilter


class DuplicateRecords(Exception):
    """Some events of a batch are in the log already (the inbox should have
    stopped them): the batch is retried one event at a time."""


@dataclass(slots=True)
class NewRecord:
    """A record about to be appended; ``seq``, ``metadata_text`` and the
    hashes are filled in by ``append``."""

    id: uuid.UUID
    event_id: uuid.UUID
    team_id: uuid.UUID | None
    user_id: uuid.UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    metadata: str | None  # JSON text as the producer sent it
    ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | str | None
    user_agent: str | None
    created_at: datetime
    seq: int = 0
    metadata_text: str | None = None
    prev_hash: bytes = b""
    hash: bytes = field(default=b"")

    def __getitem__(self, column: str) -> Any:
        # Read like a database row, so one canonical form serves both.
        return getattr(self, column)


# What the API returns of a record; metadata as PostgreSQL's text of it.
RECORD_COLUMNS = (
    "id, team_id, user_id, action, resource_type, resource_id, metadata::text AS metadata, "
    "host(ip_address) AS ip_address, user_agent, created_at"
)
# What verification needs: the canonical content's columns and the links.
_CHAIN_COLUMNS = (
    "id, event_id, team_id, user_id, action, resource_type, resource_id, "
    "metadata::text AS metadata_text, ip_address, user_agent, created_at, seq, prev_hash, hash"
)

_CANONICAL_METADATA = (
    "SELECT m::jsonb::text FROM unnest($1::text[]) WITH ORDINALITY AS t(m, n) ORDER BY n"
)
# Locks the heads of the batch's chains (creating new ones) in key order, so
# that two consumers appending to the same teams queue up instead of deadlocking.
_LOCK_HEADS = """
INSERT INTO activity_chains (chain_key)
SELECT k FROM unnest($1::uuid[]) AS k ORDER BY k
ON CONFLICT (chain_key) DO UPDATE SET chain_key = excluded.chain_key
RETURNING chain_key, last_seq, last_hash
"""
_INSERT = """
INSERT INTO activity_logs (id, event_id, team_id, user_id, action, resource_type, resource_id,
    metadata, ip_address, user_agent, created_at, seq, prev_hash, hash)
SELECT id, event_id, team_id, user_id, action, resource_type, resource_id,
    metadata::jsonb, ip_address::inet, user_agent, created_at, seq, prev_hash, hash
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::bigint[], $13::bytea[],
    $14::bytea[])
    AS r(id, event_id, team_id, user_id, action, resource_type, resource_id, metadata,
         ip_address, user_agent, created_at, seq, prev_hash, hash)
ON CONFLICT DO NOTHING
RETURNING event_id
"""
_UPDATE_HEADS = """
UPDATE activity_chains AS c SET last_seq = h.last_seq, last_hash = h.last_hash
FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) AS h(chain_key, last_seq, last_hash)
WHERE c.chain_key = h.chain_key
"""


class ActivityRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def append(self, records: Sequence[NewRecord]) -> int:
        """Append ``records`` to their chains, in order; returns how many were new."""
        if not records:
            return 0
        canonical = await self.conn.fetch(_CANONICAL_METADATA, [r.metadata for r in records])
        keys = sorted({chain_key(r.team_id) for r in records})
        heads = {
            row["chain_key"]: (row["last_seq"], bytes(row["last_hash"]))
            for row in await self.conn.fetch(_LOCK_HEADS, keys)
        }
        for record, (metadata_text,) in zip(records, canonical, strict=True):
            key = chain_key(record.team_id)
            last_seq, last_hash = heads[key]
            record.metadata_text = metadata_text
            record.seq = last_seq + 1
            record.prev_hash = last_hash
            record.hash = record_hash(last_hash, record)
            heads[key] = (record.seq, record.hash)
        columns: list[list[Any]] = [[] for _ in range(14)]
        for r in records:
            for column, value in zip(
                columns,
                (
                    r.id,
                    r.event_id,
                    r.team_id,
                    r.user_id,
                    r.action,
                    r.resource_type,
                    r.resource_id,
                    r.metadata_text,
                    str(r.ip_address) if r.ip_address is not None else None,
                    r.user_agent,
                    r.created_at,
                    r.seq,
                    r.prev_hash,
                    r.hash,
                ),
                strict=True,
            ):
                column.append(value)
        inserted = await self.conn.fetch(_INSERT, *columns)
        if len(inserted) != len(records):
            if len(records) > 1:
                # The chain positions handed out assumed every record was new.
                raise DuplicateRecords(f"{len(records) - len(inserted)} already recorded")
            return 0  # one record, already there: the head stays where it was
        await self.conn.execute(
            _UPDATE_HEADS,
            list(heads),
            [seq for seq, _ in heads.values()],
            [digest for _, digest in heads.values()],
        )
        return len(inserted)

    async def page(
        self,
        where: ActivityFilter,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[asyncpg.Record]:
        """Newest first, after the keyset position ``before``."""
        args: list[Any] = []
        condition = where.where(args)
        if before is not None:
            at, ident = before
            args.extend([at, ident])
            n = len(args)
            # The plain bound lets PostgreSQL skip newer partitions entirely.
            condition += f" AND created_at <= ${n - 1} AND (created_at, id) < (${n - 1}, ${n})"
        args.append(limit)
        return await self.conn.fetch(
            f"SELECT {RECORD_COLUMNS} FROM activity_logs WHERE {condition} "
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )

    def stream(self, where: ActivityFilter, *, prefetch: int = 1000) -> AsyncIterator[Any]:
        """Every matching record, newest first, read through a server-side cursor
        (call inside a transaction)."""
        args: list[Any] = []
        condition = where.where(args)
        return self.conn.cursor(
            f"SELECT {RECORD_COLUMNS} FROM activity_logs WHERE {condition} "
            "ORDER BY created_at DESC, id DESC",
            *args,
            prefetch=prefetch,
        ).__aiter__()

    async def chain_head(self, key: uuid.UUID) -> ChainHead | None:
        row = await self.conn.fetchrow(
            "SELECT first_seq, anchor_hash, last_seq, last_hash FROM activity_chains "
            "WHERE chain_key = $1",
            key,
        )
        if row is None:
            return None
        return ChainHead(
            row["first_seq"], bytes(row["anchor_hash"]), row["last_seq"], bytes(row["last_hash"])
        )

    def chain_records(self, team_id: uuid.UUID, *, prefetch: int = 2000) -> AsyncIterator[Any]:
        """One team's records in chain order (call inside a transaction)."""
        return self.conn.cursor(
            f"SELECT {_CHAIN_COLUMNS} FROM activity_logs WHERE team_id = $1 ORDER BY seq",
            team_id,
            prefetch=prefetch,
        ).__aiter__()
