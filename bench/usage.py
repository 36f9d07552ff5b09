"""Usage metering: sustained events/s into exact counters, against raw aio-pika, in one run.

Pipeline: the usage service itself (``bootstrap(UsageSettings(...),
run_jobs=False)``, ``await service.start()``: its consumers and its relay) in
a process of its own, on a scratch database migrated with the usage
migrations, under the broker namespace ``bench-<random>.``. Its
``usage.metering`` consumer counts each batch in one transaction: the inbox
insert, one statement that writes the ledger (``metered_events``) and upserts
the daily counters (``usage_stats``), then ``Billing.after_counting`` (quotas). Its
``handle_messages`` is wrapped (no service code is changed) to note when each
batch has committed, and a few of the functions it calls are wrapped to time
the stages of a batch.

A publishing process publishes ``--events`` CloudEvents (persistent, with
publisher confirms, ``--batch`` per ``gather`` from ``--producers`` tasks,
built and serialised before the measured part) of the metered types
(``task.created``, ``task.completed``, ``llm.tokens.used``, ``api.calls``,
``storage.changed``) over ``--teams`` teams (each given its plan by a
``team.created`` event published first), ``--duplicates`` of them copies of
an earlier event (same id, same body), times spread over the last ``--days``
days, a few ``api.calls`` without a team (personal counters). The publisher
keeps the expected sums of the unique events.

Baseline: ``bench/events.py``'s raw aio-pika pair: the same messages from the
same publishing code into a topic exchange, a durable queue bound to it (here
with ``#``) with the same prefetch as ``usage.metering`` (512), one ``ack()``
per message, in processes of their own, in the same run.

events/s = messages published / (last batch committed, or last ack - first
publish). Afterwards, proof of exactness: per (team, UTC day, metric), the
sums in ``usage_stats`` must equal the publisher's sums of the unique events
(and those of the ledger), ``personal_usage_stats`` likewise, and the ledger
must hold exactly the unique events: ``EXACT``, or the first differences and
exit status 2.

URLs: ``AGENTHQ_TEST_POSTGRES_URL``, ``AGENTHQ_TEST_BROKER_URL``,
``AGENTHQ_TEST_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import multiprocessing
import os
import random
import signal
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
import asyncpg
import events as eb  # bench/events.py: worker processes, baseline, CPU accounting, report
from aio_pika.abc import AbstractIncomingMessage

import agenthq_common.db as common_db
import agenthq_usage.billing.service as billing_service
import agenthq_usage.metering.service as metering_service
from agenthq_common.bus import Bus
from agenthq_common.events import CloudEvent
from agenthq_common.events.envelope import CONTENT_TYPE
from agenthq_common.migrations import create_database_if_missing, drop_database, upgrade
from agenthq_common.outbox import asyncpg_dsn
from agenthq_common.testing.infra import delete_bus_namespace
from agenthq_usage.main import bootstrap
from agenthq_usage.plans.catalog import METRICS
from agenthq_usage.settings import UsageSettings

POSTGRES_URL = eb.POSTGRES_URL
BROKER_URL = eb.BROKER_URL
REDIS_URL = os.environ.get("AGENTHQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

METERING_QUEUE = "usage.metering"
SERVICE_QUEUES = ("usage.metering", "usage.membership")
PREFETCH = 512  # usage.metering's, in bootstrap(); the baseline consumer uses the same
EVENTS_PER_S_GOAL = 5000.0
# Event type -> share of the published events.
MIX: dict[str, float] = {
    "task.created": 0.25,
    "task.completed": 0.20,
    "llm.tokens.used": 0.35,
    "api.calls": 0.12,
    "storage.changed": 0.08,
}
USERS_PER_TEAM = 20
WARMUP = 2000

clock = eb.clock
Key = tuple[str, str, str]  # (team or user id, UTC day, metric)


# =========================================================================== the events


def rng_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


class Workload:
    """The teams and the metered events; the expected sums of what was built."""

    def __init__(self, teams: int, seed: int, days: float, duplicates: float, personal: float):
        self.rng = random.Random(seed)
        self.days = days
        self.duplicates = duplicates
        self.personal = personal
        self.teams = [rng_uuid(self.rng) for _ in range(teams)]
        self.users = {t: [rng_uuid(self.rng) for _ in range(USERS_PER_TEAM)] for t in self.teams}
        self.loners = [rng_uuid(self.rng) for _ in range(50)]  # users acting without a team
        self.types, self.weights = list(MIX), list(MIX.values())
        self.team_sums: Counter[Key] = Counter()
        self.personal_sums: Counter[Key] = Counter()
        self.unique = 0

    def team_events(self, plan: str) -> list[CloudEvent]:
        at = datetime.now(UTC) - timedelta(days=40)
        return [
            CloudEvent(
                source="agenthq/bench",
                type="team.created",
                subject=f"team/{team}",
                teamid=team,
                actorid=self.users[team][0],
                time=at,
                data={
                    "team_id": str(team),
                    "name": f"bench team {i}",
                    "owner_id": str(self.users[team][0]),
                    "plan": plan,
                    "max_members": None,
                },
            )
            for i, team in enumerate(self.teams)
        ]

    def _one(self, now: datetime) -> CloudEvent:
        rng = self.rng
        type_ = rng.choices(self.types, self.weights)[0]
        team: uuid.UUID | None = rng.choice(self.teams)
        actor = rng.choice(self.users[team])  # type: ignore[index]
        at = now - timedelta(seconds=rng.uniform(0, self.days * 86400))
        match type_:
            case "task.created":
                data: dict[str, Any] = {"task_id": str(rng_uuid(rng))}
                quantity = 1
            case "task.completed":
                data = {"task_id": str(rng_uuid(rng)), "status": "done"}
                quantity = 1
            case "llm.tokens.used":
                quantity = rng.randint(20, 8000)
                data = {"tokens": quantity, "model": "gpt-bench"}
            case "api.calls":
                quantity = rng.randint(1, 500)
                data = {"count": quantity}
                if rng.random() < self.personal:
                    team, actor = None, rng.choice(self.loners)
            case _:
                quantity = rng.randint(-2_000_000, 8_000_000)
                data = {"delta_bytes": quantity}
        event = CloudEvent(
            id=rng_uuid(rng),
            source="agenthq/bench",
            type=type_,
            time=at,
            subject=f"team/{team}" if team else f"user/{actor}",
            teamid=team,
            actorid=actor,
            data=data,
        )
        metric = metering_service.METERED_TYPES[type_]
        day = at.astimezone(UTC).date().isoformat()
        if team is not None:
            self.team_sums[(str(team), day, metric)] += quantity
        else:
            self.personal_sums[(str(actor), day, metric)] += quantity
        self.unique += 1
        return event

    def usage_events(self, n: int) -> tuple[list[CloudEvent], int]:
        """``n`` messages, about ``duplicates`` of them copies of an earlier one
        (half of them close behind it, often in the same batch, half anywhere
        later); returns them in publishing order, and how many are unique."""
        copies = round(n * self.duplicates)
        unique = n - copies
        now = datetime.now(UTC)
        originals = [self._one(now) for _ in range(unique)]
        order: list[tuple[float, int, int]] = [(float(i), 0, i) for i in range(unique)]
        for _ in range(copies):
            i = self.rng.randrange(unique)
            near = self.rng.random() < 0.5
            offset = self.rng.uniform(0, 64) if near else self.rng.uniform(0, unique - i)
            order.append((i + offset, 1, i))
        order.sort()
        return [originals[i] for _, _, i in order], unique


# =========================================================================== child processes


class Publisher(eb.Worker):
    """Confirmed persistent publishes of prepared CloudEvents to a topic exchange
    (the service's, or the baseline's), routed by event type; the same code for both."""

    async def start(self) -> None:
        c = self.config
        # connect_robust, like the Bus: the same connection class on both sides.
        self.connection = await aio_pika.connect_robust(BROKER_URL)
        channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await channel.declare_exchange(
            c["exchange"], aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.workload = Workload(c["teams"], c["seed"], c["days"], c["duplicates"], c["personal"])
        self.messages: list[tuple[str, bytes, str]] = []  # (id, body, type)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()

    async def cmd_prepare(self, kind: str, n: int = 0) -> dict[str, int]:
        """Build and serialise the next scenario's messages (outside the measured part)."""
        if kind == "teams":
            built, unique = self.workload.team_events(self.config["plan"]), len(self.teams)
        else:
            built, unique = self.workload.usage_events(n)
        self.messages = [(str(e.id), e.to_bytes(), e.type) for e in built]
        return {"messages": len(self.messages), "unique": unique}

    @property
    def teams(self) -> list[uuid.UUID]:
        return self.workload.teams

    async def _publish(self, key: str, body: bytes, type_: str) -> None:
        message = aio_pika.Message(
            body,
            message_id=key,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=type_,
        )
        await self.exchange.publish(message, routing_key=type_)

    async def cmd_publish(self, batch: int, producers: int) -> dict[str, float]:
        async def write(chunk: Sequence[tuple[str, bytes, str]]) -> None:
            await asyncio.gather(*(self._publish(*m) for m in chunk))

        first = clock()  # right before the first publish()
        await eb.run_producers(eb.batched(self.messages, batch), producers, write)
        return {"first": first, "last": clock(), "messages": len(self.messages)}

    async def cmd_expected(self) -> dict[str, Any]:
        w = self.workload
        return {"team": dict(w.team_sums), "personal": dict(w.personal_sums), "unique": w.unique}


