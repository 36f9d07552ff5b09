"""Failure drills: faults injected under a stream of writes, events and sockets.

``make chaos`` (``agenthq-dev chaos``) and ``tests/chaos`` run them against
the whole system started as ``make run REPLICAS=2`` starts it (two processes
of every service behind HAProxy), on private PostgreSQL, Redis and RabbitMQ
servers (``private_infra``): the machine's own servers are shared and never
touched. Every drill, on a team of its own:

1. opens sockets to the realtime service (through HAProxy) that reconnect
   and resume (``?since=<last frame id>``) by themselves, as the console does;
2. runs a stream: workspaces created through the gateway by several writers
   (each write retried with one ``Idempotency-Key`` until it is answered),
   ``llm.tokens.used`` events published to the bus by a producer (each
   retried until the broker confirms it), and ``task.completed`` usage
   reports posted to the usage ingest (each batch retried until accepted);
3. injects its fault mid-stream while every replica's ``/readyz`` is polled;
4. after recovery, keeps the stream going a little, stops it, waits for the
   effects to arrive, and checks that nothing was lost and nothing doubled:
   each workspace once, one activity record per event (by the activity API,
   and by event id in the activity database), usage counters exact, every
   socket got every frame once (frame ids and event markers), no message
   dead-lettered, every ``/readyz`` went 503 during an infrastructure outage
   and 200 after, and every client (socket, write, producer) got through by
   itself.

The drills: ``kill-replicas`` (SIGKILL one replica of every service,
mid-stream, then start them again), ``rabbitmq-restart`` (``rabbitmqctl
stop_app`` / ``start_app``), ``redis-restart`` and ``postgres-stop`` (stopped
for 5 s). See docs/failure-drills.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, registry
from agenthq_common.migrations import create_database_if_missing, upgrade
from agenthq_devctl.private_infra import PrivateInfra, private_infrastructure
from agenthq_devctl.services import SERVICES
from agenthq_devctl.supervisor import Stack, free_port

Say = Callable[[str], None]
PASSWORD = "correct horse battery"


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Profile:
    """How hard and how long a drill pushes."""

    name: str
    writers: int  # concurrent workspace writers
    write_pause: float  # seconds between one writer's writes
    bus_rate: float  # llm.tokens.used events published per second
    ingest_every: float  # seconds between usage ingest batches
    ingest_batch: int  # task.completed events per batch
    sockets: int  # realtime sockets kept open
    before: float  # seconds of stream before the fault
    after: float  # seconds of stream after recovery
    rabbit_down: float  # seconds between stop_app and start_app
    redis_down: float  # seconds Redis stays down
    postgres_down: float  # seconds PostgreSQL stays down (the issue says 5)
    replicas_down: float  # seconds before killed replicas are started again
    converge: float  # seconds allowed for every effect to arrive
    # Seconds a client keeps retrying one write before giving up: beyond the
    # gateway's Idempotency-Key claim expiry (writes timeout + 30 s = 60 s),
    # which a retry may have to wait out when Redis failed mid-request.
    give_up: float
    readyz_interval: float = 0.25


SHORT = Profile(
    name="short",
    writers=2,
    write_pause=0.25,
    bus_rate=8,
    ingest_every=1.0,
    ingest_batch=5,
    sockets=3,
    before=2.0,
    after=3.0,
    rabbit_down=2.0,
    redis_down=2.0,
    postgres_down=5.0,
    replicas_down=1.0,
    converge=45.0,
    give_up=75.0,
)
LONG = Profile(
    name="long",
    writers=4,
    write_pause=0.05,
    bus_rate=40,
    ingest_every=0.5,
    ingest_batch=20,
    sockets=8,
    before=5.0,
    after=8.0,
    rabbit_down=5.0,
    redis_down=5.0,
    postgres_down=5.0,
    replicas_down=3.0,
    converge=90.0,
    give_up=75.0,
)
PROFILES = {p.name: p for p in (SHORT, LONG)}


# --------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """Private infrastructure and the replicated system running on it."""

    infra: PrivateInfra
    stack: Stack
    namespace: str
    ingest_credential: str
    database_urls: dict[str, str]
    startup_seconds: dict[str, float]

    @property
    def gateway_url(self) -> str:
        return self.stack.public_url("gateway")


async def _migrate(postgres_url: str, say: Say) -> dict[str, str]:
    urls = {s: f"{postgres_url}/agenthq_{s}" for s in SERVICES}

    await asyncio.gather(*(create_database_if_missing(u) for u in urls.values()))

    def upgrade_all() -> None:
        # One after the other: Alembic's context is a module global.
        for service, url in urls.items():
            upgrade(service, url)

    await asyncio.to_thread(upgrade_all)
    say(f"  migrated {len(urls)} databases")
    return urls


@asynccontextmanager
async def chaos_rig(
    root: Path, *, say: Say = _quiet, log_level: str = "INFO"
) -> AsyncIterator[Rig]:
    """Private servers in ``root``, every service twice behind HAProxy on
    them; all stopped at the end, whatever happens."""
    timings: dict[str, float] = {}
    began = time.perf_counter()
    say(f"Starting private PostgreSQL, Redis and RabbitMQ in {root} ...")
    async with private_infrastructure(root) as infra:
        timings.update({f"start {k}": v for k, v in infra.startup_seconds.items()})
        timings["private servers"] = time.perf_counter() - began
        say(
            "  up: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in infra.startup_seconds.items())
            + f" (postgres :{infra.postgres.port}, redis :{infra.redis.port}, "
            f"rabbitmq :{infra.rabbit.port} as {infra.rabbit.node})"
        )
        step = time.perf_counter()
        urls = await _migrate(infra.postgres_url, say)
        timings["migrations"] = time.perf_counter() - step
        credential = f"chaos-{secrets.token_hex(8)}"
        namespace = f"chaos-{secrets.token_hex(3)}."
        env = {
            "AGENTHQ_POSTGRES_URL": infra.postgres_url,
            "AGENTHQ_BROKER_URL": infra.broker_url,
            "AGENTHQ_REDIS_URL": infra.redis_url,
            "AGENTHQ_BUS_NAMESPACE": namespace,
            "AGENTHQ_OUTBOX_POLL_INTERVAL": "0.5",
            "AGENTHQ_USAGE_INGEST_CREDENTIALS": json.dumps([credential]),
            "AGENTHQ_RATE_LIMITS": json.dumps({}),
            "AGENTHQ_DB_POOL_SIZE": "3",
            "AGENTHQ_LOG_LEVEL": log_level,
            # A crashed realtime replica's presence goes within seconds.
            "AGENTHQ_REALTIME_PRESENCE_TTL_SECONDS": "6",
        }
        for service, url in urls.items():
            env[f"AGENTHQ_{service.upper()}_DATABASE_URL"] = url
        stack = Stack(
            log_dir=root / "logs",
            ports={s: free_port() for s in SERVICES},
            ws_port=free_port(),
            env=env,
            replicas=2,
        )
        step = time.perf_counter()
        say(f"Starting {len(SERVICES)} services x 2 behind HAProxy (logs in {stack.log_dir}) ...")
        try:
            await stack.start()
            await stack.wait_ready(
                timeout=240,
                on_waiting=lambda names: say(f"  still starting: {', '.join(names)}"),
            )
            timings["replicated stack"] = time.perf_counter() - step
            took = timings["replicated stack"]
            say(f"  ready after {took:.1f}s; gateway {stack.public_url('gateway')}")
            yield Rig(infra, stack, namespace, credential, urls, timings)
        finally:
            await stack.stop()


# --------------------------------------------------------------------------- observers


class ReadyzWatch:
    """Polls every replica's own ``/readyz`` (and HAProxy's, per service) in
    the background and keeps each one's transitions: (time, status), status
    being the HTTP code or 0 when nothing answered."""

    def __init__(self, stack: Stack, interval: float) -> None:
        self.stack = stack
        self.interval = interval
        self.transitions: dict[str, list[tuple[float, int]]] = {}
        self._task: asyncio.Task[None] | None = None

    def targets(self) -> dict[str, str]:
        found = {name: f"{p.url}/readyz" for name, p in self.stack.processes.items()}
        for service in SERVICES:
            found[f"haproxy:{service}"] = f"{self.stack.public_url(service)}/readyz"
        return found

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(3.0, connect=1.0)) as client:

            async def probe(name: str, url: str) -> None:
                try:
                    status = (await client.get(url)).status_code
                except httpx.HTTPError:
                    status = 0
                seen = self.transitions.setdefault(name, [])
                if not seen or seen[-1][1] != status:
                    seen.append((time.monotonic(), status))

            while True:
                started = time.monotonic()
                await asyncio.gather(*(probe(n, u) for n, u in self.targets().items()))
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="readyz-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def all_ready(self, names: list[str], within: float) -> float:
        """When every one of ``names`` was last seen ready (or the deadline)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            now = time.monotonic()
            if all(self.status_at(n, now) == 200 for n in names):
                break
            await asyncio.sleep(0.2)  # the next round of probes
        return time.monotonic()

    def status_at(self, name: str, at: float) -> int | None:
        status = None
        for t, s in self.transitions.get(name, []):
            if t > at:
                break
            status = s
        return status

    def first(self, name: str, after: float, wanted: Callable[[int], bool]) -> float | None:
        """The first time at or after ``after`` when ``name``'s status was wanted."""
        if (now := self.status_at(name, after)) is not None and wanted(now):
            return after
        for t, s in self.transitions.get(name, []):
            if t >= after and wanted(s):
                return t
        return None

    def seen_between(self, name: str, start: float, end: float) -> set[int]:
        statuses = {s for t, s in self.transitions.get(name, []) if start <= t <= end}
        if (before := self.status_at(name, start)) is not None:
            statuses.add(before)
        return statuses


