"""Outbox -> RabbitMQ -> inbox versus raw aio-pika, on the same broker, in one run.

Pipeline: events are written in units of work to a scratch database's outbox;
an ``OutboxRelay`` task publishes them through a ``Bus``; an ``EventConsumer``
(on its own ``Bus`` connection and its own engine, as another service would
be) applies each one with its inbox row. An event's latency is the time from
the producer's commit (``perf_counter()`` right after the ``unit_of_work``
block exits) to the consumer's commit (right after ``EventConsumer.handle``
returns: its transaction has committed, the ack has not been sent yet).

Baseline: the same CloudEvent bodies, published persistent with publisher
confirms to a topic exchange and consumed (one ack each, same prefetch as the
Bus) from a durable queue bound to it, on the same broker. Latency is from
just before ``publish()`` to just after the consumer's ``ack()``.

Scenarios:

* throughput: ``--events`` events (5000) in batches of ``--batch`` (50), one
  unit of work (baseline: one ``gather`` of confirmed publishes) per batch,
  from ``--producers`` (4) concurrent tasks; events/s from the first commit
  (baseline: first publish) to the last consumer commit (baseline: last ack).
* latency: ``--rate`` (1000) events/s for ``--duration`` (5) s, one event per
  unit of work (baseline: per publish), each started by a scheduler at its
  target time (``asyncio.sleep`` to the next target; late ones start at once);
  at most ``--in-flight`` (10) units of work run at a time so that a producer
  that cannot keep up queues in the bench rather than exhausting the pool (the
  achieved rate shows it); p50/p95/p99/max commit-to-consume latency.

Goals: pipeline/baseline throughput >= 0.60, and pipeline p99 < 20 ms at
1,000 events/s. Missing them is a finding, not an error: the exit status is 0
unless ``--strict``. When a goal is missed (or with ``--costs``) a cost phase
follows: each component alone on the same events, with this process's CPU
time per event, plus two what-ifs that change only what the bench builds
(``pool_pre_ping`` off; one inbox transaction per batch of deliveries). A
per-stage breakdown of the pipeline's latency comes from timestamps taken by
wrapping the relay's and the consumer's methods in this process; no library
code is changed. ``--profile`` adds a cProfile of the pipeline scenarios.

Everything runs in this one process and event loop (producers, relay,
consumer, baseline), so both sides get the same CPU; absolute figures depend
on the machine. URLs: ``AGENTHQ_TEST_POSTGRES_URL``, ``AGENTHQ_TEST_BROKER_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
import asyncpg
import sqlalchemy.exc
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from agenthq_common.bus import Bus
from agenthq_common.db import Database, UnitOfWork
from agenthq_common.events import CloudEvent, registry
from agenthq_common.events.envelope import CONTENT_TYPE
from agenthq_common.inbox import EventConsumer
from agenthq_common.migrations import create_database_if_missing, drop_database
from agenthq_common.outbox import OutboxRelay
from agenthq_common.plumbing import inbox, plumbing_metadata

POSTGRES_URL = os.environ.get(
    "AGENTHQ_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
)
BROKER_URL = os.environ.get("AGENTHQ_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")

EVENT_TYPE = "team.updated"
CONSUMER_QUEUE = "bench.events"
THROUGHPUT_RATIO_GOAL = 0.60
P99_GOAL_MS = 20.0

now = time.perf_counter
cpu = time.process_time


# --------------------------------------------------------------------------- recording


class Incomplete(RuntimeError):
    """Not every event arrived in time, or some twice: the broker or the
    database was restarted under the run (another job may do that)."""


class Recorder:
    """Send and receive times of one scenario's events, keyed by event id (str)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.expected = set(keys)
        self.sent: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.done = asyncio.Event()
        if not self.expected:
            self.done.set()

    def mark_sent(self, keys: Sequence[str], t: float) -> None:
        for k in keys:
            self.sent[k] = t

    def mark_received(self, key: str, t: float) -> None:
        if key in self.expected and key not in self.received:
            self.received[key] = t
            if len(self.received) >= len(self.expected):
                self.done.set()

    async def wait(self, what: str, timeout: float | None = None) -> None:
        timeout = timeout or max(120.0, len(self.expected) / 20)
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            raise Incomplete(
                f"{what}: only {len(self.received)} of {len(self.expected)} events "
                f"arrived within {timeout:.0f} s"
            ) from None

    def latencies_ms(self) -> list[float]:
        return sorted((self.received[k] - self.sent[k]) * 1e3 for k in self.received)

    def throughput(self) -> float:
        span = max(self.received.values()) - min(self.sent.values())
        return len(self.received) / span

    def send_rate(self) -> float:
        times = sorted(self.sent.values())
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else math.nan


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": values[-1] if values else math.nan,
        "mean": statistics.fmean(values) if values else math.nan,
    }


