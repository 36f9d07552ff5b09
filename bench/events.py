"""Outbox -> RabbitMQ -> inbox versus raw aio-pika, on the same broker, in one run.

Pipeline: events are written in units of work to a scratch database's outbox;
an ``OutboxRelay`` publishes them through a ``Bus``; an ``EventConsumer`` (on
its own ``Bus`` connection and its own engine, as another service would be)
applies each one with its inbox row. An event's latency is the time from the
producer's commit (``perf_counter()`` right after the ``unit_of_work`` block
exits) to the consumer's commit (right after ``EventConsumer.handle`` returns,
which is after its transaction committed and before the ack).

Baseline: the same CloudEvent bodies, published persistent with publisher
confirms to a topic exchange and consumed (one ack each) from a durable queue
bound to it, on the same broker. Latency is from just before ``publish()`` to
just after the consumer's ``ack()``.

Scenarios:

* throughput: ``--events`` events (5000) in batches of ``--batch`` (50), one
  unit of work (baseline: one confirmed ``gather`` of publishes) per batch,
  from ``--producers`` (4) concurrent tasks; events/s from the first commit
  (baseline: first publish) to the last consumer commit (baseline: last ack).
* latency: ``--rate`` (1000) events/s for ``--duration`` (5) s, one event per
  unit of work (baseline: per publish), started by a scheduler at fixed target
  times (``asyncio.sleep`` to each target, catching up without bursts piling
  up); p50/p95/p99/max commit-to-consume latency and the achieved rate.

Goals: pipeline/baseline throughput >= 0.60 and pipeline p99 < 20 ms at 1,000
events/s. The script exits 0 when the goals are missed (that is a finding, not
an error) unless ``--strict``. ``--profile`` runs the pipeline scenarios under
cProfile and prints the hottest functions. A per-stage breakdown of the
pipeline latency (commit -> relay pass -> publish -> delivery -> inbox commit)
is always printed, from timestamps taken by wrapping the relay's and the
consumer's methods in this process (no library code is changed).

Everything (producers, relay, consumer, baseline) runs in this one process and
event loop, so the comparison is like for like; absolute figures depend on the
machine. URLs: ``AGENTHQ_TEST_POSTGRES_URL`` and ``AGENTHQ_TEST_BROKER_URL``.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from agenthq_common.bus import Bus
from agenthq_common.db import Database, UnitOfWork
from agenthq_common.events import CloudEvent, registry
from agenthq_common.events.envelope import CONTENT_TYPE
from agenthq_common.inbox import EventConsumer
from agenthq_common.migrations import create_database_if_missing, drop_database
from agenthq_common.outbox import OutboxRelay
from agenthq_common.plumbing import plumbing_metadata

POSTGRES_URL = os.environ.get(
    "AGENTHQ_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
)
BROKER_URL = os.environ.get("AGENTHQ_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")

EVENT_TYPE = "team.updated"
THROUGHPUT_RATIO_GOAL = 0.60
P99_GOAL_MS = 20.0

now = time.perf_counter


# --------------------------------------------------------------------------- recording


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

    async def wait(self, timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(
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


def summary_ms(values: Sequence[float]) -> dict[str, float]:
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


def batched(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def run_producers(batches: list[Sequence[Any]], producers: int, write: Callable) -> None:
    """``producers`` tasks, each taking the next batch until none is left."""
    it = iter(batches)

    async def producer() -> None:
        for batch in it:  # no await between next() calls: safe to share
            await write(batch)

    await asyncio.gather(*(producer() for _ in range(producers)))


async def paced(count: int, rate: float, start_one: Callable[[int], Awaitable[None]]) -> float:
    """Start ``start_one(i)`` at ``t0 + i / rate``; returns the schedule's duration."""
    tasks: list[asyncio.Task[None]] = []
    t0 = now() + 0.02
    for i in range(count):
        delay = t0 + i / rate - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start_one(i)))
    scheduled = now() - t0
    await asyncio.gather(*tasks)
    return scheduled


# --------------------------------------------------------------------------- pipeline