class Consumer(eb.Worker):
    """Records each settled batch; ``collect`` waits until a scenario's messages are in."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.batches: list[tuple[float, float, int]] = []  # (started, committed, messages)
        self.seen: set[str] = set()
        self.first_seen: dict[str, float] = {}
        self.ok = self.failed = self.redelivered = 0
        self.want = (0, 0)  # (messages, unique)
        self.all_in = asyncio.Event()

    def record(
        self,
        messages: Sequence[AbstractIncomingMessage],
        outcomes: Sequence[Exception | None],
        started: float,
        done: float,
    ) -> None:
        self.batches.append((started, done, len(messages)))
        for message, outcome in zip(messages, outcomes, strict=True):
            self.redelivered += bool(message.redelivered)
            if outcome is not None:
                self.failed += 1  # retried by the bus: it comes back
                continue
            self.ok += 1
            key = message.message_id or ""
            if key not in self.seen:
                self.seen.add(key)
                self.first_seen[key] = done
        if self.want[0] and self.ok >= self.want[0] and len(self.seen) >= self.want[1]:
            self.all_in.set()

    async def cmd_begin(self, measured: bool, profile: bool = False) -> None:
        """A scenario starts: forget the last one, profile this one if asked."""
        self.batches.clear()
        self.seen.clear()
        self.first_seen.clear()
        self.ok = self.failed = self.redelivered = 0
        self.want = (0, 0)
        self.all_in.clear()
        if profile and self.profiler is None:
            self.profiler = cProfile.Profile()  # wall time
        self.profile_on(measured)

    async def cmd_collect(self, messages: int, unique: int, timeout: float) -> dict[str, Any]:
        """Wait until ``messages`` messages (``unique`` distinct ids) were handled."""
        self.want = (messages, unique)
        try:
            if not (self.ok >= messages and len(self.seen) >= unique):
                try:
                    await asyncio.wait_for(self.all_in.wait(), timeout)
                except TimeoutError:
                    raise eb.Incomplete(
                        f"only {self.ok} of {messages} messages ({len(self.seen)} of {unique} "
                        f"events) handled within {timeout:.0f} s"
                    ) from None
        finally:
            self.profile_off()
        return {
            "ok": self.ok,
            "unique": len(self.seen),
            "failed": self.failed,
            "redelivered": self.redelivered,
            "first_started": min(s for s, _, _ in self.batches),
            "last_done": max(d for _, d, _ in self.batches),
            "last_unique_done": max(self.first_seen.values()),
            "batches": list(self.batches),
            **self.extra(),
        }

    def extra(self) -> dict[str, Any]:
        return {}


class StageTimer:
    """Wall time spent in wrapped functions, summed (calls never overlap: one
    consumer worker handles one batch at a time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.applied = 0

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.applied = 0

    def wrap_async(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] += clock() - start
                self.calls[name] += 1

        return timed

    def wrap_sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += clock() - start
                self.calls[name] += 1

        return timed


STAGES = (
    "parse + validate (CloudEvent, data model)",
    "inbox insert",
    "metered_from_event",
    "count: ledger + counters (1 statement)",
    "check_quotas",
    "commit",
    "other (session, begin, bookkeeping)",
)


class UsageService(Consumer):
    """The usage service as it runs (consumers and relay), with ``usage.metering``'s
    batches timed once their transaction has committed (before the ack)."""

    async def start(self) -> None:
        c = self.config
        settings = UsageSettings(
            database_url=c["db_url"],
            postgres_url=POSTGRES_URL,
            broker_url=BROKER_URL,
            redis_url=REDIS_URL,
            bus_namespace=c["namespace"],
            log_json=False,
            log_level="WARNING",
        )
        self.service = bootstrap(settings, run_jobs=False)
        metering = next(x for x in self.service.consumers if x.name == METERING_QUEUE)
        t = self.timer = StageTimer()
        # Wrapped in this process only: the service's code is unchanged.
        handle = t.wrap_async("batch", metering.handle_messages)
        metering._parse = t.wrap_sync(STAGES[0], metering._parse)  # type: ignore[method-assign]
        apply = t.wrap_async("_apply", metering._apply)

        async def counted_apply(*args: Any) -> Any:
            applied = await apply(*args)
            t.applied += len(applied)
            return applied

        metering._apply = counted_apply  # type: ignore[method-assign]
        metering._batch_handlers[:] = [
            (p, t.wrap_async("batch handler", h)) for p, h in metering._batch_handlers
        ]
        metering_service.count = t.wrap_async(STAGES[3], metering_service.count)
        metering_service.metered_from_event = t.wrap_sync(
            STAGES[2], metering_service.metered_from_event
        )
        billing_service.Billing.after_counting = t.wrap_async(  # type: ignore[method-assign]
            STAGES[4], billing_service.Billing.after_counting
        )
        common_db.UnitOfWork.commit = t.wrap_async(STAGES[5], common_db.UnitOfWork.commit)  # type: ignore[method-assign]

        async def timed(messages: list[AbstractIncomingMessage]) -> list[Exception | None]:
            started = clock()
            outcomes = await handle(messages)
            self.record(messages, outcomes, started, clock())  # committed, not yet acked
            return outcomes

        metering.handle_messages = timed  # type: ignore[method-assign]
        await self.service.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.service.stop()

    async def cmd_begin(self, measured: bool, profile: bool = False) -> None:
        await super().cmd_begin(measured, profile)
        self.timer.clear()

    def extra(self) -> dict[str, Any]:
        s = self.timer.seconds
        handler = s["batch handler"] - s[STAGES[2]] - s[STAGES[3]] - s[STAGES[4]]
        stages = {
            STAGES[0]: s[STAGES[0]],
            STAGES[1]: s["_apply"] - s["batch handler"],  # the inbox statement, mostly
            STAGES[2]: s[STAGES[2]] + max(handler, 0.0),
            STAGES[3]: s[STAGES[3]],
            STAGES[4]: s[STAGES[4]],
            STAGES[5]: s[STAGES[5]],
        }
        stages[STAGES[6]] = s["batch"] - sum(stages.values())
        return {
            "stages_s": stages,
            "batch_s": s["batch"],
            "applied": self.timer.applied,
            "apply_calls": self.timer.calls["_apply"],
            "handler_calls": self.timer.calls["batch handler"],
        }


class BaselineConsumer(Consumer):
    """bench/events.py's baseline consumer: a durable queue bound to the topic
    exchange (here to every key), the same prefetch, one ack per message."""

    async def start(self) -> None:
        c = self.config
        self.connection = await aio_pika.connect_robust(BROKER_URL)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=c["prefetch"])
        exchange = await channel.declare_exchange(
            c["exchange"], aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(c["queue"], durable=True)
        await queue.bind(exchange, routing_key="#")

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            t = clock()
            self.record([message], [None], t, t)

        await queue.consume(on_message)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


ROLES: dict[str, type[eb.Worker]] = {
    "usage-service": UsageService,
    "baseline-consumer": BaselineConsumer,
    "pipeline-publisher": Publisher,
    "baseline-publisher": Publisher,
}


def child_main(role: str, conn: Connection, config: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    asyncio.run(eb.serve(ROLES[role](config), conn))


class Proc(eb.Proc):
    """bench/events.py's child process, running this module's roles."""

    child_main = staticmethod(child_main)


# =========================================================================== orchestrator


class Side:
    def __init__(self, name: str, publisher: Proc, consumer: Proc) -> None:
        self.name = name
        self.publisher = publisher
        self.consumer = consumer

    async def run(
        self,
        meter: eb.CpuMeter,
        kind: str,
        n: int,
        args: argparse.Namespace,
        measured: bool,
        profile: bool = False,
    ) -> dict[str, Any]:
        built = await self.publisher.call("prepare", kind, n, timeout=600)
        messages, unique = built["messages"], built["unique"]
        await self.consumer.call("begin", measured, profile)
        before = await meter.snapshot([self.publisher, self.consumer])
        timeout = max(600.0, messages / 100)
        pub = await self.publisher.call("publish", args.batch, args.producers, timeout=timeout)
        cons = await self.consumer.call("collect", messages, unique, timeout, timeout=timeout + 60)
        after = await meter.snapshot([self.publisher, self.consumer])
        if cons["redelivered"]:
            # A broker restart or a consumer that lost its channel: not this run's figures.
            raise eb.Incomplete(f"{self.name}: {cons['redelivered']} messages redelivered")
        span = cons["last_done"] - pub["first"]
        done = sorted(d for _, d, k in cons["batches"] for _ in range(k))
        lo, hi = done[len(done) // 10], done[(len(done) * 9) // 10]
        figures: dict[str, Any] = {
            "messages": messages,
            "unique": unique,
            "duplicates": messages - unique,
            "events_per_s": messages / span,
            "unique_per_s": unique / (cons["last_unique_done"] - pub["first"]),
            "steady_events_per_s": (len(done) * 8 // 10) / (hi - lo) if hi > lo else math.nan,
            "publish_per_s": messages / (pub["last"] - pub["first"]),
            "seconds": span,
            "failed_then_retried": cons["failed"],
            "cpu_ms_per_event": eb.CpuMeter.per_event(before, after, messages),
            "batch_size": eb.summary([float(k) for _, _, k in cons["batches"]]),
            "batch_ms": eb.summary([(d - s) * 1e3 for s, d, _ in cons["batches"]]),
            "batches": len(cons["batches"]),
        }
        if "stages_s" in cons:
            figures["stage_ms_per_event"] = {
                k: v * 1e3 / messages for k, v in cons["stages_s"].items()
            }
            figures["busy_share"] = cons["batch_s"] / span  # consumer worker busy / wall
            figures["applied"] = cons["applied"]
            figures["apply_calls"] = cons["apply_calls"]
            figures["handler_calls"] = cons["handler_calls"]
            if cons["applied"] != unique:
                raise eb.ChildFailed(
                    f"{self.name}: {cons['applied']} events applied for {unique} unique ones"
                )
        return figures


async def wait_counted(db_url: str, unique: int, within: float = 60.0) -> None:
    """The ledger holds every unique event (the consumer said so; this is belt and braces)."""
    deadline = clock() + within
    while True:
        conn = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            got = int(await conn.fetchval("SELECT count(*) FROM metered_events"))
        finally:
            await conn.close()
        if got >= unique or clock() >= deadline:
            return
        await asyncio.sleep(0.5)


async def check_exact(db_url: str, expected: dict[str, Any]) -> dict[str, Any]:
    """Compare the counters and the ledger with the publisher's sums of unique events."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        counters: Counter[Key] = Counter()
        for r in await conn.fetch(f"SELECT team_id, date, {', '.join(METRICS)} FROM usage_stats"):
            for m in METRICS:
                counters[(str(r["team_id"]), r["date"].isoformat(), m)] += r[m]
        personal: Counter[Key] = Counter()
        for r in await conn.fetch("SELECT user_id, date, api_calls FROM personal_usage_stats"):
            personal[(str(r["user_id"]), r["date"].isoformat(), "api_calls")] += r["api_calls"]
        ledger_team: Counter[Key] = Counter()
        ledger_personal: Counter[Key] = Counter()
        for r in await conn.fetch(
            "SELECT team_id, user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, metric, "
            "sum(quantity)::bigint AS total FROM metered_events GROUP BY 1, 2, 3, 4"
        ):
            if r["team_id"] is not None:
                ledger_team[(str(r["team_id"]), r["day"].isoformat(), r["metric"])] += r["total"]
            else:
                key = (str(r["user_id"]), r["day"].isoformat(), r["metric"])
                ledger_personal[key] += r["total"]
        ledger_rows = int(await conn.fetchval("SELECT count(*) FROM metered_events"))
        ledger_ids = int(await conn.fetchval("SELECT count(DISTINCT event_id) FROM metered_events"))
        inbox_rows = int(
            await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", METERING_QUEUE)
        )
    finally:
        await conn.close()

    def diff(name: str, want: dict[Key, int], got: Counter[Key]) -> list[str]:
        out = []
        for key in sorted(set(want) | set(got)):
            w, g = want.get(key, 0), got.get(key, 0)
            if w != g:
                out.append(f"{name} {key}: expected {w}, found {g} ({g - w:+d})")
        return out

    want_team = {tuple(k): v for k, v in expected["team"].items()}
    want_personal = {tuple(k): v for k, v in expected["personal"].items()}
    problems = [
        *diff("usage_stats", want_team, counters),
        *diff("personal_usage_stats", want_personal, personal),
        *diff("ledger (team)", want_team, ledger_team),
        *diff("ledger (personal)", want_personal, ledger_personal),
    ]
    if ledger_rows != expected["unique"] or ledger_ids != ledger_rows:
        problems.insert(
            0,
            f"metered_events: {ledger_rows} rows ({ledger_ids} distinct ids) "
            f"for {expected['unique']} unique events published",
        )
    return {
        "exact": not problems,
        "problems": problems,
        "unique_events": expected["unique"],
        "ledger_rows": ledger_rows,
        "inbox_rows": inbox_rows,
        "team_day_metric_sums": sum(1 for v in want_team.values() if v),
        "personal_sums": sum(1 for v in want_personal.values() if v),
        "usage_stats_total": {
            m: sum(v for (_, _, mm), v in counters.items() if mm == m) for m in METRICS
        },
    }


async def delete_namespace(namespace: str, baseline: dict[str, str]) -> None:
    bus = Bus(BROKER_URL, namespace=namespace)
    queues = [baseline["queue"]]
    for name in SERVICE_QUEUES:
        q = bus.topology.queue(name)
        queues += [q, f"{q}.dlq"]
        queues += [bus._retry_queue(q, i) for i in range(1, bus.max_retries + 1)]  # its naming
    exchanges = [bus.topology.exchange, bus.topology.dlx, baseline["exchange"]]
    try:
        for problem in await eb.delete_broker_objects(queues, exchanges):
            print(f"cleanup: could not delete {problem}", file=sys.stderr)
        await delete_bus_namespace(BROKER_URL, namespace)  # anything else under it
    except Exception as exc:
        print(f"cleanup: broker namespace {namespace}: {exc!r}", file=sys.stderr)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    database = f"agenthq_bench_{tag}"
    db_url = f"{POSTGRES_URL.rstrip('/')}/{database}"
    namespace = f"bench-{tag}."
    baseline = {"exchange": f"{namespace}baseline", "queue": f"{namespace}baseline.q"}
    workload = {
        "teams": args.teams,
        "seed": args.seed,
        "days": args.days,
        "duplicates": args.duplicates,
        "personal": args.personal,
        "plan": args.plan,
    }
    ctx = multiprocessing.get_context("spawn")
    procs: list[Proc] = []
    f: dict[str, Any] = {"database": database, "namespace": namespace}
    admin = await eb.connect_admin()
    await (await eb.connect_patiently()).close()
    try:
        await create_database_if_missing(db_url)
        await asyncio.to_thread(upgrade, "usage", db_url)  # Alembic runs its own loop
        # Consumers first: their queues must exist and be bound before anything is published.
        service = Proc(
            ctx, "usage-service", {"profile": False, "db_url": db_url, "namespace": namespace}
        )
        base_consumer = Proc(ctx, "baseline-consumer", {**baseline, "prefetch": PREFETCH})
        procs += [service, base_consumer]
        await asyncio.gather(service.call("start"), base_consumer.call("start"))
        exchange = Bus(BROKER_URL, namespace=namespace).topology.exchange
        pub_p = Proc(ctx, "pipeline-publisher", {**workload, "exchange": exchange})
        pub_b = Proc(ctx, "baseline-publisher", {**workload, "exchange": baseline["exchange"]})
        procs += [pub_p, pub_b]
        await asyncio.gather(pub_p.call("start"), pub_b.call("start"))
        f["pids"] = {p.role: p.pid for p in procs}
        print(
            "processes: "
            + ", ".join(f"{p.role} {p.pid}" for p in procs)
            + f"; database {database}",
            flush=True,
        )
        pipeline = Side("pipeline", pub_p, service)
        base = Side("baseline", pub_b, base_consumer)
        meter = eb.CpuMeter(admin, database, await eb.find_rabbitmq_async())

        # The teams and their plans, then a warm-up of each side.
        await pipeline.run(meter, "teams", 0, args, measured=False)
        warm = min(WARMUP, args.events)
        for side in (base, pipeline):
            await side.run(meter, "usage", warm, args, measured=False)

        for _ in range(args.repeat):
            for side in (base, pipeline):
                got = await side.run(meter, "usage", args.events, args, measured=True)
                best = f.get(side.name)
                if best is None or got["events_per_s"] > best["events_per_s"]:
                    f[side.name] = got
                print(
                    f"  {side.name}: {got['events_per_s']:,.0f} events/s "
                    f"({got['messages']:,} messages in {got['seconds']:.1f} s)",
                    flush=True,
                )

        missed = f["pipeline"]["events_per_s"] < EVENTS_PER_S_GOAL
        if args.profile == "on" or (args.profile == "auto" and missed):
            n = min(args.events, args.profile_events)
            print(f"  profiling the usage service (cProfile, wall time) over {n:,} events")
            f["profile_run"] = await pipeline.run(
                meter, "usage", n, args, measured=True, profile=True
            )
            f["profile"] = await service.call("profile", "usage-service", args.profile_top)

        expected = await pub_p.call("expected", timeout=300)
        await wait_counted(db_url, expected["unique"])
        f["exactness"] = await check_exact(db_url, expected)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
        try:
            await drop_database(db_url)
        except Exception as exc:
            print(f"cleanup: database {database}: {exc!r}", file=sys.stderr)
        await delete_namespace(namespace, baseline)
    return f


def measure_sync(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, starting afresh (new processes, database and namespace) if
    PostgreSQL or RabbitMQ went away under the run."""
    for attempt in range(1, args.attempts + 1):
        try:
            return asyncio.run(measure(args))
        except eb.TRANSIENT as exc:
            if attempt == args.attempts:
                raise
            print(f"attempt {attempt} disturbed ({exc!r:.300}); starting again", file=sys.stderr)
    raise AssertionError("unreachable")


# =========================================================================== report

fmt = eb.fmt


def figures_table(f: dict[str, Any]) -> str:
    p, b = f["pipeline"], f["baseline"]
    ok = p["events_per_s"] >= EVENTS_PER_S_GOAL
    rows = [
        [
            "events/s, first publish -> last committed / acked",
            fmt(p["events_per_s"]),
            fmt(b["events_per_s"]),
            eb.ratio(p["events_per_s"], b["events_per_s"]),
            f">= {EVENTS_PER_S_GOAL:,.0f}/s: " + ("PASS" if ok else "MISS"),
        ],
        [
            "unique events/s, first publish -> last counted",
            fmt(p["unique_per_s"]),
            fmt(b["unique_per_s"]),
            eb.ratio(p["unique_per_s"], b["unique_per_s"]),
            "",
        ],
        [
            "steady events/s (10 % -> 90 % handled)",
            fmt(p["steady_events_per_s"]),
            fmt(b["steady_events_per_s"]),
            eb.ratio(p["steady_events_per_s"], b["steady_events_per_s"]),
            "",
        ],
        [
            "publisher events/s (confirmed)",
            fmt(p["publish_per_s"]),
            fmt(b["publish_per_s"]),
            eb.ratio(p["publish_per_s"], b["publish_per_s"]),
            "",
        ],
        ["wall time (s)", fmt(p["seconds"], 2), fmt(b["seconds"], 2), "", ""],
    ]
    return eb.table(["", "pipeline", "baseline", "pipe/base", "goal"], rows)


def consumer_report(p: dict[str, Any]) -> str:
    rows = [
        [name, fmt(ms, 3), f"{100 * ms / sum(p['stage_ms_per_event'].values()):.0f} %", ""]
        for name, ms in p["stage_ms_per_event"].items()
    ]
    stages = eb.table(["usage.metering batch, by stage", "ms/event", "share", ""], rows)
    bs, bm = p["batch_size"], p["batch_ms"]
    total = sum(p["stage_ms_per_event"].values())
    rest = total - p["stage_ms_per_event"][STAGES[4]]
    capacity = (
        f"\nConsumer capacity at these costs: {1e3 / total:,.0f} messages per second spent in "
        f"handle_messages; without check_quotas's share (an estimate, not a measurement): "
        f"{1e3 / rest:,.0f}/s."
        if total > 0 and rest > 0
        else ""
    )
    return (
        f"{stages}\n"
        f"batches: {p['batches']:,}, size p50 {bs['p50']:.0f} / p95 {bs['p95']:.0f} / max "
        f"{bs['max']:.0f} messages, duration p50 {bm['p50']:.1f} / p95 {bm['p95']:.1f} / max "
        f"{bm['max']:.1f} ms; the consumer worker was busy {100 * p['busy_share']:.0f} % of "
        f"the wall time; {p['applied']:,} events applied, {p['messages'] - p['applied']:,} "
        f"duplicates dropped by the inbox.\nPer batch: {p['apply_calls'] / p['batches']:.2f} "
        f"transactions, the batch handler (count + check_quotas) called "
        f"{p['handler_calls'] / p['batches']:.1f} times (once per batch; check_quotas costs "
        f"two queries per batch, none when no team has a hard limit)"
        + capacity
        + (
            f"; {p['failed_then_retried']} messages failed and were retried"
            if p["failed_then_retried"]
            else ""
        )
    )


CPU_ROWS = [
    ("publishing process", "pipeline-publisher", "baseline-publisher"),
    ("consuming process", "usage-service", "baseline-consumer"),
    ("  of which in the kernel", "usage-service kernel", "baseline-consumer kernel"),
    ("postgres, the service's backends", "postgres for usage-service", None),
    ("rabbitmq node (shared)", "rabbitmq", "rabbitmq"),
]


def cpu_table(f: dict[str, Any]) -> str:
    rows = []
    for label, pkey, bkey in CPU_ROWS:
        pv = f["pipeline"]["cpu_ms_per_event"].get(pkey)
        bv = f["baseline"]["cpu_ms_per_event"].get(bkey) if bkey else None
        rows.append([label, fmt(pv, 3), fmt(bv, 3), ""])
    rows.append(
        [
            "machine busy, all cores (%)",
            fmt(f["pipeline"]["cpu_ms_per_event"]["machine busy %"], 0),
            fmt(f["baseline"]["cpu_ms_per_event"]["machine busy %"], 0),
            "",
        ]
    )
    return eb.table(["CPU ms per event", "pipeline", "baseline", ""], rows)


def exactness_report(x: dict[str, Any]) -> str:
    if x["exact"]:
        return (
            f"EXACT: metered_events holds the {x['ledger_rows']:,} unique events published "
            f"(duplicates included in the stream, none counted twice); usage_stats equals the "
            f"publisher's sums in all {x['team_day_metric_sums']:,} (team, UTC day, metric) "
            f"cells, personal_usage_stats in all {x['personal_sums']:,}, and the ledger's "
            "own sums agree"
        )
    lines = [f"NOT EXACT: {len(x['problems'])} differences, the first ones:"]
    lines += [f"  {p}" for p in x["problems"][:20]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="messages per measured run")
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument(
        "--plan",
        default="enterprise",
        help="every team's plan (team.created); enterprise has no hard limit",
    )
    parser.add_argument("--duplicates", type=float, default=0.10, help="share of copies")
    parser.add_argument(
        "--personal", type=float, default=0.02, help="share of api.calls without a team"
    )
    parser.add_argument("--days", type=float, default=3.0, help="event times over the last N days")
    parser.add_argument("--batch", type=int, default=50, help="publishes per gather")
    parser.add_argument("--producers", type=int, default=4, help="concurrent publishing tasks")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs (best is kept)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 events")
    parser.add_argument(
        "--profile",
        choices=["auto", "on", "off"],
        default="auto",
        help="an extra cProfiled run of the service (auto: when the goal is missed)",
    )
    parser.add_argument("--profile-events", type=int, default=20_000)
    parser.add_argument("--profile-top", type=int, default=25, help="functions per listing")
    parser.add_argument(
        "--attempts", type=int, default=3, help="runs to try if PostgreSQL/RabbitMQ go away"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 5000)
        args.profile_events = min(args.profile_events, 5000)

    print(
        f"usage metering: {args.events:,} messages per run ({args.duplicates:.0%} copies of "
        f"earlier events) of 5 metered types over {args.teams} teams (plan {args.plan}), "
        f"times over the last {args.days:g} days; {args.batch} publishes per gather from "
        f"{args.producers} tasks; best of {args.repeat}",
        flush=True,
    )
    load_before = os.getloadavg()
    f = measure_sync(args)
    load_after = os.getloadavg()
    f["loadavg"] = {"before": load_before, "after": load_after, "cpus": os.cpu_count()}
    profile = f.pop("profile", None)
    if profile:
        print(f"\ncProfile (wall time) of the usage service, profiled run:\n{profile}")
        pr = f["profile_run"]
        print("stages in the profiled run (slowed down by cProfile):")
        print(consumer_report(pr))
    print()
    print(figures_table(f))
    print()
    print(consumer_report(f["pipeline"]))
    print()
    print(cpu_table(f))
    print(
        f"load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.2f}' for x in load_after)}, on {os.cpu_count()} CPUs"
    )
    print()
    x = f["exactness"]
    print(exactness_report(x))
    print()
    passed = f["pipeline"]["events_per_s"] >= EVENTS_PER_S_GOAL
    goals = {
        "events_per_s": f["pipeline"]["events_per_s"],
        "events_per_s_goal": EVENTS_PER_S_GOAL,
        "events_per_s_pass": passed,
        "ratio_to_baseline": f["pipeline"]["events_per_s"] / f["baseline"]["events_per_s"],
        "exact": x["exact"],
    }
    payload = {"bench": "usage", "args": vars(args), "goals": goals, **f}
    print("BENCH_JSON " + json.dumps(eb.nan_to_none(payload), default=str, sort_keys=True))
    if not x["exact"]:
        return 2
    return 1 if (not passed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