def make_events(n: int) -> list[CloudEvent]:
    team = uuid.uuid4()
    return [
        registry.create(
            EVENT_TYPE,
            {"team_id": team, "name": f"bench team {i}"},
            source="agenthq/bench",
            subject=f"team/{team}",
            team_id=team,
        )
        for i in range(n)
    ]


def ids(events: Sequence[CloudEvent]) -> list[str]:
    return [str(e.id) for e in events]


def batched(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def run_producers(
    batches: Sequence[Any], producers: int, write: Callable[[Any], Awaitable[None]]
) -> None:
    """``producers`` tasks, each taking the next batch until none is left."""
    it = iter(batches)

    async def producer() -> None:
        for batch in it:  # no await between next() calls: safe to share
            await write(batch)

    await asyncio.gather(*(producer() for _ in range(producers)))


async def paced(
    count: int, rate: float, start_one: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """Start ``start_one(i)`` at ``t0 + i / rate`` (late ones at once)."""
    tasks: list[asyncio.Task[None]] = []
    t0 = now() + 0.02
    for i in range(count):
        delay = t0 + i / rate - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start_one(i)))
    await asyncio.gather(*tasks)


@dataclass
class Cost:
    """What a piece of work cost this process: wall time and CPU time."""

    events: int
    wall: float = 0.0
    cpu: float = 0.0

    @contextlib.contextmanager
    def measure(self) -> Iterator[Cost]:
        w, c = now(), cpu()
        try:
            yield self
        finally:
            self.wall, self.cpu = now() - w, cpu() - c

    def figures(self) -> dict[str, float]:
        return {
            "events": self.events,
            "events_per_s": self.events / self.wall,
            "cpu_ms_per_event": self.cpu / self.events * 1e3,
        }


# --------------------------------------------------------------------------- pipeline


@dataclass
class TimedConsumer(EventConsumer):
    """An EventConsumer that stamps each event when its inbox transaction committed."""

    recorder: Recorder | None = None
    delivered: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0

    async def handle_message(self, message: AbstractIncomingMessage) -> None:
        if message.message_id:
            self.delivered.setdefault(message.message_id, now())
        await super().handle_message(message)

    async def handle(self, event: CloudEvent) -> bool:
        applied = await super().handle(event)  # its unit of work has committed
        t = now()
        if not applied:
            self.duplicates += 1
        elif self.recorder is not None:
            self.recorder.mark_received(str(event.id), t)
        return applied


class Stages:
    """Timestamps from wrapping the relay's methods (one relay: passes are sequential)."""

    def __init__(self) -> None:
        self.pass_start: dict[str, float] = {}
        self.publish_start: dict[str, float] = {}
        self.confirmed: dict[str, float] = {}
        self.pass_end: dict[str, float] = {}
        self.passes: list[tuple[float, float, int]] = []  # (start, end, rows claimed)
        self._current = 0.0
        self._current_ids: list[str] = []
        self._pass_done = asyncio.Event()

    def clear(self) -> None:
        for d in (self.pass_start, self.publish_start, self.confirmed, self.pass_end):
            d.clear()
        self.passes.clear()

    def instrument(self, relay: OutboxRelay, bus: Bus) -> None:
        relay_once = relay.relay_once
        publish_many = bus.publish_many

        async def timed_relay_once() -> int:
            start = self._current = now()
            current: list[str] = []
            self._current_ids = current
            claimed = await relay_once()
            end = now()
            if claimed:
                self.passes.append((start, end, claimed))
                for k in current:
                    self.pass_end[k] = end
                self._pass_done.set()
            return claimed

        async def timed_publish_many(
            events: Sequence[tuple[str, bytes, str]],
        ) -> list[BaseException | None]:
            start = now()
            results = await publish_many(events)
            end = now()
            for _, _, mid in events:
                self.pass_start[mid] = self._current
                self.publish_start[mid] = start
                self.confirmed[mid] = end
                self._current_ids.append(mid)
            return results

        relay.relay_once = timed_relay_once  # type: ignore[method-assign]
        bus.publish_many = timed_publish_many  # type: ignore[method-assign]

    async def settled(self, keys: Sequence[str], timeout: float = 10.0) -> None:
        """Wait for the relay pass that published ``keys`` to commit (it may end
        after the consumer already applied the events)."""
        deadline = now() + timeout
        while any(k not in self.pass_end for k in keys) and now() < deadline:
            self._pass_done.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pass_done.wait(), max(0.0, deadline - now()))