@dataclass
class TimedConsumer(EventConsumer):
    """An EventConsumer that stamps each event when its inbox transaction committed."""

    recorder: Recorder | None = None
    delivered: dict[str, float] = field(default_factory=dict)

    async def handle_message(self, message: AbstractIncomingMessage) -> None:
        if message.message_id:
            self.delivered.setdefault(message.message_id, now())
        await super().handle_message(message)

    async def handle(self, event: CloudEvent) -> bool:
        applied = await super().handle(event)  # its unit of work has committed
        t = now()
        if applied and self.recorder is not None:
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
        self._current: float = 0.0
        self._current_ids: list[str] = []

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def instrument(self, relay: OutboxRelay, bus: Bus) -> None:
        relay_once = relay.relay_once
        publish_many = bus.publish_many

        async def timed_relay_once() -> int:
            self._current = now()
            self._current_ids = []
            claimed = await relay_once()
            end = now()
            if claimed:
                self.passes.append((self._current, end, claimed))
                for k in self._current_ids:
                    self.pass_end[k] = end
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


class Pipeline:
    name = "pipeline"

    def __init__(self, tag: str, relay_batch: int | None) -> None:
        self.tag = tag
        self.db_url = f"{POSTGRES_URL.rstrip('/')}/agenthq_bench_{tag}"
        self.namespace = f"bench-{tag}."
        self.relay_batch = relay_batch
        self.stages = Stages()
        self.producer_db: Database | None = None
        self.consumer_db: Database | None = None
        self.producer_bus: Bus | None = None
        self.consumer_bus: Bus | None = None
        self.consumer: TimedConsumer | None = None
        self.relay_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await create_database_if_missing(self.db_url)
        # The producing service and the consuming service: separate engines,
        # separate broker connections, one database (as in the messaging tests).
        self.producer_db = Database(self.db_url, service=f"bench{self.tag}")
        self.consumer_db = Database(self.db_url, service=f"benchconsumer{self.tag}")
        async with self.producer_db.engine.begin() as conn:
            await conn.run_sync(plumbing_metadata.create_all)
        self.producer_bus = Bus(BROKER_URL, namespace=self.namespace)
        self.consumer_bus = Bus(BROKER_URL, namespace=self.namespace)
        await self.producer_bus.connect()
        await self.consumer_bus.connect()

        self.consumer = TimedConsumer("bench.events", self.consumer_db, registry)

        @self.consumer.on(EVENT_TYPE)
        async def apply(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
            return None  # the inbox row is the effect

        await self.consumer.start(self.consumer_bus)
        kwargs = {"batch_size": self.relay_batch} if self.relay_batch else {}
        relay = OutboxRelay(self.producer_db, self.producer_bus, **kwargs)
        self.stages.instrument(relay, self.producer_bus)
        self.relay_task = asyncio.create_task(relay.run(), name="bench-relay")

    def queue_names(self) -> list[str]:
        assert self.consumer_bus is not None
        q = self.consumer_bus.topology.queue("bench.events")
        retries = [f"{q}.retry.{i}" for i in range(1, self.consumer_bus.max_retries + 1)]
        return [q, f"{q}.dlq", *retries]

    def exchange_names(self) -> list[str]:
        topology = Bus(BROKER_URL, namespace=self.namespace).topology
        return [topology.exchange, topology.dlx]

    def _recorder(self, events: Sequence[CloudEvent]) -> Recorder:
        assert self.consumer is not None
        recorder = Recorder([str(e.id) for e in events])
        self.consumer.recorder = recorder
        self.consumer.delivered.clear()
        self.stages.clear()
        return recorder

    async def throughput(self, events: list[CloudEvent], batch: int, producers: int) -> Recorder:
        assert self.producer_db is not None
        db = self.producer_db
        recorder = self._recorder(events)

        async def write(chunk: Sequence[CloudEvent]) -> None:
            async with db.unit_of_work() as uow:
                for event in chunk:
                    uow.publish(event)
            recorder.mark_sent([str(e.id) for e in chunk], now())

        await run_producers(batched(events, batch), producers, write)
        await recorder.wait(max(60.0, len(events) / 50), "pipeline throughput")
        return recorder

    async def latency(self, events: list[CloudEvent], rate: float) -> tuple[Recorder, float]:
        assert self.producer_db is not None
        db = self.producer_db
        recorder = self._recorder(events)

        async def write_one(i: int) -> None:
            event = events[i]
            async with db.unit_of_work() as uow:
                uow.publish(event)
            recorder.mark_sent([str(event.id)], now())

        scheduled = await paced(len(events), rate, write_one)
        await recorder.wait(max(60.0, len(events) / 50), "pipeline latency")
        return recorder, scheduled

    def breakdown(self, recorder: Recorder) -> dict[str, dict[str, float]]:
        """Per-stage latency (ms) of the events of the last scenario."""
        assert self.consumer is not None
        s, delivered = self.stages, self.consumer.delivered
        keys = [
            k
            for k in recorder.received
            if k in s.pass_start and k in s.pass_end and k in delivered and k in recorder.sent
        ]

        def stage(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            return summary_ms([(b[k] - a[k]) * 1e3 for k in keys])

        sent, received = recorder.sent, recorder.received
        out = {
            "commit->relay pass start": stage(sent, s.pass_start),
            "pass start->publish start (claim)": stage(s.pass_start, s.publish_start),
            "publish start->confirmed": stage(s.publish_start, s.confirmed),
            "confirmed->relay tx committed": stage(s.confirmed, s.pass_end),
            "publish start->delivered": stage(s.publish_start, delivered),
            "delivered->inbox committed": stage(delivered, received),
            "commit->inbox committed (total)": stage(sent, received),
        }
        sizes = [n for _, _, n in s.passes]
        durations = [(e - b) * 1e3 for b, e, _ in s.passes]
        out["relay pass duration"] = summary_ms(durations)
        out["relay rows per pass"] = {
            "p50": percentile(sorted(sizes), 50),
            "p95": percentile(sorted(sizes), 95),
            "p99": percentile(sorted(sizes), 99),
            "max": max(sizes) if sizes else math.nan,
            "mean": statistics.fmean(sizes) if sizes else math.nan,
        }
        out["relay passes"] = {"count": float(len(sizes))}
        return out

    async def close(self) -> None:
        if self.relay_task is not None:
            self.relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.relay_task
        for bus in (self.consumer_bus, self.producer_bus):
            if bus is not None:
                with contextlib.suppress(Exception):
                    await bus.close()
        for db in (self.consumer_db, self.producer_db):
            if db is not None:
                with contextlib.suppress(Exception):
                    await db.dispose()
        await drop_database(self.db_url)


# --------------------------------------------------------------------------- baseline


class Baseline:
    name = "baseline"

    def __init__(self, tag: str, prefetch: int) -> None:
        self.exchange_name = f"bench-{tag}.baseline"
        self.queue_name = f"bench-{tag}.baseline.q"
        self.prefetch = prefetch
        self.recorder: Recorder | None = None
        self._pub_conn: aio_pika.abc.AbstractConnection | None = None
        self._con_conn: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> None:
        self._pub_conn = await aio_pika.connect(BROKER_URL)
        self._con_conn = await aio_pika.connect(BROKER_URL)
        pub = await self._pub_conn.channel(publisher_confirms=True)
        self._exchange = await pub.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        con = await self._con_conn.channel()
        await con.set_qos(prefetch_count=self.prefetch)
        exchange = await con.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await con.declare_queue(self.queue_name, durable=True)
        await queue.bind(exchange, routing_key="team.*")

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            t = now()
            if self.recorder is not None and message.message_id:
                self.recorder.mark_received(message.message_id, t)

        await queue.consume(on_message)

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

    @staticmethod
    def _bodies(events: Sequence[CloudEvent]) -> list[tuple[str, bytes]]:
        return [(str(e.id), e.to_bytes()) for e in events]

    async def throughput(self, events: list[CloudEvent], batch: int, producers: int) -> Recorder:
        bodies = self._bodies(events)
        recorder = self.recorder = Recorder([k for k, _ in bodies])

        async def write(chunk: Sequence[tuple[str, bytes]]) -> None:
            recorder.mark_sent([k for k, _ in chunk], now())
            await asyncio.gather(*(self._publish(k, b) for k, b in chunk))

        await run_producers(batched(bodies, batch), producers, write)
        await recorder.wait(max(60.0, len(events) / 50), "baseline throughput")
        return recorder

    async def latency(self, events: list[CloudEvent], rate: float) -> tuple[Recorder, float]:
        bodies = self._bodies(events)
        recorder = self.recorder = Recorder([k for k, _ in bodies])

        async def publish_one(i: int) -> None:
            key, body = bodies[i]
            recorder.mark_sent([key], now())
            await self._publish(key, body)

        scheduled = await paced(len(bodies), rate, publish_one)
        await recorder.wait(max(60.0, len(events) / 50), "baseline latency")
        return recorder, scheduled

    async def close(self) -> None:
        for conn in (self._con_conn, self._pub_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()


async def delete_broker_objects(queues: Sequence[str], exchanges: Sequence[str]) -> list[str]:
    """Delete what the run declared; returns what could not be deleted."""
    problems: list[str] = []
    connection = await aio_pika.connect(BROKER_URL)
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


# --------------------------------------------------------------------------- report


@dataclass
class Results:
    args: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def print_table(res: Results) -> None:
    f = res.figures
    tp_p, tp_b = f["pipeline"]["throughput"]["events_per_s"], f["baseline"]["throughput"]
    tp_b = tp_b["events_per_s"]
    lat_p, lat_b = f["pipeline"]["latency"], f["baseline"]["latency"]
    ratio = tp_p / tp_b
    rows: list[tuple[str, str, str, str, str]] = [
        (
            f"throughput, {res.args['events']} events (events/s)",
            fmt(tp_p),
            fmt(tp_b),
            f"{ratio:.2f}",
            f"ratio >= {THROUGHPUT_RATIO_GOAL:.2f}: "
            + ("PASS" if ratio >= THROUGHPUT_RATIO_GOAL else "MISS"),
        )
    ]
    rate = res.args["rate"]
    for key in ("p50", "p95", "p99", "max"):
        p, b = lat_p["ms"][key], lat_b["ms"][key]
        goal = ""
        if key == "p99":
            goal = f"p99 < {P99_GOAL_MS:.0f} ms: " + ("PASS" if p < P99_GOAL_MS else "MISS")
        rows.append(
            (f"latency {key} @ {rate:,.0f}/s (ms)", fmt(p, 2), fmt(b, 2), f"{p / b:.2f}", goal)
        )
    rows.append(
        (
            f"achieved rate @ {rate:,.0f}/s (events/s)",
            fmt(lat_p["achieved_rate"]),
            fmt(lat_b["achieved_rate"]),
            f"{lat_p['achieved_rate'] / lat_b['achieved_rate']:.2f}",
            "",
        )
    )
    header = ("scenario", "pipeline", "baseline", "pipe/base", "goal")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]

    def line(r: Sequence[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in (1, 2, 3)]
        return "  ".join([*cells, r[4]]).rstrip()

    print()
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print()


def print_breakdown(title: str, breakdown: dict[str, dict[str, float]]) -> None:
    print(f"pipeline stage breakdown, {title} (ms unless noted; stages overlap, not additive):")
    for name, s in breakdown.items():
        cells = "  ".join(f"{k} {fmt(v, 2):>7}" for k, v in s.items())
        print(f"  {name:<36} {cells}")
    print()


# --------------------------------------------------------------------------- main


async def measure(args: argparse.Namespace) -> Results:
    tag = uuid.uuid4().hex[:10]
    res = Results(args=vars(args).copy())
    pipeline = Pipeline(tag, args.relay_batch)
    baseline = Baseline(tag, prefetch=Bus(BROKER_URL).prefetch)
    profiler = cProfile.Profile() if args.profile else None

    @contextlib.contextmanager
    def profiled():  # type: ignore[no-untyped-def]
        if profiler is not None:
            profiler.enable()
        try:
            yield
        finally:
            if profiler is not None:
                profiler.disable()

    async def run_throughput(side: Pipeline | Baseline) -> dict[str, Any]:
        events = make_events(args.events)
        best: dict[str, Any] | None = None
        for _ in range(args.repeat):
            with profiled() if side is pipeline else contextlib.nullcontext():
                rec = await side.throughput(events, args.batch, args.producers)
            lat = summary_ms(rec.latencies_ms())
            figures = {
                "events_per_s": rec.throughput(),
                "producer_events_per_s": rec.send_rate(),
                "latency_ms": lat,
            }
            if side is pipeline:
                figures["stages"] = pipeline.breakdown(rec)
            if best is None or figures["events_per_s"] > best["events_per_s"]:
                best = figures
            events = make_events(args.events)
        assert best is not None
        return best

    async def run_latency(side: Pipeline | Baseline) -> dict[str, Any]:
        count = int(args.rate * args.duration)
        events = make_events(count)
        with profiled() if side is pipeline else contextlib.nullcontext():
            rec, scheduled = await side.latency(events, args.rate)
        figures: dict[str, Any] = {
            "ms": summary_ms(rec.latencies_ms()),
            "achieved_rate": rec.send_rate(),
            "scheduler_rate": (count - 1) / scheduled if scheduled > 0 else math.nan,
            "events": count,
        }
        if side is pipeline:
            figures["stages"] = pipeline.breakdown(rec)
        return figures

    try:
        await pipeline.start()
        await baseline.start()
        # Warm up: connections, pools, statement caches, queue processes.
        warm = min(500, args.events)
        await pipeline.throughput(make_events(warm), args.batch, args.producers)
        await baseline.throughput(make_events(warm), args.batch, args.producers)

        print(
            f"throughput: {args.events} events, batches of {args.batch}, "
            f"{args.producers} producers, best of {args.repeat}",
            flush=True,
        )
        res.figures["baseline"] = {"throughput": await run_throughput(baseline)}
        res.figures["pipeline"] = {"throughput": await run_throughput(pipeline)}
        print(f"latency: {args.rate:g} events/s for {args.duration:g} s", flush=True)
        res.figures["baseline"]["latency"] = await run_latency(baseline)
        res.figures["pipeline"]["latency"] = await run_latency(pipeline)
    finally:
        await baseline.close()
        await pipeline.close()
        problems = await delete_broker_objects(
            [*pipeline.queue_names(), baseline.queue_name]
            if pipeline.consumer_bus is not None
            else [baseline.queue_name],
            [*pipeline.exchange_names(), baseline.exchange_name],
        )
        for p in problems:
            print(f"cleanup: could not delete {p}", file=sys.stderr)

    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        print("cProfile of the pipeline scenarios (this process only):")
        print(out.getvalue())
    return res


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="throughput events")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency run, events/s")
    parser.add_argument("--duration", type=float, default=5.0, help="latency run, seconds")
    parser.add_argument("--batch", type=int, default=50, help="events per unit of work")
    parser.add_argument("--producers", type=int, default=4, help="concurrent producer tasks")
    parser.add_argument("--repeat", type=int, default=1, help="throughput runs (best is kept)")
    parser.add_argument("--relay-batch", type=int, default=None, help="OutboxRelay batch_size")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 events, 2 s")
    parser.add_argument("--profile", action="store_true", help="cProfile the pipeline runs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.duration = min(args.events, 500), min(args.duration, 2.0)

    res = asyncio.run(measure(args))
    f = res.figures
    print_table(res)
    print_breakdown(f"latency @ {args.rate:,.0f}/s", f["pipeline"]["latency"]["stages"])
    print_breakdown("throughput", f["pipeline"]["throughput"]["stages"])
    ratio = (
        f["pipeline"]["throughput"]["events_per_s"] / f["baseline"]["throughput"]["events_per_s"]
    )
    p99 = f["pipeline"]["latency"]["ms"]["p99"]
    goals = {
        "throughput_ratio": ratio,
        "throughput_ratio_goal": THROUGHPUT_RATIO_GOAL,
        "throughput_pass": ratio >= THROUGHPUT_RATIO_GOAL,
        "p99_ms": p99,
        "p99_goal_ms": P99_GOAL_MS,
        "p99_pass": p99 < P99_GOAL_MS,
    }
    payload = {"bench": "events", "args": res.args, "goals": goals, **f}
    print("BENCH_JSON " + json.dumps(_nan_to_none(payload), default=str, sort_keys=True))
    missed = not (goals["throughput_pass"] and goals["p99_pass"])
    return 1 if (missed and args.strict) else 0


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
