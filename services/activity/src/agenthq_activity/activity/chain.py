"""The per-team hash chain that makes the activity log tamper-evident.

Every record stores ``seq`` (its position in its team's chain, in the order the
log received it), ``prev_hash`` (the hash of the record before it) and
``hash = sha256(prev_hash || canonical content)``. Editing a record breaks its
own hash; deleting one breaks the sequence; rewriting a record and its hash
breaks the next record's link; cutting records off the end disagrees with the
chain's head, kept in ``activity_chains``.

The chain follows arrival order, not ``created_at``: events arrive out of
order, and a chain ordered by event time would have to be rewritten whenever
a late event landed in its middle.

The canonical content is built only from values exactly as PostgreSQL gives
them back, so that verification recomputes the same bytes: the metadata as
its ``jsonb::text`` (PostgreSQL normalises JSON: key order, spacing, numbers),
addresses as their packed bytes (text forms of IPv6 differ between libraries),
times as integer microseconds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = bytes(32)  # prev_hash of a chain's first record
NO_TEAM = uuid.UUID(int=0)  # the chain of events that have no team
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def chain_key(team_id: uuid.UUID | None) -> uuid.UUID:
    return team_id if team_id is not None else NO_TEAM


def _micros(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _address(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        value = ipaddress.ip_address(str(value))
    return value.packed.hex()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def content_bytes(record: Any) -> bytes:
    """The canonical content of a record (a database row, or a ``NewRecord``)."""
    return json.dumps(
        [
            record["seq"],
            _text(record["id"]),
            _text(record["event_id"]),
            _text(record["team_id"]),
            _text(record["user_id"]),
            record["action"],
            record["resource_type"],
            record["resource_id"],
            record["metadata_text"],
            _address(record["ip_address"]),
            record["user_agent"],
            _micros(record["created_at"]),
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def record_hash(prev_hash: bytes, record: Any) -> bytes:
    return hashlib.sha256(prev_hash + content_bytes(record)).digest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """What ``activity_chains`` says about one chain: where it starts (after
    retention) and where it ends."""

    first_seq: int
    anchor_hash: bytes  # prev_hash the first retained record must carry
    last_seq: int
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    checked: int
    first_invalid_id: uuid.UUID | None
    reason: str | None


async def verify_chain(head: ChainHead | None, records: AsyncIterable[Any]) -> Verification:
    """Walk ``records`` (one chain, in ``seq`` order) and report the first break."""
    if head is None:
        head = ChainHead(1, GENESIS, 0, GENESIS)
    expected_seq, prev = head.first_seq, head.anchor_hash
    checked = 0
    async for record in records:
        checked += 1
        problem = None
        seq = record["seq"]
        if seq < expected_seq:
            problem = f"sequence number {seq} repeats or precedes {expected_seq}"
        elif seq > expected_seq:
            problem = f"records {expected_seq}..{seq - 1} before it are missing"
        elif bytes(record["prev_hash"]) != prev:
            problem = "its link to the previous record does not match"
        elif bytes(record["hash"]) != record_hash(prev, record):
            problem = "its content does not match its hash"
        if problem is not None:
            return Verification(False, checked, record["id"], problem)
        prev = bytes(record["hash"])
        expected_seq += 1
    if expected_seq - 1 != head.last_seq or prev != head.last_hash:
        return Verification(
            False,
            checked,
            None,
            f"the chain ends at record {expected_seq - 1} but its head is record "
            f"{head.last_seq}: records at the end are missing or were rewritten",
        )
    return Verification(True, checked, None, None)