class Pipeline:
    def __init__(self, tag: str, relay_batch: int | None, in_flight: int) -> None:
        self.tag = tag
        self.db_url = f"{POSTGRES_URL.rstrip('/')}/agenthq_bench_{tag}"
        self.namespace = f"bench-{tag}."
        self.relay_batch = relay_batch
        self.in_flight = in_flight
        self.stages = Stages()
        self.producer_db: Database | None = None
        self.consumer_db: Database | None = None
        self.producer_bus: Bus | None = None
        self.consumer_bus: Bus | None = None
        self.consumer: TimedConsumer | None = None
        self.relay: OutboxRelay | None = None
        self.relay_task: asyncio.Task[None] | None = None
        self._extra: list[Database | Bus] = []

    # -- lifecycle

    async def start(self) -> None:
        await create_database_if_missing(self.db_url)
        # The producing service and the consuming service: separate engines,
        # separate broker connections, one database (as in the messaging tests).
        self.producer_db = Database(self.db_url, service=f"bench{self.tag}")
        self.consumer_db = Database(self.db_url, service=f"benchconsumer{self.tag}")
        async with self.producer_db.engine.begin() as conn:
            await conn.run_sync(plumbing_metadata.create_all)
        self.producer_bus = Bus(BROKER_URL, namespace=self.namespace)
        await self.producer_bus.connect()

        self.consumer = TimedConsumer(CONSUMER_QUEUE, self.consumer_db, registry)

        @self.consumer.on(EVENT_TYPE)
        async def apply(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
            return None  # the inbox row is the effect

        kwargs = {"batch_size": self.relay_batch} if self.relay_batch else {}
        self.relay = OutboxRelay(self.producer_db, self.producer_bus, **kwargs)
        self.stages.instrument(self.relay, self.producer_bus)
        await self.start_consumer()
        self.start_relay()

    async def start_consumer(self) -> None:
        assert self.consumer is not None
        self.consumer_bus = Bus(BROKER_URL, namespace=self.namespace)
        await self.consumer_bus.connect()
        await self.consumer.start(self.consumer_bus)

    async def stop_consumer(self) -> None:
        """Close the consumer's connection: deliveries stop, the queue keeps filling."""
        if self.consumer_bus is not None:
            await self.consumer_bus.close()
            self.consumer_bus = None

    def start_relay(self) -> None:
        assert self.relay is not None
        self.relay_task = asyncio.create_task(self.relay.run(), name="bench-relay")

    async def stop_relay(self) -> None:
        if self.relay_task is not None:
            self.relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.relay_task
            self.relay_task = None

    async def close(self) -> None:
        await self.stop_relay()
        await self.stop_consumer()
        for thing in (self.producer_bus, *self._extra, self.consumer_db, self.producer_db):
            if thing is not None:
                with contextlib.suppress(Exception):
                    await (thing.close() if isinstance(thing, Bus) else thing.dispose())
        await drop_database(self.db_url)

    def queue_names(self) -> list[str]:
        topology = Bus(BROKER_URL, namespace=self.namespace).topology
        q = topology.queue(CONSUMER_QUEUE)
        retries = [f"{q}.retry.{i}" for i in range(1, Bus(BROKER_URL).max_retries + 1)]
        return [q, f"{q}.dlq", *retries]

    def exchange_names(self) -> list[str]:
        topology = Bus(BROKER_URL, namespace=self.namespace).topology
        return [topology.exchange, topology.dlx]

    def _recorder(self, events: Sequence[CloudEvent]) -> Recorder:
        assert self.consumer is not None
        recorder = Recorder(ids(events))
        self.consumer.recorder = recorder
        self.consumer.delivered.clear()
        self.consumer.duplicates = 0
        self.stages.clear()
        return recorder

    def check_undisturbed(self, what: str) -> None:
        assert self.consumer is not None
        if self.consumer.duplicates:
            raise Incomplete(f"{what}: {self.consumer.duplicates} redelivered events")

    # -- scenarios

    async def _write(self, events: Sequence[CloudEvent], recorder: Recorder | None) -> None:
        assert self.producer_db is not None
        async with self.producer_db.unit_of_work() as uow:
            for event in events:
                uow.publish(event)
        if recorder is not None:
            recorder.mark_sent(ids(events), now())

    async def throughput(self, events: list[CloudEvent], batch: int, producers: int) -> Recorder:
        recorder = self._recorder(events)
        await run_producers(
            batched(events, batch), producers, lambda chunk: self._write(chunk, recorder)
        )
        await recorder.wait("pipeline throughput")
        self.check_undisturbed("pipeline throughput")
        await self.stages.settled(list(recorder.received))
        return recorder

    async def latency(self, events: list[CloudEvent], rate: float) -> Recorder:
        recorder = self._recorder(events)
        gate = asyncio.Semaphore(self.in_flight)

        async def write_one(i: int) -> None:
            async with gate:
                await self._write([events[i]], recorder)

        await paced(len(events), rate, write_one)
        await recorder.wait("pipeline latency")
        self.check_undisturbed("pipeline latency")
        await self.stages.settled(list(recorder.received))
        return recorder

    def breakdown(self, recorder: Recorder) -> dict[str, dict[str, float]]:
        """Per-stage latency (ms) of the events of the last scenario."""
        assert self.consumer is not None
        s, delivered = self.stages, self.consumer.delivered
        sent, received = recorder.sent, recorder.received
        keys = [k for k in received if k in s.pass_end and k in delivered and k in sent]

        def stage(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            return summary([(b[k] - a[k]) * 1e3 for k in keys])

        passes = s.passes
        return {
            "commit -> relay pass start": stage(sent, s.pass_start),
            "pass start -> publish (claim)": stage(s.pass_start, s.publish_start),
            "publish -> all confirmed": stage(s.publish_start, s.confirmed),
            "confirmed -> relay committed": stage(s.confirmed, s.pass_end),
            "publish -> delivered": stage(s.publish_start, delivered),
            "delivered -> inbox committed": stage(delivered, received),
            "commit -> inbox committed": stage(sent, received),
            "relay pass duration": summary([(e - b) * 1e3 for b, e, _ in passes]),
            "relay rows per pass (count)": summary([float(n) for _, _, n in passes]),
        }

    # -- cost phase: each component alone

    async def costs(self, n: int, batch: int, producers: int, in_flight: int) -> dict[str, Any]:
        assert self.producer_db is not None and self.producer_bus is not None
        out: dict[str, Any] = {}
        await self.stop_relay()
        await self.stop_consumer()

        single, batches = make_events(n), make_events(n)
        gate = asyncio.Semaphore(in_flight)

        async def write_one(event: CloudEvent) -> None:
            async with gate:
                await self._write([event], None)

        with Cost(n).measure() as c:
            await asyncio.gather(*(write_one(e) for e in single))
        out["producer, 1 event per unit of work"] = c.figures()
        with Cost(n).measure() as c:
            await run_producers(
                batched(batches, batch), producers, lambda chunk: self._write(chunk, None)
            )
        out[f"producer, {batch} events per unit of work"] = c.figures()

        assert self.relay is not None
        with Cost(2 * n).measure() as c:
            while await self.relay.relay_once():
                pass
        out["relay: claim, publish+confirm, mark"] = c.figures()

        # The queue now holds all 2n events; the consumer drains them alone.
        recorder = self._recorder([*single, *batches])
        with Cost(2 * n).measure() as c:
            await self.start_consumer()
            await recorder.wait("consumer drain")
        out["consumer: EventConsumer, inbox tx per message"] = c.figures()

        # What-if 1: the same consumer on an engine without pool_pre_ping.
        await self.stop_consumer()
        events = await self._fill_queue(n)
        assert self.consumer is not None
        stock_db = self.consumer.db
        lean = Database(self.db_url, service=f"benchlean{self.tag}")
        await lean.engine.dispose()
        lean.engine = create_async_engine(
            self.db_url, pool_size=10, max_overflow=10, pool_pre_ping=False
        )
        lean.sessionmaker = async_sessionmaker(lean.engine, expire_on_commit=False)
        self._extra.append(lean)
        self.consumer.db = lean
        recorder = self._recorder(events)
        with Cost(n).measure() as c:
            await self.start_consumer()
            await recorder.wait("consumer drain, no pre-ping")
        out["what-if consumer: pool_pre_ping=False"] = c.figures()
        await self.stop_consumer()
        self.consumer.db = stock_db

        # What-if 2: one inbox transaction per batch of deliveries.
        events = await self._fill_queue(n)
        recorder = self._recorder(events)
        batched_consumer = BatchedInboxConsumer(lean, recorder)
        queue_name = Bus(BROKER_URL, namespace=self.namespace).topology.queue(CONSUMER_QUEUE)
        connection = await aio_pika.connect(BROKER_URL)
        try:
            with Cost(n).measure() as c:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=Bus(BROKER_URL).prefetch)
                queue = await channel.declare_queue(queue_name, passive=True)
                await queue.consume(batched_consumer.on_message)
                await recorder.wait("batched consumer drain")
        finally:
            await connection.close()
        out["what-if consumer: 1 inbox tx per <=50 deliveries"] = c.figures()

        await self.start_consumer()
        self.start_relay()
        return out

    async def _fill_queue(self, n: int) -> list[CloudEvent]:
        """Put ``n`` events straight on the bus (no outbox) for a consumer to drain."""
        assert self.producer_bus is not None
        events = make_events(n)
        for chunk in batched(events, 500):
            errors = await self.producer_bus.publish_many(
                [(e.type, e.to_bytes(), str(e.id)) for e in chunk]
            )
            if any(errors):
                raise Incomplete(f"publishing to the bus failed: {next(filter(None, errors))!r}")
        return events


class BatchedInboxConsumer:
    """What-if: the inbox rows of up to 50 deliveries in one transaction, one
    multiple-ack. The effect is the same as EventConsumer's with a no-op
    handler (parse, validate, record in the inbox once); it only shows what
    batching the consumer's transactions would buy."""

    def __init__(self, db: Database, recorder: Recorder, max_batch: int = 50) -> None:
        self.db = db
        self.recorder = recorder
        self.max_batch = max_batch
        self.pending: list[AbstractIncomingMessage] = []
        self.lock = asyncio.Lock()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.pending.append(message)
        if len(self.pending) < self.max_batch:
            await asyncio.sleep(0.002)  # let the rest of the prefetch window arrive
        await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            batch, self.pending = self.pending, []
            if not batch:
                return
            events = [CloudEvent.from_bytes(m.body) for m in batch]
            for e in events:
                registry.parse_data(e)
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    insert(inbox)
                    .values(
                        [
                            {"consumer": "bench.batched", "event_id": e.id, "event_type": e.type}
                            for e in events
                        ]
                    )
                    .on_conflict_do_nothing()
                )
            t = now()
            for e in events:
                self.recorder.mark_received(str(e.id), t)
            await batch[-1].ack(multiple=True)