@dataclass
class SocketClient:
    """A realtime client that reconnects and resumes by itself, like the console."""

    index: int
    url: str  # without since
    frames: list[dict[str, Any]] = field(default_factory=list)  # every frame with an id
    connects: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (lost at, welcomed at)
    close_codes: Counter[str] = field(default_factory=Counter)
    resume_failed: int = 0
    since: str | None = None
    open: bool = False
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        import websockets
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        lost_at: float | None = None
        backoff = 0.1
        while not stop.is_set():
            url = self.url + (f"&since={self.since}" if self.since else "")
            try:
                async with websockets.connect(url, open_timeout=5, max_size=None) as ws:
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if welcome.get("type") != "welcome":
                        raise ConnectionError(f"no welcome: {welcome}")
                    self.connects += 1
                    self.open = True
                    backoff = 0.1
                    if lost_at is not None:
                        self.gaps.append((lost_at, time.monotonic()))
                        lost_at = None
                    if self.since is None:
                        self.since = welcome["last_id"]
                    self.welcomed.set()
                    stopping = asyncio.create_task(stop.wait())
                    try:
                        while True:
                            receiving = asyncio.create_task(ws.recv())
                            done, _ = await asyncio.wait(
                                {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
                            )
                            if receiving not in done:
                                receiving.cancel()
                                return
                            frame = json.loads(receiving.result())
                            if frame.get("type") == "resume.failed":
                                self.resume_failed += 1
                            if "id" in frame:
                                self.frames.append(frame)
                                self.since = frame["id"]
                    finally:
                        stopping.cancel()
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, ValueError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                self.close_codes[str(code) if code is not None else type(exc).__name__] += 1
            if self.open:
                self.open = False
                lost_at = time.monotonic()
            if not stop.is_set():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


@dataclass
class Write:
    name: str
    key: str
    outcome: str = "pending"  # created | created-earlier | refused | gave-up
    workspace_id: str | None = None
    attempts: int = 0
    began: float = field(default_factory=time.monotonic)
    done_at: float | None = None


class WriteStream:
    """Writers creating workspaces through the gateway, each write retried
    with its Idempotency-Key until the system answers it."""

    def __init__(
        self, client: httpx.AsyncClient, team_id: str, headers: dict[str, str], tag: str, p: Profile
    ) -> None:
        self.client, self.team_id, self.headers, self.tag, self.p = client, team_id, headers, tag, p
        self.writes: list[Write] = []
        self.statuses: Counter[str] = Counter()

    async def _write(self, name: str) -> Write:
        write = Write(name, uuid.uuid4().hex)
        self.writes.append(write)
        backoff = 0.1
        while True:
            write.attempts += 1
            try:
                response = await self.client.post(
                    f"/v1/teams/{self.team_id}/workspaces",
                    json={"name": name},
                    headers={**self.headers, "Idempotency-Key": write.key},
                )
            except httpx.HTTPError as exc:
                self.statuses[type(exc).__name__] += 1
            else:
                self.statuses[str(response.status_code)] += 1
                code = _error_code(response)
                if response.status_code == 201:
                    write.outcome, write.workspace_id = "created", response.json()["id"]
                elif response.status_code == 409 and code == "name_taken" and write.attempts > 1:
                    # An earlier attempt committed, and its answer was lost on the way.
                    write.outcome = "created-earlier"
                elif response.status_code < 500 and response.status_code not in (409, 429):
                    write.outcome = f"refused {response.status_code} {code}"
            if write.outcome != "pending":
                write.done_at = time.monotonic()
                return write
            if time.monotonic() - write.began > self.p.give_up:
                write.outcome, write.done_at = "gave-up", time.monotonic()
                return write
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def run(self, writer: int, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            await self._write(f"{self.tag}-w{writer}-{n}")
            n += 1
            await asyncio.sleep(self.p.write_pause)


def _error_code(response: httpx.Response) -> str | None:
    with contextlib.suppress(Exception):
        return str(response.json()["error"]["code"])
    return None


class EventStream:
    """A producer of ``llm.tokens.used`` events on the bus (each retried until
    confirmed, with its own id), and usage reports to the HTTP ingest."""

    def __init__(self, rig: Rig, team_id: str, owner_id: str, tag: str, p: Profile) -> None:
        self.rig, self.team_id, self.owner_id, self.tag, self.p = rig, team_id, owner_id, tag, p
        self.published: list[tuple[str, int, float]] = []  # (marker, tokens, confirmed at)
        self.publish_failures: Counter[str] = Counter()
        self.reported: list[str] = []  # ids of task.completed events accepted
        self.report_days: set[date] = set()
        self.ingest_statuses: Counter[str] = Counter()
        self.ingest_duplicates = 0

    async def publish(self, stop: asyncio.Event) -> None:
        bus = Bus(self.rig.infra.broker_url, namespace=self.rig.namespace, publish_timeout=3.0)
        await bus.connect()
        try:
            i = 0
            while not stop.is_set():
                marker, tokens = f"{self.tag}-{i}", i % 9 + 1
                event = registry.create(
                    "llm.tokens.used",
                    {"tokens": tokens, "model": marker},
                    source="agenthq/chaos",
                    actor=Actor(id=uuid.UUID(self.owner_id)),
                    team_id=uuid.UUID(self.team_id),
                )
                while True:
                    try:
                        await bus.publish(event)
                        break
                    except Exception as exc:  # the broker is away: the same event again
                        self.publish_failures[type(exc).__name__] += 1
                        await asyncio.sleep(0.2)
                self.published.append((marker, tokens, time.monotonic()))
                i += 1
                await asyncio.sleep(1.0 / self.p.bus_rate)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.close(), 5)

    async def report(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.rig.ingest_credential}"}
        while not stop.is_set():
            now = datetime.now(UTC)
            batch = [
                {
                    "id": str(uuid.uuid4()),
                    "team_id": self.team_id,
                    "type": "task.completed",
                    "quantity": 1,
                    "time": now.isoformat(),
                }
                for _ in range(self.p.ingest_batch)
            ]
            began = time.monotonic()
            while time.monotonic() - began < self.p.give_up:
                try:
                    response = await client.post("/v1/usage/events", json=batch, headers=headers)
                except httpx.HTTPError as exc:
                    self.ingest_statuses[type(exc).__name__] += 1
                else:
                    self.ingest_statuses[str(response.status_code)] += 1
                    if response.status_code == 202:
                        self.ingest_duplicates += int(response.json()["duplicates"])
                        self.reported.extend(str(e["id"]) for e in batch)
                        self.report_days.add(now.date())
                        break
                await asyncio.sleep(0.3)
            await asyncio.sleep(self.p.ingest_every)


# --------------------------------------------------------------------------- results


@dataclass
class DrillResult:
    drill: str
    profile: str
    problems: list[str] = field(default_factory=list)
    timings: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    log_dir: Path | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [f"drill {self.drill} ({self.profile}): {'PASS' if self.passed else 'FAIL'}"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines.append("  timings: " + ", ".join(f"{k} {_secs(v)}" for k, v in self.timings.items()))
        lines.append("  counts: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        lines += [f"  note: {n}" for n in self.notes]
        if self.log_dir is not None:
            lines.append(f"  service logs: {self.log_dir}")
        return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def summary_table(results: Sequence[DrillResult]) -> str:
    """One line per drill run: the timings (detect: first /readyz 503 after the
    fault began, slowest replica; ready: first 200 after the server was back,
    slowest replica; sockets: longest reconnection; gap: longest time without
    a successful write; slowest: the longest single write, retries included;
    settled: until every effect was visible after the stream stopped) and the
    stream's size."""
    columns = [
        ("drill", 17),
        ("result", 6),
        ("detect", 7),
        ("ready", 7),
        ("sockets", 8),
        ("gap", 6),
        ("slowest", 8),
        ("settled", 8),
        ("writes", 7),
        ("events", 7),
        ("frames", 7),
        ("problems", 9),
    ]
    header = " ".join(f"{n:<{w}}" if i < 2 else f"{n:>{w}}" for i, (n, w) in enumerate(columns))
    lines = [header, "-" * len(header)]
    for r in results:
        t, c = r.timings, r.counts
        values = [
            r.drill,
            "PASS" if r.passed else "FAIL",
            _secs(t.get("detect")),
            _secs(t.get("ready again")),
            _secs(t.get("sockets back")),
            _secs(t.get("longest write gap")),
            _secs(t.get("slowest write")),
            _secs(t.get("settled")),
            str(c.get("writes", 0)),
            str(c.get("bus events", 0)),
            str(c.get("frames", 0)),
            str(len(r.problems)),
        ]
        lines.append(
            " ".join(
                f"{v:<{w}}" if i < 2 else f"{v:>{w}}"
                for i, (v, (_, w)) in enumerate(zip(values, columns, strict=True))
            )
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the faults


@dataclass
class Marks:
    """When the fault began and when the infrastructure (or the replicas) were
    back; which replicas are expected to report not ready meanwhile."""

    start: float = 0.0
    back: float = 0.0
    expect_not_ready: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def kill_replicas(rig: Rig, p: Profile, marks: Marks, say: Say) -> None:
    """SIGKILL one replica of every service (each consumes from the bus),
    staggered mid-stream; start them again after a moment."""
    stack = rig.stack
    marks.start = time.monotonic()
    for i, service in enumerate(SERVICES):
        name = service if i % 2 == 0 else f"{service}-2"
        await stack.kill_service(name)
        marks.killed.append(name)
        await asyncio.sleep(0.2)
    say(f"    killed (SIGKILL): {', '.join(marks.killed)}")
    await asyncio.sleep(p.replicas_down)
    for name in marks.killed:
        await stack.start_service(stack.processes[name].service, name=name)
    await stack.wait_ready(only=set(marks.killed), timeout=120)
    marks.back = time.monotonic()
    say(f"    started again and ready after {marks.back - marks.start:.1f}s")


async def _port_turns(port: int, open_: bool, timeout: float = 120.0) -> float:
    """When ``port`` starts (or stops) taking connections."""
    from agenthq_devctl.private_infra import port_open

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(port_open, port, 0.2) == open_:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"port {port} still {'closed' if open_ else 'open'} after {timeout:.0f}s")


async def restart_rabbitmq(rig: Rig, p: Profile, marks: Marks, say: Say) -> None:
    """``rabbitmqctl stop_app``, a pause, ``start_app``. The outage is timed
    by the AMQP port (the CLI itself takes seconds to boot its Erlang VM)."""
    rabbit = rig.infra.rabbit
    marks.expect_not_ready = list(rig.stack.processes)
    closed = asyncio.create_task(_port_turns(rabbit.port, open_=False))
    await rabbit.stop_app()
    marks.start = await closed
    say("    rabbitmqctl stop_app: AMQP port closed")
    await asyncio.sleep(p.rabbit_down)
    opened = asyncio.create_task(_port_turns(rabbit.port, open_=True))
    await rabbit.start_app()
    marks.back = await opened
    say(f"    rabbitmqctl start_app: AMQP port open again after {marks.back - marks.start:.1f}s")


async def restart_redis(rig: Rig, p: Profile, marks: Marks, say: Say) -> None:
    marks.expect_not_ready = list(rig.stack.processes)
    marks.start = time.monotonic()
    await rig.infra.redis.stop(save=True)
    say("    redis SHUTDOWN SAVE")
    await asyncio.sleep(p.redis_down)
    await rig.infra.redis.start()
    marks.back = time.monotonic()
    say(f"    redis started again ({marks.back - marks.start:.1f}s down)")


async def stop_postgres(rig: Rig, p: Profile, marks: Marks, say: Say) -> None:
    marks.expect_not_ready = list(rig.stack.processes)
    marks.start = time.monotonic()
    await rig.infra.postgres.stop("fast")
    say("    postgres stopped (fast shutdown)")
    await asyncio.sleep(p.postgres_down)
    await rig.infra.postgres.start()
    marks.back = time.monotonic()
    say(f"    postgres started again ({marks.back - marks.start:.1f}s down)")


Fault = Callable[[Rig, Profile, Marks, Say], Awaitable[None]]
DRILLS: dict[str, Fault] = {
    "kill-replicas": kill_replicas,
    "rabbitmq-restart": restart_rabbitmq,
    "redis-restart": restart_redis,
    "postgres-stop": stop_postgres,
}


# --------------------------------------------------------------------------- one drill


@dataclass
class Observed:
    workspaces: Counter[str]  # name -> count
    workspace_ids: dict[str, str]  # name -> id
    activity_workspaces: Counter[str]  # workspace id -> records
    activity_events: Counter[str]  # marker -> records
    tokens: int
    tasks_completed: int


async def _all_pages(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=headers)
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


async def _observe(
    client: httpx.AsyncClient, team_id: str, headers: dict[str, str], days: set[date]
) -> Observed:
    team = f"/v1/teams/{team_id}"
    workspaces = await _all_pages(client, f"{team}/workspaces", {}, headers)
    created = await _all_pages(client, f"{team}/activity", {"action": "workspace.created"}, headers)
    used = await _all_pages(client, f"{team}/activity", {"action": "llm.tokens.used"}, headers)
    today = datetime.now(UTC).date()
    first, last = min(days | {today}) - timedelta(days=1), max(days | {today})
    usage = await client.get(
        f"{team}/usage", params={"from": first.isoformat(), "to": last.isoformat()}, headers=headers
    )
    usage.raise_for_status()
    rows = usage.json()["items"]
    return Observed(
        workspaces=Counter(w["name"] for w in workspaces),
        workspace_ids={w["name"]: str(w["id"]) for w in workspaces},
        activity_workspaces=Counter(str(r["resource_id"]) for r in created),
        activity_events=Counter(str((r.get("metadata") or {}).get("model")) for r in used),
        tokens=sum(int(r["llm_tokens_used"]) for r in rows),
        tasks_completed=sum(int(r["tasks_completed"]) for r in rows),
    )


async def _duplicate_activity_rows(rig: Rig, team_id: str) -> int:
    """Events recorded more than once in the activity database (by event id)."""
    import asyncpg

    url = rig.database_urls["activity"].replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT event_id FROM activity_logs WHERE team_id = $1 "
                "GROUP BY event_id HAVING count(*) > 1) d",
                uuid.UUID(team_id),
            )
        )
    finally:
        await conn.close()


async def _dead_letters(rig: Rig) -> dict[str, int]:
    depths = await rig.infra.rabbit.queue_depths()
    return {q: n for q, n in depths.items() if q.startswith(rig.namespace) and q.endswith(".dlq")}


async def _sign_up(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    registered = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    registered.raise_for_status()
    tokens = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    tokens.raise_for_status()
    token = tokens.json()["access_token"]
    return {
        "id": registered.json()["id"],
        "token": token,
        "headers": {"Authorization": f"Bearer {token}"},
    }


async def run_drill(rig: Rig, drill: str, p: Profile, *, say: Say = _quiet) -> DrillResult:
    """One drill on a team of its own; returns what was found (never raises
    for a failed check: the result lists the problems)."""
    fault = DRILLS[drill]
    result = DrillResult(drill, p.name, log_dir=rig.stack.log_dir)
    tag = f"{drill}-{secrets.token_hex(3)}"
    watch = ReadyzWatch(rig.stack, p.readyz_interval)
    stop_stream, stop_sockets = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    socket_tasks: list[asyncio.Task[Any]] = []
    async with httpx.AsyncClient(
        base_url=rig.gateway_url, timeout=10, headers={"User-Agent": "agenthq-chaos/1.0"}
    ) as client:
        owner = await _sign_up(client, f"chaos-{drill}")
        created = await client.post(
            "/v1/teams", json={"name": f"Drill {tag}"}, headers=owner["headers"]
        )
        created.raise_for_status()
        team_id = created.json()["id"]
        dead_before = await _dead_letters(rig)
        watch.start()
        ws_url = f"{rig.stack.public_ws_url}/ws/teams/{team_id}?token={owner['token']}"
        sockets = [SocketClient(i, ws_url) for i in range(p.sockets)]
        socket_tasks = [asyncio.create_task(s.run(stop_sockets)) for s in sockets]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.welcomed.wait() for s in sockets)), 30)
            writes = WriteStream(client, team_id, owner["headers"], tag, p)
            events = EventStream(rig, team_id, owner["id"], tag, p)
            tasks = [asyncio.create_task(writes.run(w, stop_stream)) for w in range(p.writers)]
            tasks.append(asyncio.create_task(events.publish(stop_stream)))
            tasks.append(asyncio.create_task(events.report(client, stop_stream)))
            say(
                f"  [{drill}] stream running ({p.writers} writers, "
                f"{p.bus_rate:g} events/s, {p.sockets} sockets)"
            )
            await asyncio.sleep(p.before)
            marks = Marks()
            await fault(rig, p, marks, say)
            # Until every replica is ready again (bounded), then a little more stream.
            recovered = await watch.all_ready(list(rig.stack.processes), within=60.0)
            await asyncio.sleep(p.after)
            stop_stream.set()
            stream_end = time.monotonic()
            # The writers finish the write they are on (a retried one may take a while).
            await asyncio.wait_for(asyncio.gather(*tasks), p.give_up + 15)
            stream_done = time.monotonic()
            say(
                f"  [{drill}] stream stopped: {len(writes.writes)} writes, "
                f"{len(events.published)} bus events, {len(events.reported)} usage reports; "
                "checking ..."
            )
            # Every effect in place (bounded), then a moment for a late duplicate.
            done = [w for w in writes.writes if w.outcome.startswith("created")]
            expected_names = [w.name for w in done]
            markers = [m for m, _, _ in events.published]
            expected_tokens = sum(t for _, t, _ in events.published)

            def ids_of(seen: Observed) -> list[str]:
                # A write whose answer was lost: its id is known from the listing only.
                return [w.workspace_id or seen.workspace_ids.get(w.name, w.name) for w in done]

            def missing(seen: Observed) -> list[str]:
                ids = ids_of(seen)
                gaps = {
                    "workspaces": sum(seen.workspaces[n] == 0 for n in expected_names),
                    "workspace activity": sum(seen.activity_workspaces[i] == 0 for i in ids),
                    "event activity": sum(seen.activity_events[m] == 0 for m in markers),
                    "tokens": max(0, expected_tokens - seen.tokens),
                    "tasks": max(0, len(events.reported) - seen.tasks_completed),
                }
                for s in sockets:
                    keys = _frame_keys(s)
                    gaps[f"socket {s.index} frames"] = sum(k not in keys for k in (*markers, *ids))
                return [f"{what} {n}" for what, n in gaps.items() if n]

            observed: Observed | None = None
            settled: float | None = None
            still_missing: list[str] = ["(not observed)"]
            deadline = time.monotonic() + p.converge
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    observed = await _observe(client, team_id, owner["headers"], events.report_days)
                    still_missing = missing(observed)
                    if not still_missing:
                        settled = time.monotonic() - stream_done
                        break
                await asyncio.sleep(1.0)
            await asyncio.sleep(1.5)
            observed = await _observe(client, team_id, owner["headers"], events.report_days)
            expected_ids = ids_of(observed)
            duplicates_in_db = await _duplicate_activity_rows(rig, team_id)
            dead_after = await _dead_letters(rig)
        finally:
            stop_stream.set()
            stop_sockets.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, *socket_tasks, return_exceptions=True)
            await watch.stop()

    _check(
        result,
        p,
        writes=writes,
        events=events,
        sockets=sockets,
        observed=observed,
        duplicates_in_db=duplicates_in_db,
        dead=_grown(dead_before, dead_after),
        expected_ids=expected_ids,
        markers=markers,
        expected_tokens=expected_tokens,
    )
    _check_readiness(result, rig, watch, marks, recovered)
    result.timings["settled"] = settled
    result.timings["longest write gap"] = _longest_gap(
        sorted(w.done_at for w in writes.writes if w.done_at and w.outcome.startswith("created")),
        marks.start,
        stream_end,
    )
    gaps = [b - a for s in sockets for a, b in s.gaps]
    result.timings["sockets back"] = max(gaps) if gaps else None
    result.notes += marks.notes
    if settled is None:
        result.problems.append(
            f"effects still missing {p.converge:.0f}s after the stream stopped: {still_missing}"
        )
    slowest = max((w.done_at - w.began for w in writes.writes if w.done_at), default=None)
    result.timings["slowest write"] = slowest
    served_500 = writes.statuses["500"] + events.ingest_statuses["500"]
    if served_500:
        result.notes.append(
            f"clients got {served_500} x 500 (a dependency outage answered as an internal "
            "error, not 503 with Retry-After)"
        )
    return result


