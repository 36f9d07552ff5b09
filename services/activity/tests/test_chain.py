"""The hash chain's rules, as pure functions (no database)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from agenthq_activity.activity.chain import (
    GENESIS,
    NO_TEAM,
    ChainHead,
    chain_key,
    content_bytes,
    record_hash,
    verify_chain,
)
from agenthq_activity.activity.partitions import Month
from agenthq_activity.activity.repository import NewRecord
from agenthq_activity.activity.search import ActivityFilter, prefix_bounds

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_chain(n: int, team: uuid.UUID | None = None) -> list[NewRecord]:
    team = team or uuid.uuid4()
    records, prev = [], GENESIS
    for i in range(1, n + 1):
        record = NewRecord(
            id=uuid.uuid4(),
            event_id=uuid.uuid4(),
            team_id=team,
            user_id=uuid.uuid4(),
            action="task.created",
            resource_type="task",
            resource_id=f"t-{i}",
            metadata=None,
            ip_address="203.0.113.9",
            user_agent="ua",
            created_at=T0 + timedelta(seconds=i),
            seq=i,
            metadata_text=f'{{"n": {i}}}',
            prev_hash=prev,
        )
        record.hash = record_hash(prev, record)
        prev = record.hash
        records.append(record)
    return records


def head_of(records: list[NewRecord]) -> ChainHead:
    return ChainHead(1, GENESIS, records[-1].seq, records[-1].hash)


async def stream(records: Iterable[Any]) -> AsyncIterator[Any]:
    for record in records:
        yield record


async def test_an_intact_chain_verifies() -> None:
    chain = make_chain(5)
    result = await verify_chain(head_of(chain), stream(chain))
    assert (result.valid, result.checked, result.first_invalid_id) == (True, 5, None)


async def test_an_empty_chain_without_head_verifies() -> None:
    result = await verify_chain(None, stream([]))
    assert (result.valid, result.checked) == (True, 0)


async def test_edited_content_is_the_first_invalid_record() -> None:
    chain = make_chain(5)
    head = head_of(chain)
    chain[2] = replace(chain[2], metadata_text='{"n": 999}')
    result = await verify_chain(head, stream(chain))
    assert not result.valid
    assert result.first_invalid_id == chain[2].id
    assert result.checked == 3
    assert "content" in (result.reason or "")


async def test_rewritten_hash_breaks_the_next_link() -> None:
    chain = make_chain(5)
    head = head_of(chain)
    forged = replace(chain[1], action="member.removed")
    forged.hash = record_hash(forged.prev_hash, forged)
    chain[1] = forged
    result = await verify_chain(head, stream(chain))
    assert result.first_invalid_id == chain[2].id
    assert "link" in (result.reason or "")


async def test_a_missing_record_names_the_one_after_the_gap() -> None:
    chain = make_chain(5)
    head = head_of(chain)
    del chain[2]
    result = await verify_chain(head, stream(chain))
    assert result.first_invalid_id == chain[2].id  # the record with seq 4
    assert "missing" in (result.reason or "")


async def test_records_cut_off_the_end_disagree_with_the_head() -> None:
    chain = make_chain(5)
    head = head_of(chain)
    result = await verify_chain(head, stream(chain[:3]))
    assert not result.valid
    assert result.first_invalid_id is None
    assert result.checked == 3
    assert "end" in (result.reason or "")


async def test_a_duplicated_record_is_caught() -> None:
    chain = make_chain(3)
    result = await verify_chain(head_of(chain), stream([chain[0], chain[0], *chain[1:]]))
    assert not result.valid
    assert result.first_invalid_id == chain[0].id


async def test_a_chain_pruned_by_retention_verifies_from_its_anchor() -> None:
    chain = make_chain(6)
    kept = chain[3:]
    head = ChainHead(4, chain[2].hash, 6, chain[-1].hash)
    assert (await verify_chain(head, stream(kept))).valid
    wrong_anchor = ChainHead(4, GENESIS, 6, chain[-1].hash)
    assert (await verify_chain(wrong_anchor, stream(kept))).first_invalid_id == kept[0].id


def test_canonical_content_ignores_the_text_form_of_addresses_and_times() -> None:
    (record,) = make_chain(1)
    as_read = replace(
        record,
        ip_address=ipaddress.ip_address("203.0.113.9"),  # type: ignore[arg-type]
        created_at=record.created_at.astimezone(datetime.now().astimezone().tzinfo),
    )
    assert content_bytes(as_read) == content_bytes(record)
    v6 = replace(record, ip_address="2001:DB8:0:0::1")
    assert content_bytes(v6) == content_bytes(replace(record, ip_address="2001:db8::1"))


def test_every_field_is_covered_by_the_hash() -> None:
    (record,) = make_chain(1)
    changes = {
        "seq": 2,
        "id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "team_id": uuid.uuid4(),
        "user_id": None,
        "action": "task.deleted",
        "resource_type": "x",
        "resource_id": "y",
        "metadata_text": "{}",
        "ip_address": "203.0.113.10",
        "user_agent": "other",
        "created_at": record.created_at + timedelta(microseconds=1),
    }
    for column, value in changes.items():
        assert record_hash(GENESIS, replace(record, **{column: value})) != record.hash, column


def test_events_without_a_team_share_the_nil_chain() -> None:
    team = uuid.uuid4()
    assert chain_key(team) == team
    assert chain_key(None) == NO_TEAM


def test_prefix_bounds_cover_exactly_the_prefix() -> None:
    low, high = prefix_bounds("member.")
    assert (low, high) == ("member.", "member/")
    assert high is not None
    assert low <= "member.added" < high
    assert not (low <= "members" < high)
    assert prefix_bounds(chr(0xD7FF)) == (chr(0xD7FF), chr(0xE000))
    assert prefix_bounds("a" + chr(0x10FFFF)) == ("a" + chr(0x10FFFF), "b")
    assert prefix_bounds(chr(0x10FFFF)) == (chr(0x10FFFF), None)


def test_filter_sql_is_parameterised() -> None:
    args: list[Any] = []
    team = uuid.uuid4()
    sql = ActivityFilter(team, action_prefix="x'; DROP TABLE activity_logs; --", q="a").where(args)
    assert "DROP" not in sql
    assert args[0] == team
    assert "x'; DROP TABLE activity_logs; --" in args


def test_months() -> None:
    assert Month.of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)).next() == Month(2027, 1)
    assert Month(2026, 11).plus(-11) == Month(2025, 12)
    assert Month(2026, 11).name == "activity_logs_p2026_11"
    assert Month.from_name("activity_logs_p2026_11") == Month(2026, 11)
    assert Month.from_name("activity_chains") is None
    assert Month(9999, 12).next().start == "10000-01-01 00:00:00+00"
    assert not Month(9999, 12).ends_before(datetime(9999, 12, 31, tzinfo=UTC))
    assert Month(2026, 10).ends_before(datetime(2026, 11, 1, tzinfo=UTC))
    # The month of a time is its UTC month: 08:00 on 1 December in Seoul is November.
    seoul = datetime(2026, 12, 1, 8, 0, tzinfo=timezone(timedelta(hours=9)))
    assert Month.of(seoul) == Month(2026, 11)
