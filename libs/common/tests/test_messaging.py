"""The outbox -> RabbitMQ -> inbox pipeline against the real database and broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from typing import Any

import aio_pika
import pytest
from sqlalchemy import func, insert, select

from agenthq_common.bus import Bus
from agenthq_common.db import Database, UnitOfWork
from agenthq_common.events import CloudEvent, registry
from agenthq_common.inbox import EventConsumer
from agenthq_common.outbox import OutboxRelay
from agenthq_common.plumbing import inbox, outbox
from agenthq_common.testing.plugin import eventually

from .conftest import effects


def make_event(team_id: uuid.UUID | None = None, type_: str = "team.updated") -> CloudEvent:
    team_id = team_id or uuid.uuid4()
    return registry.create(
        type_,
        {"team_id": team_id, "name": "n"},
        source="agenthq/test",
        subject=f"team/{team_id}",
        team_id=team_id,
    )


def recording_consumer(db: Database, name: str, pattern: str = "team.*") -> EventConsumer:
    consumer = EventConsumer(name, db, registry)

    @consumer.on(pattern)
    async def apply(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        await uow.session.execute(insert(effects).values(event_id=event.id, consumer=name))

    return consumer


async def effect_count(db: Database, consumer: str, event_id: uuid.UUID | None = None) -> int:
    query = select(func.count()).select_from(effects).where(effects.c.consumer == consumer)
    if event_id is not None:
        query = query.where(effects.c.event_id == event_id)
    async with db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


@contextlib.asynccontextmanager
async def running_relay(relay: OutboxRelay):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def queue_name() -> str:
    return f"test.q{uuid.uuid4().hex[:8]}"


async def test_committed_event_is_published_and_applied_once(common_db: Database, bus: Bus) -> None:
    name = queue_name()
    consumer = recording_consumer(common_db, name)
    await consumer.start(bus)
    event = make_event()
    async with running_relay(OutboxRelay(common_db, bus, poll_interval=5.0)):
        async with common_db.unit_of_work() as uow:
            uow.publish(event)
        # The NOTIFY wakes the relay long before its 5 s poll would.
        await eventually(lambda: effect_count(common_db, name, event.id), within=4.0)
    async with common_db.engine.connect() as conn:
        row = (await conn.execute(select(outbox).where(outbox.c.event_id == event.id))).one()
    assert row.published_at is not None
    assert await effect_count(common_db, name, event.id) == 1


async def test_rolled_back_unit_of_work_publishes_nothing(common_db: Database, bus: Bus) -> None:
    name = queue_name()
    consumer = recording_consumer(common_db, name)
    await consumer.start(bus)
    doomed, kept = make_event(), make_event()
    async with running_relay(OutboxRelay(common_db, bus, poll_interval=0.2)):
        with pytest.raises(RuntimeError):
            async with common_db.unit_of_work() as uow:
                uow.publish(doomed)
                await uow.flush_events()  # even a flushed row goes with the rollback
                raise RuntimeError("the change failed")
        async with common_db.unit_of_work() as uow:
            uow.publish(kept)
        # The later event arriving proves the relay ran past where the doomed one was.
        await eventually(lambda: effect_count(common_db, name, kept.id))
    async with common_db.engine.connect() as conn:
        doomed_rows = (
            await conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.event_id == doomed.id)
            )
        ).scalar_one()
    assert doomed_rows == 0
    assert await effect_count(common_db, name, doomed.id) == 0


async def test_duplicate_delivery_has_one_effect(common_db: Database, bus: Bus) -> None:
    name = queue_name()
    consumer = recording_consumer(common_db, name)
    await consumer.start(bus)
    event = make_event()
    await bus.publish(event)
    await bus.publish(event)
    marker = make_event()
    await bus.publish(marker)
    await eventually(lambda: effect_count(common_db, name, marker.id))
    await asyncio.sleep(0.2)
    assert await effect_count(common_db, name, event.id) == 1
    async with common_db.engine.connect() as conn:
        recorded = (
            await conn.execute(
                select(func.count())
                .select_from(inbox)
                .where(inbox.c.consumer == name, inbox.c.event_id == event.id)
            )
        ).scalar_one()
    assert recorded == 1


async def test_consumer_killed_between_effect_and_ack(
    common_db: Database, infra: Any, bus_namespace: str
) -> None:
    """The effect commits, the process dies before its ack: the broker redelivers
    to the next consumer, whose inbox recognises the event."""
    name = queue_name()
    doomed_bus = Bus(infra.broker_url, namespace=bus_namespace)
    await doomed_bus.connect()
    consumer = recording_consumer(common_db, name)
    applied = asyncio.Event()

    async def apply_then_die(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await consumer.handle_message(message)
        applied.set()
        await asyncio.sleep(3600)  # never returns, so never acks

    await doomed_bus.consume(name, consumer.bindings, apply_then_die)
    event = make_event()
    await doomed_bus.publish(event)
    await asyncio.wait_for(applied.wait(), 10)
    assert await effect_count(common_db, name, event.id) == 1
    await doomed_bus.close()  # the "crash": the unacked delivery returns to the queue

    survivor = Bus(infra.broker_url, namespace=bus_namespace)
    await survivor.connect()
    try:
        redelivered = asyncio.Event()
        outcomes: list[bool] = []

        async def observe(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            outcomes.append(await consumer.handle(CloudEvent.from_bytes(message.body)))
            redelivered.set()

        await survivor.consume(name, consumer.bindings, observe)
        await asyncio.wait_for(redelivered.wait(), 10)
        assert outcomes == [False]  # recognised as already applied
        assert await effect_count(common_db, name, event.id) == 1
    finally:
        await survivor.close()


async def test_failing_message_is_retried_then_dead_lettered(common_db: Database, bus: Bus) -> None:
    name = queue_name()
    attempts: list[str] = []
    consumer = EventConsumer(name, common_db, registry)

    @consumer.on("team.*")
    async def always_fails(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        attempts.append(str(event.id))
        raise ValueError("a bug no retry fixes")

    await consumer.start(bus)
    event = make_event()
    await bus.publish(event)
    dead = await _dead_letters(bus, name, expect=1)
    # First delivery plus max_retries (2) retries, each backed off.
    assert attempts == [str(event.id)] * 3
    assert CloudEvent.from_bytes(dead[0]).id == event.id
    # A failed attempt rolled back: neither an effect nor an inbox row remains.
    async with common_db.engine.connect() as conn:
        assert (
            await conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.consumer == name)
            )
        ).scalar_one() == 0


async def test_an_outage_is_retried_past_the_retries_of_bad_messages(
    common_db: Database, bus: Bus
) -> None:
    """A dependency down for longer than every back-off together: the message
    waits for it (at the longest back-off) instead of being dead-lettered."""
    name = queue_name()
    attempts: list[str] = []
    consumer = EventConsumer(name, common_db, registry)

    @consumer.on("team.*")
    async def fails_while_down(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        attempts.append(str(event.id))
        if len(attempts) <= 5:  # max_retries is 2 here
            raise ConnectionError("Redis is restarting")
        await uow.session.execute(insert(effects).values(event_id=event.id, consumer=name))

    await consumer.start(bus)
    event = make_event()
    await bus.publish(event)
    await eventually(lambda: effect_count(common_db, name, event.id), within=10.0)
    assert attempts == [str(event.id)] * 6
    assert await _dead_letters(bus, name, expect=0) == []


async def test_unreadable_message_is_dead_lettered_at_once(common_db: Database, bus: Bus) -> None:
    name = queue_name()
    consumer = recording_consumer(common_db, name)
    await consumer.start(bus)
    await bus.publish_raw("team.updated", b"{not json", str(uuid.uuid4()))
    future = make_event()
    future_version = future.model_copy(update={"dataversion": "99"})
    await bus.publish(future_version)
    dead = await _dead_letters(bus, name, expect=2)
    assert b"{not json" in dead
    assert await effect_count(common_db, name) == 0


async def _dead_letters(bus: Bus, name: str, *, expect: int) -> list[bytes]:
    connection = await aio_pika.connect(bus.url)
    try:
        channel = await connection.channel()
        # Passive: the consumer declared it (classic or quorum, as its bus says).
        dlq = await channel.declare_queue(f"{bus.topology.queue(name)}.dlq", passive=True)
        bodies: list[bytes] = []

        async def collect() -> bool:
            message = await dlq.get(fail=False)
            if message is not None:
                bodies.append(message.body)
                await message.ack()
            return len(bodies) >= expect

        await eventually(collect, within=15.0)
        return bodies
    finally:
        await connection.close()


async def test_several_relays_publish_each_row_once(common_db: Database, bus: Bus) -> None:
    name = queue_name()
    received: Counter[str] = Counter()
    done = asyncio.Event()
    total = 600

    async def count(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received[message.message_id or ""] += 1
        if sum(received.values()) >= total:
            done.set()

    await bus.consume(name, ["team.*"], count)
    team = uuid.uuid4()
    for _ in range(total // 100):
        async with common_db.unit_of_work() as uow:
            for _ in range(100):
                uow.publish(make_event(team))
    relays = [OutboxRelay(common_db, bus, batch_size=50, poll_interval=0.1) for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for relay in relays:
            await stack.enter_async_context(running_relay(relay))
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.5)  # room for a duplicate to show up, were there one
    assert len(received) == total
    assert set(received.values()) == {1}


async def test_the_queues_are_of_the_configured_type(common_db: Database, bus: Bus) -> None:
    """The consumer's queue, its dead letters and its retry queues all have the
    bus's type: redeclaring them as the other type is refused by the broker."""
    name = queue_name()
    await recording_consumer(common_db, name).start(bus)
    other = "classic" if bus.queue_type == "quorum" else "quorum"
    queue = bus.topology.queue(name)
    for declared in (queue, f"{queue}.dlq", f"{queue}.retry.50ms"):
        connection = await aio_pika.connect(bus.url)
        try:
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(
                    declared, durable=True, arguments={"x-queue-type": other}
                )
        finally:
            await connection.close()


async def test_the_relay_puts_the_events_trace_context_in_the_message_headers(
    common_db: Database, bus: Bus
) -> None:
    """Without an exporter no span is made for the hop, but the consumer still
    continues the event's trace: the relay sends the envelope's traceparent."""
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    received: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message)

    await bus.consume(queue_name(), ["team.#"], keep)
    event = make_event().model_copy(update={"traceparent": traceparent})
    untraced = make_event()
    async with running_relay(OutboxRelay(common_db, bus, poll_interval=5.0)):
        async with common_db.unit_of_work() as uow:
            uow.publish(event)
            uow.publish(untraced)

        async def both() -> bool:
            return len(received) == 2

        await eventually(both, within=4.0)
    headers = {m.message_id: dict(m.headers or {}) for m in received}
    assert headers[str(event.id)]["traceparent"] == traceparent
    assert "traceparent" not in headers[str(untraced.id)]