def _frame_keys(socket: SocketClient) -> Counter[str]:
    """What each frame is about: the workspace id or the event's marker."""
    keys: Counter[str] = Counter()
    for frame in socket.frames:
        data = frame.get("data") or {}
        if frame.get("type") == "workspace.created":
            keys[str(data.get("workspace_id"))] += 1
        elif frame.get("type") == "llm.tokens.used":
            keys[str(data.get("model"))] += 1
    return keys


def _grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {q: n - before.get(q, 0) for q, n in after.items() if n > before.get(q, 0)}


def _longest_gap(times: list[float], start: float, end: float) -> float | None:
    """The longest time without a successful write between ``start`` and ``end``."""
    points = [start, *[t for t in times if start < t < end], end]
    if len(points) < 2:
        return None
    return max(b - a for a, b in itertools.pairwise(points))


def _wrong(counter: Counter[str], keys: Sequence[str]) -> tuple[list[str], list[str]]:
    lost = [k for k in keys if counter[k] == 0]
    doubled = [f"{k} x{counter[k]}" for k in keys if counter[k] > 1]
    return lost, doubled


def _problem(result: DrillResult, what: str, lost: list[str], doubled: list[str]) -> None:
    if lost:
        result.problems.append(f"{what}: {len(lost)} lost, e.g. {lost[:3]}")
    if doubled:
        result.problems.append(f"{what}: {len(doubled)} doubled, e.g. {doubled[:3]}")


