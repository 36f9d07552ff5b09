"""The unit of work and the driver connection under it, against the real database."""

from __future__ import annotations

import uuid

import pytest

from agenthq_common.db import Database, driver_connection
from agenthq_common.events import registry
from agenthq_common.inbox import EventConsumer, ParsedEvent


class Rollback(Exception):
    pass


async def test_driver_connection_used_first_is_inside_the_unit_of_work(
    common_db: Database,
) -> None:
    """Used before any SQLAlchemy statement, the asyncpg connection must still be
    in the unit of work's transaction: its writes roll back with it."""
    event_id = uuid.uuid4()
    with pytest.raises(Rollback):
        async with common_db.unit_of_work() as uow:
            conn = await driver_connection(uow.session)
            assert conn.is_in_transaction()
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, event_type) VALUES ('t', $1, 'x')",
                event_id,
            )
            raise Rollback
    async with common_db.driver_connection() as conn:
        assert not conn.is_in_transaction()
        found = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event_id)
    assert found == 0


async def test_batch_handlers_get_each_new_event_once_in_order(common_db: Database) -> None:
    consumer = EventConsumer(f"batch-{uuid.uuid4().hex[:6]}", common_db, registry)
    seen: list[list[str]] = []

    @consumer.on_batch("team.*")
    async def collect(events: list[ParsedEvent], _: object) -> None:
        seen.append([e.data["name"] for e, _ in events])

    team_id = uuid.uuid4()
    events = [
        registry.create(
            "team.updated",
            {"team_id": team_id, "name": f"n{i}"},
            source="agenthq/test",
            team_id=team_id,
        )
        for i in range(3)
    ]
    other = registry.create(
        "member.added",
        {"team_id": team_id, "user_id": uuid.uuid4(), "role": "member"},
        source="agenthq/test",
        team_id=team_id,
    )
    async with common_db.unit_of_work() as uow:
        await consumer._apply(uow, [(e, None) for e in [events[0], other, events[1], events[0]]])
    async with common_db.unit_of_work() as uow:
        await consumer._apply(uow, [(e, None) for e in [events[1], events[2]]])
    assert seen == [["n0", "n1"], ["n2"]]
    assert consumer.bindings == ["team.*"]