# --------------------------------------------------------------------------- baseline


class Baseline:
    def __init__(self, tag: str, prefetch: int) -> None:
        self.exchange_name = f"bench-{tag}.baseline"
        self.queue_name = f"bench-{tag}.baseline.q"
        self.prefetch = prefetch
        self.recorder: Recorder | None = None
        self.redelivered = 0
        self._pub_conn: aio_pika.abc.AbstractConnection | None = None
        self._con_conn: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> None:
        # connect_robust, like the Bus: the same connection class on both sides.
        self._pub_conn = await aio_pika.connect_robust(BROKER_URL)
        pub = await self._pub_conn.channel(publisher_confirms=True)
        self._exchange = await pub.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await pub.declare_queue(self.queue_name, durable=True)
        await queue.bind(self._exchange, routing_key="team.*")
        await self.start_consumer()

    async def start_consumer(self) -> None:
        self._con_conn = await aio_pika.connect_robust(BROKER_URL)
        channel = await self._con_conn.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(self.queue_name, durable=True)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            t = now()
            self.redelivered += bool(message.redelivered)
            if self.recorder is not None and message.message_id:
                self.recorder.mark_received(message.message_id, t)

        await queue.consume(on_message)

    def check_undisturbed(self, what: str) -> None:
        if self.redelivered:
            raise Incomplete(f"{what}: {self.redelivered} redelivered messages")

    async def stop_consumer(self) -> None:
        if self._con_conn is not None:
            await self._con_conn.close()
            self._con_conn = None

    async def close(self) -> None:
        await self.stop_consumer()
        if self._pub_conn is not None:
            with contextlib.suppress(Exception):
                await self._pub_conn.close()

    async def _publish(self, key: str, body: bytes) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            body,
            message_id=key,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=EVENT_TYPE,
        )
        await self._exchange.publish(message, routing_key=EVENT_TYPE)

    async def _publish_batch(
        self, chunk: Sequence[tuple[str, bytes]], recorder: Recorder | None
    ) -> None:
        if recorder is not None:
            recorder.mark_sent([k for k, _ in chunk], now())
        await asyncio.gather(*(self._publish(k, b) for k, b in chunk))

    @staticmethod
    def _bodies(events: Sequence[CloudEvent]) -> list[tuple[str, bytes]]:
        return [(str(e.id), e.to_bytes()) for e in events]

    async def throughput(self, events: list[CloudEvent], batch: int, producers: int) -> Recorder:
        bodies = self._bodies(events)
        recorder = self.recorder = Recorder(ids(events))
        self.redelivered = 0
        await run_producers(
            batched(bodies, batch), producers, lambda chunk: self._publish_batch(chunk, recorder)
        )
        await recorder.wait("baseline throughput")
        self.check_undisturbed("baseline throughput")
        return recorder

    async def latency(self, events: list[CloudEvent], rate: float) -> Recorder:
        bodies = self._bodies(events)
        recorder = self.recorder = Recorder(ids(events))
        self.redelivered = 0

        async def publish_one(i: int) -> None:
            await self._publish_batch([bodies[i]], recorder)

        await paced(len(bodies), rate, publish_one)
        await recorder.wait("baseline latency")
        self.check_undisturbed("baseline latency")
        return recorder

    async def costs(self, n: int, batch: int, producers: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        await self.stop_consumer()
        events = make_events(n)
        bodies = self._bodies(events)
        with Cost(n).measure() as c:
            await run_producers(
                batched(bodies, batch), producers, lambda chunk: self._publish_batch(chunk, None)
            )
        out[f"baseline: confirmed publish, {batch} at a time"] = c.figures()
        recorder = self.recorder = Recorder(ids(events))
        self.redelivered = 0
        with Cost(n).measure() as c:
            await self.start_consumer()
            await recorder.wait("baseline consumer drain")
        out["baseline: consume + ack"] = c.figures()
        return out


async def delete_broker_objects(queues: Sequence[str], exchanges: Sequence[str]) -> list[str]:
    """Delete what the run declared; returns what could not be deleted."""
    problems: list[str] = []
    connection = await connect_patiently()
    try:
        channel = await connection.channel()
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                try:
                    if kind == "queue":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
                except Exception as exc:  # a failed delete closes the channel
                    problems.append(f"{kind} {name}: {exc!r}")
                    channel = await connection.channel()
    finally:
        await connection.close()
    return problems


async def connect_patiently(within: float = 60.0) -> aio_pika.abc.AbstractConnection:
    """Connect to the broker, waiting for it if it is (re)starting."""
    deadline = now() + within
    while True:
        try:
            return await aio_pika.connect(BROKER_URL)
        except Exception:
            if now() >= deadline:
                raise
            await asyncio.sleep(1.0)


async def wait_for_services(within: float = 60.0) -> None:
    """PostgreSQL and RabbitMQ answer (another job may be restarting them)."""
    deadline = now() + within
    while True:
        try:
            probe = Database(f"{POSTGRES_URL.rstrip('/')}/postgres", service="benchprobe")
            try:
                await probe.ping()
            finally:
                await probe.dispose()
            break
        except Exception:
            if now() >= deadline:
                raise
            await asyncio.sleep(1.0)
    connection = await connect_patiently(max(1.0, deadline - now()))
    await connection.close()


async def cleanup(pipeline: Pipeline, baseline: Baseline) -> None:
    """Close, drop and delete everything the run made; report, never raise."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("baseline connections", baseline.close),
        ("pipeline and database", pipeline.close),
        (
            "queues and exchanges",
            lambda: delete_broker_objects(
                [*pipeline.queue_names(), baseline.queue_name],
                [*pipeline.exchange_names(), baseline.exchange_name],
            ),
        ),
    ]
    for what, step in steps:
        try:
            result = await step()
        except Exception as exc:
            print(f"cleanup: {what}: {exc!r}", file=sys.stderr)
            continue
        for problem in result or []:
            print(f"cleanup: could not delete {problem}", file=sys.stderr)


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Columns before ``left`` are left-aligned, the rest right-aligned; the last is free."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: Sequence[str]) -> str:
        cells = [
            c.ljust(w) if i < left or i == len(r) - 1 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths).rstrip()
    return "\n".join([line(header), rule, *map(line, rows)])


def goals_of(f: dict[str, Any]) -> dict[str, Any]:
    ratio = (
        f["pipeline"]["throughput"]["events_per_s"] / f["baseline"]["throughput"]["events_per_s"]
    )
    p99 = f["pipeline"]["latency"]["ms"]["p99"]
    return {
        "throughput_ratio": ratio,
        "throughput_ratio_goal": THROUGHPUT_RATIO_GOAL,
        "throughput_pass": ratio >= THROUGHPUT_RATIO_GOAL,
        "p99_ms": p99,
        "p99_goal_ms": P99_GOAL_MS,
        "p99_pass": p99 < P99_GOAL_MS,
    }


def figures_table(args: argparse.Namespace, f: dict[str, Any]) -> str:
    goals = goals_of(f)
    tp_p = f["pipeline"]["throughput"]["events_per_s"]
    tp_b = f["baseline"]["throughput"]["events_per_s"]
    lat_p, lat_b = f["pipeline"]["latency"], f["baseline"]["latency"]
    rows = [
        [
            f"throughput, {args.events} events (events/s)",
            fmt(tp_p),
            fmt(tp_b),
            f"{tp_p / tp_b:.2f}",
            f"ratio >= {THROUGHPUT_RATIO_GOAL:.2f}: "
            + ("PASS" if goals["throughput_pass"] else "MISS"),
        ]
    ]
    for key in ("p50", "p95", "p99", "max"):
        p, b = lat_p["ms"][key], lat_b["ms"][key]
        goal = ""
        if key == "p99":
            goal = f"p99 < {P99_GOAL_MS:.0f} ms: " + ("PASS" if goals["p99_pass"] else "MISS")
        rows.append(
            [f"latency {key} @ {args.rate:,.0f}/s (ms)", fmt(p, 2), fmt(b, 2), f"{p / b:.2f}", goal]
        )
    pa, ba = lat_p["achieved_rate"], lat_b["achieved_rate"]
    rows.append(
        [f"achieved rate @ {args.rate:,.0f}/s (events/s)", fmt(pa), fmt(ba), f"{pa / ba:.2f}", ""]
    )
    return table(["scenario", "pipeline", "baseline", "pipe/base", "goal"], rows)


def breakdown_table(title: str, breakdown: dict[str, dict[str, float]]) -> str:
    rows = [
        [name, *(fmt(s[k], 2) for k in ("p50", "p95", "p99", "max", "mean")), ""]
        for name, s in breakdown.items()
    ]
    head = [f"pipeline stages, {title} (ms)", "p50", "p95", "p99", "max", "mean", ""]
    return table(head, rows)


def costs_table(costs: dict[str, Any]) -> str:
    rows = [
        [name, fmt(c["cpu_ms_per_event"], 3), fmt(c["events_per_s"]), str(c["events"]), ""]
        for name, c in costs.items()
        if isinstance(c, dict) and "cpu_ms_per_event" in c
    ]
    head = ["component alone", "CPU ms/event", "events/s", "events", ""]
    return table(head, rows)


def cost_model(costs: dict[str, Any], batch: int) -> dict[str, float]:
    """CPU per event of each whole path, from the components measured alone."""

    def ms(name: str) -> float:
        return float(costs[name]["cpu_ms_per_event"])

    producer = ms(f"producer, {batch} events per unit of work")
    relay = ms("relay: claim, publish+confirm, mark")
    pipeline = producer + relay + ms("consumer: EventConsumer, inbox tx per message")
    baseline = ms(f"baseline: confirmed publish, {batch} at a time") + ms("baseline: consume + ack")
    lean = producer + relay + ms("what-if consumer: pool_pre_ping=False")
    batched_ = producer + relay + ms("what-if consumer: 1 inbox tx per <=50 deliveries")
    return {
        "pipeline_cpu_ms_per_event": pipeline,
        "baseline_cpu_ms_per_event": baseline,
        "cpu_bound_ratio": baseline / pipeline,
        "cpu_bound_ratio_no_pre_ping": baseline / lean,
        "cpu_bound_ratio_batched_inbox": baseline / batched_,
        "consumer_share_of_pipeline_cpu": ms("consumer: EventConsumer, inbox tx per message")
        / pipeline,
        "single_event_uow_path_cpu_ms": ms("producer, 1 event per unit of work")
        + relay
        + ms("consumer: EventConsumer, inbox tx per message"),
    }


def nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- main


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    pipeline = Pipeline(tag, args.relay_batch, args.in_flight)
    baseline = Baseline(tag, prefetch=Bus(BROKER_URL).prefetch)
    profiler = cProfile.Profile() if args.profile else None
    f: dict[str, Any] = {"pipeline": {}, "baseline": {}}

    @contextlib.contextmanager
    def profiled(on: bool) -> Iterator[None]:
        if profiler is not None and on:
            profiler.enable()
        try:
            yield
        finally:
            if profiler is not None and on:
                profiler.disable()

    async def run_throughput(side: Pipeline | Baseline) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        for _ in range(args.repeat):
            with profiled(side is pipeline):
                rec = await side.throughput(make_events(args.events), args.batch, args.producers)
            figures: dict[str, Any] = {
                "events_per_s": rec.throughput(),
                "producer_events_per_s": rec.send_rate(),
                "latency_ms": summary(rec.latencies_ms()),
            }
            if isinstance(side, Pipeline):
                figures["stages"] = side.breakdown(rec)
            if best is None or figures["events_per_s"] > best["events_per_s"]:
                best = figures
        assert best is not None
        return best

    async def run_latency(side: Pipeline | Baseline) -> dict[str, Any]:
        events = make_events(max(2, int(args.rate * args.duration)))
        with profiled(side is pipeline):
            t0 = now()
            rec = await side.latency(events, args.rate)
            took = now() - t0
        figures: dict[str, Any] = {
            "ms": summary(rec.latencies_ms()),
            "achieved_rate": rec.send_rate(),
            "events": len(events),
            "seconds_to_drain": took,
        }
        if isinstance(side, Pipeline):
            figures["stages"] = side.breakdown(rec)
        return figures

    await wait_for_services()
    try:
        await pipeline.start()
        await baseline.start()
        # Warm up connections, pools, statement caches and queue processes.
        warm = min(500, args.events)
        await pipeline.throughput(make_events(warm), args.batch, args.producers)
        await baseline.throughput(make_events(warm), args.batch, args.producers)

        print(
            f"throughput: {args.events} events, {args.batch} per unit of work, "
            f"{args.producers} producers, best of {args.repeat}",
            flush=True,
        )
        f["baseline"]["throughput"] = await run_throughput(baseline)
        f["pipeline"]["throughput"] = await run_throughput(pipeline)
        print(
            f"latency: {args.rate:g} events/s for {args.duration:g} s, "
            f"1 per unit of work, <= {args.in_flight} in flight",
            flush=True,
        )
        f["baseline"]["latency"] = await run_latency(baseline)
        f["pipeline"]["latency"] = await run_latency(pipeline)

        goals = goals_of(f)
        if args.costs or (
            args.costs is None and not (goals["throughput_pass"] and goals["p99_pass"])
        ):
            n = args.cost_events or min(args.events, 2000)
            print(f"costs: each component alone, {n} events", flush=True)
            costs = await pipeline.costs(n, args.batch, args.producers, args.in_flight)
            costs.update(await baseline.costs(n, args.batch, args.producers))
            f["costs"] = costs
            f["cost_model"] = cost_model(costs, args.batch)
    finally:
        await cleanup(pipeline, baseline)

    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(35)
        print("cProfile of the pipeline scenarios (this process, wall time):")
        print(out.getvalue())
    return f


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="throughput events")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency run, events/s")
    parser.add_argument("--duration", type=float, default=5.0, help="latency run, seconds")
    parser.add_argument("--batch", type=int, default=50, help="events per unit of work")
    parser.add_argument("--producers", type=int, default=4, help="concurrent producer tasks")
    parser.add_argument(
        "--in-flight", type=int, default=10, help="latency run: units of work at a time"
    )
    parser.add_argument("--repeat", type=int, default=1, help="throughput runs (best is kept)")
    parser.add_argument("--relay-batch", type=int, default=None, help="OutboxRelay batch_size")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 events, 2 s")
    parser.add_argument(
        "--costs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cost phase (default: only when a goal is missed)",
    )
    parser.add_argument("--cost-events", type=int, default=None, help="events per cost step")
    parser.add_argument("--profile", action="store_true", help="cProfile the pipeline runs")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--attempts", type=int, default=3, help="runs to try if PostgreSQL/RabbitMQ go away"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.duration = min(args.events, 500), min(args.duration, 2.0)
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()

    f = measure_sync(args)
    goals = goals_of(f)
    print()
    print(figures_table(args, f))
    print()
    print(breakdown_table(f"latency @ {args.rate:,.0f}/s", f["pipeline"]["latency"]["stages"]))
    print()
    print(breakdown_table("throughput", f["pipeline"]["throughput"]["stages"]))
    print()
    if "costs" in f:
        print(costs_table(f["costs"]))
        m = f["cost_model"]
        print(
            f"\nCPU per event, whole path ({args.batch}/unit of work): "
            f"pipeline {m['pipeline_cpu_ms_per_event']:.3f} ms, "
            f"baseline {m['baseline_cpu_ms_per_event']:.3f} ms -> CPU-bound ratio "
            f"{m['cpu_bound_ratio']:.2f} (without pre-ping {m['cpu_bound_ratio_no_pre_ping']:.2f},"
            f" batched inbox {m['cpu_bound_ratio_batched_inbox']:.2f}); the consumer is "
            f"{m['consumer_share_of_pipeline_cpu']:.0%} of the pipeline's CPU. One event per "
            f"unit of work costs {m['single_event_uow_path_cpu_ms']:.2f} ms CPU end to end: "
            f"~{1000 / m['single_event_uow_path_cpu_ms']:,.0f} events/s per core.\n"
        )
    payload = {"bench": "events", "args": vars(args), "goals": goals, **f}
    print("BENCH_JSON " + json.dumps(nan_to_none(payload), default=str, sort_keys=True))
    missed = not (goals["throughput_pass"] and goals["p99_pass"])
    return 1 if (missed and args.strict) else 0


# What another job restarting PostgreSQL or RabbitMQ under the run looks like.
TRANSIENT: tuple[type[BaseException], ...] = (
    Incomplete,
    ConnectionError,
    OSError,
    TimeoutError,
    aiormq.exceptions.AMQPError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    sqlalchemy.exc.DBAPIError,
)


def measure_sync(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, starting afresh (new database, new namespace) if the services
    went away under the run; figures from a disturbed run are not kept."""
    for attempt in range(1, args.attempts + 1):
        try:
            return asyncio.run(measure(args))
        except TRANSIENT as exc:
            if attempt == args.attempts:
                raise
            print(f"attempt {attempt} disturbed ({exc!r:.300}); starting again", file=sys.stderr)
    raise AssertionError("unreachable")


if __name__ == "__main__":
    sys.exit(main())