def _check(
    result: DrillResult,
    p: Profile,
    *,
    writes: WriteStream,
    events: EventStream,
    sockets: list[SocketClient],
    observed: Observed,
    duplicates_in_db: int,
    dead: dict[str, int],
    expected_ids: list[str],
    markers: list[str],
    expected_tokens: int,
) -> None:
    outcomes = Counter(w.outcome.split()[0] for w in writes.writes)
    result.counts.update(
        writes=len(writes.writes),
        **{f"writes {k}": v for k, v in sorted(outcomes.items()) if k != "created"},
        **{"write retries": sum(w.attempts - 1 for w in writes.writes)},
        **{"bus events": len(events.published), "usage reports": len(events.reported)},
    )
    failed = [w for w in writes.writes if not w.outcome.startswith("created")]
    if failed:
        result.problems.append(
            f"writes not done: {len(failed)}, e.g. {[(w.name, w.outcome) for w in failed[:3]]}"
        )
    earlier = [w for w in writes.writes if w.outcome == "created-earlier"]
    if earlier:
        slowest = max(w.done_at - w.began for w in earlier if w.done_at)
        result.notes.append(
            f"{len(earlier)} write(s) committed while their answer was lost; the retries, "
            f"with the same Idempotency-Key, ran the write again once the gateway's claim "
            f"expired ({slowest:.0f}s) and were refused only by the unique workspace name "
            "(409 name_taken): a write without such a key would have been doubled"
        )
    names = [w.name for w in writes.writes if w.outcome.startswith("created")]
    _problem(result, "workspaces", *_wrong(observed.workspaces, names))
    _problem(
        result,
        "activity records of workspace.created",
        *_wrong(observed.activity_workspaces, expected_ids),
    )
    _problem(result, "activity records of bus events", *_wrong(observed.activity_events, markers))
    if duplicates_in_db:
        result.problems.append(f"activity database: {duplicates_in_db} event ids recorded twice")
    if observed.tokens != expected_tokens:
        result.problems.append(
            f"usage llm_tokens_used {observed.tokens}, expected exactly {expected_tokens} "
            f"({'lost' if observed.tokens < expected_tokens else 'doubled'})"
        )
    if observed.tasks_completed != len(events.reported):
        result.problems.append(
            f"usage tasks_completed {observed.tasks_completed}, expected exactly "
            f"{len(events.reported)} (HTTP ingest)"
        )
    if dead:
        result.problems.append(f"messages dead-lettered: {dead}")
    frames = 0
    for s in sockets:
        ids = Counter(f["id"] for f in s.frames)
        repeated = [i for i, n in ids.items() if n > 1]
        if repeated:
            result.problems.append(f"socket {s.index}: frame ids delivered twice: {repeated[:3]}")
        lost, doubled = _wrong(_frame_keys(s), [*expected_ids, *markers])
        _problem(result, f"socket {s.index} frames", lost, doubled)
        if s.resume_failed:
            result.problems.append(f"socket {s.index}: resume.failed {s.resume_failed} time(s)")
        if not s.open:
            result.problems.append(f"socket {s.index}: not connected at the end")
        frames += len(s.frames)
    result.counts.update(
        frames=frames,
        reconnects=sum(s.connects - 1 for s in sockets),
        **(
            {"socket closes": dict(sum((s.close_codes for s in sockets), Counter()))}
            if any(s.close_codes for s in sockets)
            else {}
        ),
        **({"producer retries": dict(events.publish_failures)} if events.publish_failures else {}),
        **(
            {"client saw": {k: v for k, v in writes.statuses.items() if k != "201"}}
            if set(writes.statuses) - {"201"}
            else {}
        ),
    )


def _check_readiness(
    result: DrillResult, rig: Rig, watch: ReadyzWatch, marks: Marks, recovered: float
) -> None:
    """Infrastructure outages: every replica's /readyz went 503 and came back
    to 200. Killed replicas: the others stayed ready, and HAProxy kept answering."""
    detect: list[float] = []
    ready: list[float] = []
    for name in marks.expect_not_ready:
        down = watch.first(name, marks.start, lambda s: s == 503)
        if down is None or down > marks.back + 1.0:
            saw = sorted(watch.seen_between(name, marks.start, marks.back))
            result.problems.append(f"{name}: /readyz never 503 during the outage (saw {saw})")
            continue
        detect.append(down - marks.start)
        up = watch.first(name, marks.back, lambda s: s == 200)
        if up is None:
            result.problems.append(f"{name}: /readyz not 200 again after the outage")
        else:
            ready.append(up - marks.back)
    for name in marks.killed:
        up = watch.first(name, marks.back, lambda s: s == 200)
        if up is None:
            result.problems.append(f"{name}: not ready after its restart")
    if marks.killed:
        for name in rig.stack.processes:
            if name in marks.killed:
                continue
            seen = watch.seen_between(name, marks.start, recovered)
            if seen - {200}:
                result.problems.append(f"{name} (not killed): /readyz {sorted(seen)} meanwhile")
        for service in SERVICES:
            seen = watch.seen_between(f"haproxy:{service}", marks.start, recovered)
            if seen - {200}:
                result.notes.append(
                    f"HAProxy's {service} /readyz answered {sorted(seen)} meanwhile"
                )
    result.timings["detect"] = max(detect) if detect else None
    result.timings["ready again"] = max(ready) if ready else None
    result.timings["fault"] = marks.back - marks.start


# --------------------------------------------------------------------------- all drills


async def run_drills(
    root: Path,
    drills: Sequence[str],
    profile: Profile,
    *,
    repeat: int = 1,
    say: Say = _quiet,
) -> tuple[list[DrillResult], dict[str, float]]:
    results: list[DrillResult] = []
    async with chaos_rig(root, say=say) as rig:
        for round_ in range(1, repeat + 1):
            for drill in drills:
                label = f" (round {round_}/{repeat})" if repeat > 1 else ""
                say(f"Drill {drill}{label} ...")
                began = time.perf_counter()
                result = await run_drill(rig, drill, profile, say=say)
                result.timings["took"] = time.perf_counter() - began
                results.append(result)
                say(result.report())
        return results, rig.startup_seconds


def default_root() -> Path:
    from agenthq_devctl.private_infra import make_root

    return make_root()


__all__ = [
    "DRILLS",
    "LONG",
    "PROFILES",
    "SHORT",
    "DrillResult",
    "Profile",
    "Rig",
    "chaos_rig",
    "run_drill",
    "run_drills",
    "summary_table",
]
