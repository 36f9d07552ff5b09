"""One replica of every service versus two, side by side in one run: events/s
through the consumers and authorized requests/s through the gateway.

For each replica count (``--replica-counts``, 1 and 2) the whole system runs
as real processes (``harness.stack.scratch_stack``, as ``make run
REPLICAS=<n>`` starts it: with more than one, every service is that many
processes behind HAProxy), on scratch databases, under the namespace
``bench-<random>.``, with ``AGENTHQ_DB_POOL_SIZE`` ``--pool-size`` (3) so that
twelve processes fit PostgreSQL's 100 connections beside other jobs. The
gateway's rate limits are on but never refuse (``bench/gateway.py``'s). The
stacks run in the order 1 2 2 1 (``--rounds`` 2; ``--quick``: 1 2), so that a
drift in what else runs on the machine weighs on both counts alike, and each
scenario keeps its best run.

Events: CloudEvents of the metered types (``bench/usage.py``'s ``Workload``:
``task.created``, ``task.completed``, ``llm.tokens.used``, ``api.calls``,
``storage.changed``, over ``--teams`` teams on the ``enterprise`` plan, each
announced by a ``team.created`` first) are published by a process of their
own (``bench/usage.py``'s publisher: persistent, publisher confirms) to the
stack's topic exchange. Each one is consumed by three queues: ``activity.audit``
(the hash-chained log), ``usage.metering`` (the ledger and the daily
counters) and ``realtime.fanout`` (the team's Redis stream). The event ids of
a scenario share their first 32 bits, so what each consumer has done is a
range scan of its inbox (``inbox.processed_at`` is the time its batch's
transaction started); nothing in the services is changed or wrapped.

* **live**: ``--events`` published as fast as the publisher goes while the
  consumers run; per consumer, events / (done - first publish), where done is
  when this script's poll (every 0.1 s) saw the last one in the inbox.
* **drain**: every activity, usage and realtime process is paused (SIGSTOP),
  ``--events`` are published, and the processes are resumed (SIGCONT)
  together: events / (done - resume), and the steady rate between the 10th
  and 90th percentile of ``processed_at``. The consumers' capacity without
  the publisher on the cores.

Gateway: ``GET /v1/teams/{team_id}/workspaces`` (``--workspaces`` (5) in the
team) with the owner's token through the gateway's public port (HAProxy with
two replicas): the gateway verifies the token, runs its rate limiter, proxies
to the workspace service, which checks the membership and lists from
PostgreSQL. ``--load-procs`` (2) processes (spawned, uvloop), ``--clients``
(64) keep-alive connections in all, each a closed loop on raw asyncio streams
(``bench/gateway.py``'s load generator), start together; after ``--warmup``
seconds, ``--duration`` seconds are measured.

CPU: for every scenario, the CPU time (``/proc``) of each service's processes
(replicas summed), HAProxy, the PostgreSQL backends of the stack's databases,
Redis, RabbitMQ (shared with other jobs), the bench's own processes, and how
busy the whole machine was; what is not ours is other jobs. And, sampled
every 50 ms, how often a backend of each database waited on a lock.

At the end: the figures side by side, where the CPU went, what limits the
gain, sizes measured on the last stack (bytes per row and per Redis key,
PostgreSQL connections and RSS per process), and ``BENCH_JSON {...}``.
Everything is removed afterwards (databases, broker namespace, Redis keys,
processes, and the stack's logs unless ``--keep-logs`` or an error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import sys
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import events as eb  # bench/events.py: worker processes, /proc accounting
import gateway as gw  # bench/gateway.py: the load generator, the never-refusing limits
import httpx
import redis.asyncio as aioredis
import usage as ub  # bench/usage.py: the metered events and their publisher
from harness.stack import REDIS, owner_with_team, scratch_stack

from agenthq_common.bus import Bus
from agenthq_common.outbox import asyncpg_dsn
from agenthq_devctl.services import SERVICES
from agenthq_devctl.supervisor import Stack

CONSUMERS = {  # queue -> the service (and database) that consumes it
    "activity.audit": "activity",
    "usage.metering": "usage",
    "realtime.fanout": "realtime",
}
PAUSED = ("activity", "usage", "realtime")
# Other jobs restart the broker or PostgreSQL, take its connections, or change the code
# a stack imports while it starts: the stack is started again.
RETRIED: tuple[type[BaseException], ...] = (*eb.TRANSIENT, RuntimeError)
POLL = 0.1
LOCK_SAMPLE = 0.05


# =========================================================================== child processes


def tagged(tag: int, i: int) -> uuid.UUID:
    """The ``i``-th event id of a scenario: its first 32 bits are the scenario's tag."""
    return uuid.UUID(int=(tag << 96) | i)


def id_range(tag: int) -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.UUID(int=tag << 96), uuid.UUID(int=(tag + 1) << 96)


class Publisher(ub.Publisher):
    """``bench/usage.py``'s publisher, its events re-numbered with the scenario's tag."""

    async def cmd_configure(self, config: dict[str, Any]) -> None:
        """What is known only once the stack runs (its exchange)."""
        self.config.update(config)

    async def cmd_prepare(self, kind: str, n: int = 0, tag: int = 0) -> dict[str, int]:  # type: ignore[override]
        if kind == "teams":
            built = self.workload.team_events(self.config["plan"])
        else:
            built, _ = self.workload.usage_events(n)
        built = [e.model_copy(update={"id": tagged(tag, i)}) for i, e in enumerate(built)]
        self.messages = [(str(e.id), e.to_bytes(), e.type) for e in built]
        return {"messages": len(self.messages)}

    async def cmd_publish(self, batch: int, producers: int) -> dict[str, float]:
        wall = time.time()
        got = await super().cmd_publish(batch, producers)
        return {**got, "first_wall": wall, "last_wall": time.time()}


ROLES: dict[str, type[eb.Worker]] = {"publisher": Publisher}


def child_main(role: str, conn: Connection, config: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    asyncio.run(eb.serve(ROLES[role](config), conn))


class Proc(eb.Proc):
    child_main = staticmethod(child_main)


def loadgen_main(conn: Connection) -> None:
    """``bench/gateway.py``'s load generator. Started (and its imports done) while the
    stack starts; its job comes over the pipe with the time to begin, the same for every
    load process (``time.perf_counter`` is CLOCK_MONOTONIC on Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        job = conn.recv()
    except EOFError:  # the orchestrator went away, or needed no load
        return
    request = (
        f"GET {job['path']} HTTP/1.1\r\nHost: {job['host']}:{job['port']}\r\n"
        f"Authorization: {job['authorization']}\r\nUser-Agent: agenthq-bench\r\n\r\n"
    ).encode()
    time.sleep(max(0.0, job["start_at"] - time.perf_counter()))
    try:
        result = asyncio.run(
            gw._load(
                job["host"], job["port"], request, job["clients"], job["warmup"], job["duration"]
            )
        )
    except Exception:
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("ok", result))
    conn.close()


# =========================================================================== measuring


def listener_pid(url: str, default_port: int) -> int | None:
    """The process listening on ``url``'s port (other jobs may run more than one Redis
    or RabbitMQ on the machine: the one this run uses is the one on its port)."""
    port = urlsplit(url).port or default_port
    inodes = set()
    for table_ in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table_) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{entry}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                            return int(entry)
    return None


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


class Meter:
    """CPU seconds of every process the run involves, from ``/proc``."""

    def __init__(self, stack: Stack, admin: asyncpg.Connection, databases: list[str]) -> None:
        self.stack = stack
        self.admin = admin
        self.databases = databases
        self.shared = {
            "redis": listener_pid(REDIS, 6379),
            "rabbitmq": listener_pid(eb.BROKER_URL, 5672),
        }

    async def snapshot(self, bench: Mapping[str, Sequence[int]]) -> dict[str, Any]:
        owners: dict[int, tuple[str, str]] = {}  # pid -> (group, process name)
        for p in self.stack.processes.values():
            if p.process is not None and p.process.returncode is None:
                owners[p.process.pid] = (p.service, p.name)
        if self.stack.balancer is not None and self.stack.balancer.process is not None:
            owners[self.stack.balancer.process.pid] = ("haproxy", "haproxy")
        for name, pid in self.shared.items():
            if pid:
                owners[pid] = (name, name)
        for name, pids in bench.items():
            for pid in pids:
                owners[pid] = (name, f"{name} {pid}")
        rows = await self.admin.fetch(
            "SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY($1::text[])",
            self.databases,
        )
        for row in rows:
            service = row["datname"].split("_")[1]
            owners[row["pid"]] = ("postgres", f"postgres ({service})")
        cpu: dict[int, tuple[str, str, float]] = {}
        for pid, (group, name) in owners.items():
            used = eb.proc_cpu(pid)
            if used is not None:
                cpu[pid] = (group, name, used)
        return {"wall": time.time(), "cpu": cpu, "machine": eb.machine_cpu()}

    @staticmethod
    def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        groups: dict[str, float] = defaultdict(float)
        names: dict[str, float] = defaultdict(float)
        for pid, (group, name, used) in b["cpu"].items():
            before = a["cpu"].get(pid)
            spent = used - (before[2] if before else 0.0)  # new backends: all of it
            groups[group] += spent
            names[name] += spent
        wall = b["wall"] - a["wall"]
        busy = b["machine"][0] - a["machine"][0]
        total = b["machine"][1] - a["machine"][1]
        ours = sum(groups.values())
        return {
            "wall_s": wall,
            "cpu_s": dict(groups),
            "cpu_s_by_process": dict(names),
            "cores": total / wall if wall > 0 else math.nan,
            "machine_busy_pct": 100 * busy / total if total > 0 else math.nan,
            "ours_cores": ours / wall if wall > 0 else math.nan,
            "others_cores": max(0.0, busy - ours) / wall if wall > 0 else math.nan,
        }


class LockSampler:
    """How often a backend of each database waits on a lock (sampled)."""

    def __init__(self, conn: asyncpg.Connection, databases: dict[str, str]) -> None:
        self.conn = conn
        self.databases = databases  # service -> database name
        self.task: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        self.samples = 0
        self.waiting: dict[str, int] = defaultdict(int)  # samples with a lock wait
        self.active: dict[str, int] = defaultdict(int)  # active backends, summed

    async def _run(self) -> None:
        names = list(self.databases.values())
        by_db = {db: service for service, db in self.databases.items()}
        while True:
            rows = await self.conn.fetch(
                "SELECT datname, count(*) FILTER (WHERE state = 'active') AS active, "
                "count(*) FILTER (WHERE wait_event_type = 'Lock') AS locked "
                "FROM pg_stat_activity WHERE datname = ANY($1::text[]) GROUP BY datname",
                names,
            )
            self.samples += 1
            for row in rows:
                service = by_db[row["datname"]]
                self.active[service] += row["active"]
                self.waiting[service] += bool(row["locked"])
            await asyncio.sleep(LOCK_SAMPLE)

    def start(self) -> None:
        self.reset()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, dict[str, float]]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        n = max(self.samples, 1)
        return {
            s: {
                "lock_wait_pct": 100 * self.waiting[s] / n,
                "active_backends": self.active[s] / n,
            }
            for s in self.databases
        }


# =========================================================================== one stack


class Helpers:
    """The bench's own processes, spawned before the stack so that their imports overlap
    its start: the publisher and the load generators (told their job later)."""

    def __init__(self, args: argparse.Namespace) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.publisher = Proc(
            ctx,
            "publisher",
            {
                "teams": args.teams,
                "seed": args.seed,
                "days": args.days,
                "duplicates": 0.0,
                "personal": 0.0,
                "plan": args.plan,
            },
        )
        self.loads: list[tuple[Any, Connection]] = []
        for _ in range(args.load_procs):
            parent, child = ctx.Pipe()
            process = ctx.Process(target=loadgen_main, args=(child,), daemon=True)
            process.start()
            child.close()
            self.loads.append((process, parent))

    async def stop(self) -> None:
        await self.publisher.stop()
        for process, conn in self.loads:
            conn.close()  # a load process still waiting for its job exits
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.terminate()  # this one process, by its pid
                await asyncio.to_thread(process.join, 5)


class Run:
    """What one stack's scenarios share."""

    def __init__(self, stack: Stack, args: argparse.Namespace, helpers: Helpers) -> None:
        self.stack = stack
        self.args = args
        self.helpers = helpers
        self.urls = {s: stack.env[f"AGENTHQ_{s.upper()}_DATABASE_URL"] for s in SERVICES}
        self.dbnames = {s: url.rsplit("/", 1)[1] for s, url in self.urls.items()}
        self.namespace = stack.env["AGENTHQ_BUS_NAMESPACE"]
        self.conns: dict[str, asyncpg.Connection] = {}

    async def open(self) -> None:
        self.admin = await eb.connect_admin()
        self.sampler_conn = await eb.connect_admin()
        for service in set(CONSUMERS.values()):
            self.conns[service] = await asyncpg.connect(asyncpg_dsn(self.urls[service]))
        self.meter = Meter(self.stack, self.admin, list(self.dbnames.values()))
        self.locks = LockSampler(self.sampler_conn, self.dbnames)

    async def close(self) -> None:
        if hasattr(self, "locks"):
            await self.locks.stop()
        extra = [getattr(self, "admin", None), getattr(self, "sampler_conn", None)]
        for conn in [*self.conns.values(), *(c for c in extra if c is not None)]:
            with contextlib.suppress(Exception):
                await conn.close()

    # ----------------------------------------------------------------------- events

    async def counts(self, tag: int) -> dict[str, int]:
        lo, hi = id_range(tag)
        out = {}
        for queue, service in CONSUMERS.items():
            out[queue] = int(
                await self.conns[service].fetchval(
                    "SELECT count(*) FROM inbox WHERE consumer = $1 "
                    "AND event_id >= $2 AND event_id < $3",
                    queue,
                    lo,
                    hi,
                )
            )
        return out

    async def wait_consumed(self, tag: int, n: int, timeout: float) -> dict[str, float]:
        """Poll until every consumer has all ``n``; when each was seen done (wall clock)."""
        done: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        next_note = time.monotonic() + 15
        while True:
            now = time.time()
            counts = await self.counts(tag)
            for queue, got in counts.items():
                if got >= n and queue not in done:
                    done[queue] = now
            if len(done) == len(CONSUMERS):
                return done
            if time.monotonic() > deadline:
                raise eb.Incomplete(f"consumed within {timeout:.0f} s: {counts} of {n}")
            if time.monotonic() > next_note:
                next_note += 15
                print(f"    ... consumed so far: {counts} of {n}", flush=True)
            await asyncio.sleep(POLL)

    async def timings(self, tag: int) -> dict[str, dict[str, float]]:
        lo, hi = id_range(tag)
        out = {}
        for queue, service in CONSUMERS.items():
            row = await self.conns[service].fetchrow(
                "SELECT count(*) AS n, "
                "extract(epoch FROM min(processed_at))::float8 AS first, "
                "extract(epoch FROM max(processed_at))::float8 AS last, "
                "extract(epoch FROM percentile_disc(0.1) WITHIN GROUP "
                "(ORDER BY processed_at))::float8 AS p10, "
                "extract(epoch FROM percentile_disc(0.9) WITHIN GROUP "
                "(ORDER BY processed_at))::float8 AS p90 "
                "FROM inbox WHERE consumer = $1 AND event_id >= $2 AND event_id < $3",
                queue,
                lo,
                hi,
            )
            out[queue] = dict(row)
        return out

    def consumer_pids(self) -> list[int]:
        return [
            p.process.pid
            for s in PAUSED
            for p in self.stack.replicas_of(s)
            if p.process is not None and p.process.returncode is None
        ]

    def pause(self, sig: signal.Signals) -> None:
        for pid in self.consumer_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)  # a process this script started, by its id

    async def start_publisher(self) -> Proc:
        self.publisher = self.helpers.publisher
        exchange = Bus(eb.BROKER_URL, namespace=self.namespace).topology.exchange
        await self.publisher.call("configure", {"exchange": exchange})
        await self.publisher.call("start")
        return self.publisher

    async def publish(self, kind: str, n: int) -> tuple[int, dict[str, float], int]:
        tag = random.getrandbits(31) + 1
        built = await self.publisher.call("prepare", kind, n, tag, timeout=600)
        timeout = max(300.0, n / 50)
        sent = await self.publisher.call(
            "publish", self.args.batch, self.args.producers, timeout=timeout
        )
        return tag, sent, built["messages"]

    async def live(self, n: int, measured: bool = True) -> dict[str, Any]:
        tag = random.getrandbits(31) + 1
        await self.publisher.call("prepare", "usage", n, tag, timeout=600)
        bench = {"publisher": [self.publisher.pid]}
        before = await self.meter.snapshot(bench)
        self.locks.start()
        sent = await self.publisher.call(
            "publish", self.args.batch, self.args.producers, timeout=max(300.0, n / 50)
        )
        done = await self.wait_consumed(tag, n, max(300.0, n / 20))
        after = await self.meter.snapshot(bench)
        locks = await self.locks.stop()
        if not measured:
            return {}
        t = await self.timings(tag)
        start = sent["first_wall"]
        return {
            "events": n,
            "publish_per_s": n / (sent["last_wall"] - start),
            "per_s": {q: n / (done[q] - start) for q in CONSUMERS},
            "all_per_s": n / (max(done.values()) - start),
            "steady_per_s": {q: steady(t[q], n) for q in CONSUMERS},
            "cpu": Meter.delta(before, after),
            "locks": locks,
        }

    async def drain(self, n: int) -> dict[str, Any]:
        tag = random.getrandbits(31) + 1
        await self.publisher.call("prepare", "usage", n, tag, timeout=600)
        self.pause(signal.SIGSTOP)
        try:
            sent = await self.publisher.call(
                "publish", self.args.batch, self.args.producers, timeout=max(300.0, n / 50)
            )
            await asyncio.sleep(0.5)  # the broker has routed the last confirms' messages
            before = await self.meter.snapshot({})
            self.locks.start()
            resumed = time.time()
        finally:
            self.pause(signal.SIGCONT)
        done = await self.wait_consumed(tag, n, max(300.0, n / 20))
        after = await self.meter.snapshot({})
        locks = await self.locks.stop()
        t = await self.timings(tag)
        cpu = Meter.delta(before, after)
        return {
            "events": n,
            "publish_per_s": n / (sent["last_wall"] - sent["first_wall"]),
            "per_s": {q: n / (done[q] - resumed) for q in CONSUMERS},
            "all_per_s": n / (max(done.values()) - resumed),
            "steady_per_s": {q: steady(t[q], n) for q in CONSUMERS},
            "cpu": cpu,
            "cpu_ms_per_event": {g: s * 1e3 / n for g, s in cpu["cpu_s"].items()},
            "split": split_of(cpu, self.stack),
            "locks": locks,
        }

    async def idle(self, seconds: float) -> dict[str, Any]:
        """What the stack burns doing nothing (event loops, health checks, relays' polls)."""
        before = await self.meter.snapshot({})
        await asyncio.sleep(seconds)
        return {"cpu": Meter.delta(before, await self.meter.snapshot({}))}

    # ----------------------------------------------------------------------- gateway

    async def prepare_team(self) -> tuple[dict[str, str], str]:
        gateway = self.stack.public_url("gateway")
        headers, team_id = await owner_with_team(gateway)
        async with httpx.AsyncClient(base_url=gateway, timeout=30, headers=headers) as client:
            deadline = time.monotonic() + 60
            made = 0
            while made < self.args.workspaces:
                r = await client.post(
                    f"/v1/teams/{team_id}/workspaces", json={"name": f"scale {made}"}
                )
                if r.status_code == 201:
                    made += 1
                elif time.monotonic() > deadline:
                    raise RuntimeError(f"creating a workspace: {r.status_code} {r.text[:300]}")
                else:  # the membership has not reached the workspace service yet
                    await asyncio.sleep(0.2)
            r = await client.get(f"/v1/teams/{team_id}/workspaces")
            r.raise_for_status()
        return headers, team_id

    async def gateway_load(self, headers: dict[str, str], team_id: str) -> dict[str, Any]:
        a = self.args
        loads = self.helpers.loads
        shares = [
            a.clients // a.load_procs + (i < a.clients % a.load_procs) for i in range(a.load_procs)
        ]
        start_at = time.perf_counter() + 0.2
        for (_, conn), clients in zip(loads, shares, strict=True):
            conn.send(
                {
                    "host": "127.0.0.1",
                    "port": self.stack.ports["gateway"],
                    "path": f"/v1/teams/{team_id}/workspaces",
                    "authorization": headers["Authorization"],
                    "clients": clients,
                    "warmup": a.warmup,
                    "duration": a.duration,
                    "start_at": start_at,
                }
            )
        bench = {"load generator": [process.pid for process, _ in loads]}
        await asyncio.sleep(start_at + a.warmup - time.perf_counter())
        before = await self.meter.snapshot(bench)
        await asyncio.sleep(start_at + a.warmup + a.duration - time.perf_counter())
        after = await self.meter.snapshot(bench)
        results = []
        for _, conn in loads:  # the processes exit after answering (Helpers.stop joins them)
            if not await asyncio.to_thread(conn.poll, 60):
                raise RuntimeError("a load process did not finish")
            status, result = conn.recv()
            if status != "ok":
                raise RuntimeError(f"load process failed:\n{result}")
            results.append(result)
        latencies = sorted(x for r in results for x in r["latencies"])
        errors: dict[int, int] = defaultdict(int)
        for r in results:
            for status, count in r["errors"].items():
                errors[status] += count
        if errors:
            raise RuntimeError(f"answers that were not 200: {dict(errors)}")
        cpu = Meter.delta(before, after)
        requests = len(latencies)
        return {
            "clients": a.clients,
            "requests": requests,
            "per_s": requests / a.duration,
            "p50_ms": gw.percentile(latencies, 0.50) * 1e3,
            "p99_ms": gw.percentile(latencies, 0.99) * 1e3,
            "cpu": cpu,
            "cpu_ms_per_request": {g: s * 1e3 / max(requests, 1) for g, s in cpu["cpu_s"].items()},
            "split": split_of(cpu, self.stack),
        }

    # ----------------------------------------------------------------------- sizes

    async def sizes(self) -> dict[str, Any]:
        """Bytes per row (table + indexes + TOAST) of the tables the events grow."""
        tables = {
            "activity": ["activity_logs", "activity_chains", "inbox", "outbox"],
            "usage": ["metered_events", "usage_stats", "inbox", "outbox"],
            "realtime": ["inbox"],
        }
        out: dict[str, dict[str, float]] = {}
        for service, names in tables.items():
            conn = self.conns[service]
            for table in names:
                total = await conn.fetchval(
                    "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) "
                    "FROM pg_partition_tree($1::regclass)), pg_total_relation_size($1::regclass))"
                    "::bigint",
                    table,
                )
                rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
                out[f"{service}.{table}"] = {
                    "rows": int(rows),
                    "bytes": int(total),
                    "bytes_per_row": total / rows if rows else math.nan,
                }
        return out

    async def connections(self) -> dict[str, int]:
        rows = await self.admin.fetch(
            "SELECT datname, count(*) AS n FROM pg_stat_activity "
            "WHERE datname = ANY($1::text[]) GROUP BY datname",
            list(self.dbnames.values()),
        )
        by_db = {r["datname"]: int(r["n"]) for r in rows}
        return {s: by_db.get(db, 0) for s, db in self.dbnames.items()}

    def rss(self) -> dict[str, float]:
        per: dict[str, list[float]] = defaultdict(list)
        for p in self.stack.processes.values():
            if p.process is not None:
                per[p.service].append(rss_mib(p.process.pid))
        return {s: sum(v) / len(v) for s, v in per.items()}


def steady(t: dict[str, float], n: int) -> float:
    span = (t["p90"] or 0) - (t["p10"] or 0)
    return 0.8 * n / span if span > 0 else math.nan


def split_of(cpu: dict[str, Any], stack: Stack) -> dict[str, list[float]]:
    """Each replica's share of its service's CPU in a scenario (%)."""
    out = {}
    for service in SERVICES:
        names = [p.name for p in stack.replicas_of(service)]
        spent = [cpu["cpu_s_by_process"].get(n, 0.0) for n in names]
        total = sum(spent)
        if len(names) > 1 and total > 0:
            out[service] = [100 * s / total for s in spent]
    return out


def pattern(key: str, namespace: str) -> str:
    key = key[len(namespace) :]
    key = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "{id}", key)
    return re.sub(r"\d{6,}", "{n}", key)


async def redis_sizes(namespace: str) -> dict[str, dict[str, float]]:
    """Keys under the namespace by pattern: how many, and bytes each (MEMORY USAGE)."""
    client = aioredis.from_url(REDIS)
    try:
        keys: dict[str, list[bytes]] = defaultdict(list)
        async for key in client.scan_iter(match=f"{namespace}*", count=2000):
            keys[pattern(key.decode(), namespace)].append(key)
        out: dict[str, dict[str, float]] = {}
        for pat, found in keys.items():
            sample = random.sample(found, min(50, len(found)))
            sizes = [await client.memory_usage(k, samples=0) or 0 for k in sample]
            entry: dict[str, float] = {"keys": len(found), "bytes_each": sum(sizes) / len(sizes)}
            if pat.endswith(":frames"):
                lengths = [await client.xlen(k) for k in sample]
                entry["entries_each"] = sum(lengths) / len(lengths)
                entry["bytes_per_entry"] = sum(sizes) / max(sum(lengths), 1)
            out[pat] = entry
        return out
    finally:
        await client.aclose()


CONNECTIONS_PER_PROCESS = 5  # the relay's listener and two lanes, and the pool's usual few


async def wait_for_room(replicas: int, within: float) -> None:
    """Wait until PostgreSQL has room for the stack's connections (other jobs use it too:
    a service that cannot connect while starting exits)."""
    needed = replicas * len(SERVICES) * CONNECTIONS_PER_PROCESS + 6
    deadline = time.monotonic() + within
    noted = False
    while True:
        admin = await eb.connect_admin()
        try:
            free = await admin.fetchval(
                "SELECT current_setting('max_connections')::int "
                "- current_setting('superuser_reserved_connections')::int "
                "- (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
        finally:
            await admin.close()
        if free >= needed or time.monotonic() > deadline:
            if noted:
                print(f"  PostgreSQL has {free} free connections, going on", flush=True)
            return
        if not noted:
            print(
                f"  PostgreSQL has {free} free connections, the stack needs about {needed}: "
                "waiting for other jobs to release some",
                flush=True,
            )
            noted = True
        await asyncio.sleep(2)


async def run_stack(replicas: int, args: argparse.Namespace, last: bool) -> dict[str, Any]:
    await wait_for_room(replicas, args.pg_wait)
    env = {
        "AGENTHQ_RATE_LIMITS": json.dumps(gw.RATE_LIMITS),
        "AGENTHQ_DB_POOL_SIZE": str(args.pool_size),
    }
    f: dict[str, Any] = {"replicas": replicas}
    started = time.monotonic()
    failed = True
    log_dir: Path | None = None
    helpers = Helpers(args)
    try:
        async with scratch_stack(f"scale{replicas}", env, replicas=replicas) as stack:
            log_dir = stack.log_dir
            f["startup_s"] = time.monotonic() - started
            print(
                f"  {replicas} replica(s): {len(stack.processes)} service processes"
                f"{' behind HAProxy' if stack.balancer else ''}, ready in {f['startup_s']:.0f} s",
                flush=True,
            )
            run = Run(stack, args, helpers)
            try:
                await run.open()
                phase = time.monotonic()
                (headers, team_id), _ = await asyncio.gather(
                    run.prepare_team(), run.start_publisher()
                )
                tag, _, teams = await run.publish("teams", 0)
                await run.wait_consumed(tag, teams, 300)
                await run.live(args.warmup_events, measured=False)
                print(
                    f"    a user, a team, {args.workspaces} workspaces, {teams:,} teams on the "
                    f"bus and {args.warmup_events:,} warm-up events in "
                    f"{time.monotonic() - phase:.0f} s",
                    flush=True,
                )
                f["idle"] = await run.idle(args.idle)
                f["live"] = await run.live(args.events)
                print(
                    f"    live:  {fmt_rates(f['live'])}  (publisher "
                    f"{f['live']['publish_per_s']:,.0f}/s)",
                    flush=True,
                )
                f["drain"] = await run.drain(args.events)
                print(f"    drain: {fmt_rates(f['drain'])}", flush=True)
                f["gateway"] = await run.gateway_load(headers, team_id)
                g = f["gateway"]
                print(
                    f"    gateway: {g['per_s']:,.0f} requests/s, p50 {g['p50_ms']:.1f} ms, "
                    f"p99 {g['p99_ms']:.1f} ms ({g['clients']} connections)",
                    flush=True,
                )
                f["pg_connections"] = await run.connections()
                f["rss_mib"] = run.rss()
                if last:
                    f["sizes"] = await run.sizes()
                    f["redis"] = await redis_sizes(run.namespace)
                else:
                    f["sizes"] = f["redis"] = None
            finally:
                run.pause(signal.SIGCONT)  # never leave a stopped process to the stack's stop
                await run.close()
        failed = False
    finally:
        await helpers.stop()
        if log_dir is not None:
            if failed or args.keep_logs:
                print(f"  the stack's logs: {log_dir}", flush=True)
            else:
                shutil.rmtree(log_dir, ignore_errors=True)
    return f


def fmt_rates(s: dict[str, Any]) -> str:
    return ", ".join(f"{q} {v:,.0f}/s" for q, v in s["per_s"].items())


def order(counts: Sequence[int], rounds: int) -> list[int]:
    """Replica counts in the order the stacks run: ABBA..., so that a drift in what
    else runs on the machine weighs on every count alike."""
    out: list[int] = []
    for r in range(rounds):
        out += list(counts) if r % 2 == 0 else list(reversed(counts))
    return out


BEST_BY = {"live": "all_per_s", "drain": "all_per_s", "gateway": "per_s"}


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One replica count's runs: each scenario from the run where it went fastest."""
    best = dict(runs[0])
    for scenario, key in BEST_BY.items():
        found: list[dict[str, Any]] = [r[scenario] for r in runs]
        best[scenario] = max(found, key=lambda s: float(s[key]))
    best["idle"] = min((r["idle"] for r in runs), key=lambda i: i["cpu"]["ours_cores"])
    best["runs"] = len(runs)
    return best


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    plan = order(args.replica_counts, args.rounds)
    runs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    last: dict[str, Any] = {}
    for i, replicas in enumerate(plan):
        print(f"stack {i + 1} of {len(plan)}: {replicas} replica(s)", flush=True)
        for attempt in range(1, args.attempts + 1):
            try:
                got = await run_stack(replicas, args, last=i == len(plan) - 1)
                break
            except RETRIED as exc:
                if attempt == args.attempts:
                    raise
                print(f"  disturbed ({exc!r:.300}); starting this stack again", file=sys.stderr)
        runs[replicas].append(got)
        last = got
    by = {r: best_of(found) for r, found in runs.items()}
    return {
        "by_replicas": by,
        "runs": {r: found for r, found in runs.items()},
        "sizes": {k: last[k] for k in ("replicas", "sizes", "redis")},
        "order": plan,
        "load_average": os.getloadavg(),
        "seconds": time.monotonic() - started,
    }


# =========================================================================== report


def ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}" if a and not math.isnan(a) and not math.isnan(b) else "-"


def num(v: float, digits: int = 0) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figure_rows(by: dict[int, dict[str, Any]]) -> list[tuple[str, list[float], int]]:
    """(figure, value per replica count, digits)."""
    counts = sorted(by)
    rows: list[tuple[str, list[float], int]] = []

    def add(name: str, get: Any, digits: int = 0) -> None:
        rows.append((name, [get(by[c]) for c in counts], digits))

    for scenario in ("live", "drain"):
        for q in CONSUMERS:
            add(f"{q} events/s, {scenario}", lambda f, s=scenario, q=q: f[s]["per_s"][q])
        add(f"all three consumed, events/s, {scenario}", lambda f, s=scenario: f[s]["all_per_s"])
    for q in CONSUMERS:
        add(f"{q} events/s, drain, steady 10-90 %", lambda f, q=q: f["drain"]["steady_per_s"][q])
    add("publisher events/s, live", lambda f: f["live"]["publish_per_s"])
    add("gateway requests/s (GET .../workspaces)", lambda f: f["gateway"]["per_s"])
    add("gateway p50 ms", lambda f: f["gateway"]["p50_ms"], 1)
    add("gateway p99 ms", lambda f: f["gateway"]["p99_ms"], 1)
    add(
        "stack CPU ms per event, drain",
        lambda f: stack_cpu(f["drain"]) * 1e3 / f["drain"]["events"],
        2,
    )
    add(
        "stack CPU ms per request, gateway",
        lambda f: stack_cpu(f["gateway"]) * 1e3 / max(f["gateway"]["requests"], 1),
        2,
    )
    add("stack CPU at idle, cores", lambda f: stack_cpu(f["idle"]) / f["idle"]["cpu"]["wall_s"], 2)
    add("machine busy %, drain", lambda f: f["drain"]["cpu"]["machine_busy_pct"])
    add("machine busy %, gateway", lambda f: f["gateway"]["cpu"]["machine_busy_pct"])
    add("other jobs, cores, drain", lambda f: f["drain"]["cpu"]["others_cores"], 2)
    add("other jobs, cores, gateway", lambda f: f["gateway"]["cpu"]["others_cores"], 2)
    return rows


STACK_GROUPS = (*SERVICES, "haproxy", "postgres", "redis", "rabbitmq")


def stack_cpu(s: dict[str, Any]) -> float:
    """CPU seconds of the stack and its servers in a scenario (not the bench's own processes)."""
    return sum(v for g, v in s["cpu"]["cpu_s"].items() if g in STACK_GROUPS)


def cpu_rows(by: dict[int, dict[str, Any]], scenario: str, unit: str) -> list[list[str]]:
    counts = sorted(by)
    groups = sorted({g for c in counts for g in by[c][scenario]["cpu"]["cpu_s"]})
    units = {c: by[c][scenario].get("requests") or by[c][scenario].get("events") for c in counts}
    rows = []
    for g in groups:
        cells = [g]
        for c in counts:
            s = by[c][scenario]["cpu"]
            used = s["cpu_s"].get(g, 0.0)
            cells += [num(used / s["wall_s"], 2), num(used * 1e3 / units[c], 3)]
        rows.append(cells)
    for label, key in (("other jobs", "others_cores"), ("machine busy %", "machine_busy_pct")):
        cells = [label]
        for c in counts:
            v = by[c][scenario]["cpu"][key]
            cells += [num(v, 2 if key == "others_cores" else 0), ""]
        rows.append(cells)
    return rows


def limits(by: dict[int, dict[str, Any]]) -> list[str]:
    """What limits the gain, from the measured figures."""
    counts = sorted(by)
    if len(counts) < 2:
        return []
    one, two = by[counts[0]], by[counts[-1]]
    lines = []
    for scenario, unit, total in (
        ("gateway", "request", lambda s: s["requests"]),
        ("drain", "event", lambda s: s["events"]),
    ):
        a, b = one[scenario], two[scenario]
        ca, cb = stack_cpu(a) * 1e3 / total(a), stack_cpu(b) * 1e3 / total(b)
        rate_a = a["per_s"] if scenario == "gateway" else a["all_per_s"]
        rate_b = b["per_s"] if scenario == "gateway" else b["all_per_s"]
        lines.append(
            f"{scenario}: {rate_b / rate_a:.2f}x with {counts[-1]} replicas; the machine "
            f"was {a['cpu']['machine_busy_pct']:.0f} % -> {b['cpu']['machine_busy_pct']:.0f} % "
            f"busy ({a['cpu']['cores']:.0f} cores: this stack {a['cpu']['ours_cores']:.2f} -> "
            f"{b['cpu']['ours_cores']:.2f} cores, other jobs {a['cpu']['others_cores']:.2f} -> "
            f"{b['cpu']['others_cores']:.2f}); stack CPU per {unit} {ca:.2f} -> {cb:.2f} ms "
            f"({100 * (cb / ca - 1):+.0f} %)"
        )
    for scenario in ("live", "drain", "gateway"):
        a, b = one[scenario]["cpu"]["others_cores"], two[scenario]["cpu"]["others_cores"]
        if abs(a - b) > 0.25:
            lines.append(
                f"note: other jobs took {a:.2f} vs {b:.2f} cores during the {scenario} runs: "
                "compare its CPU per event or request, not its rates"
            )
    waits = {
        s: (one["drain"]["locks"][s]["lock_wait_pct"], two["drain"]["locks"][s]["lock_wait_pct"])
        for s in ("activity", "usage", "realtime")
    }
    lines.append(
        "lock waits in the drain (share of 50 ms samples with a backend waiting on a lock): "
        + ", ".join(f"{s} {a:.0f} % -> {b:.0f} %" for s, (a, b) in waits.items())
    )
    idle_a = stack_cpu(one["idle"]) / one["idle"]["cpu"]["wall_s"]
    idle_b = stack_cpu(two["idle"]) / two["idle"]["cpu"]["wall_s"]
    hop = two["gateway"]["cpu_ms_per_request"].get("haproxy", 0.0)
    for scenario in ("gateway", "drain"):
        a, b = one[scenario]["cpu"], two[scenario]["cpu"]
        left_a, left_b = a["cores"] - a["others_cores"], b["cores"] - b["others_cores"]
        use_a, use_b = a["ours_cores"] / left_a, b["ours_cores"] / left_b
        if use_a >= 0.85:
            verdict = (
                "CPU: one process per service already used the cores, so the second one "
                "only shares them"
            )
        else:
            verdict = (
                "not the cores at one replica: the single process per service (one event "
                "loop) was the limit there"
            )
        lines.append(
            f"limit ({scenario}): {verdict}. This run's processes used {a['ours_cores']:.2f} "
            f"of the {left_a:.2f} cores other jobs left ({100 * use_a:.0f} %) with "
            f"{counts[0]} replica, {b['ours_cores']:.2f} of {left_b:.2f} ({100 * use_b:.0f} %) "
            f"with {counts[-1]}."
        )
    lines.append(
        f"cost of the replicas themselves: {idle_a:.2f} -> {idle_b:.2f} cores at idle (event "
        f"loops, HAProxy's health checks, relays), HAProxy {hop:.2f} ms CPU per request."
    )
    return lines


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    by = figures["by_replicas"]
    counts = sorted(by)
    header = ["figure", *[f"{c} replica{'s' if c > 1 else ''}" for c in counts]]
    if len(counts) == 2:
        header.append("ratio")
    rows = []
    for name, values, digits in figure_rows(by):
        cells = [name, *[num(v, digits) for v in values]]
        if len(counts) == 2:
            cells.append(ratio(values[0], values[1]))
        rows.append(cells)
    runs = ", ".join(f"{c} replica(s): best of {by[c]['runs']}" for c in counts)
    print(
        f"\nOne vs {counts[-1]} replicas of every service ({args.events:,} events per scenario, "
        f"{args.teams:,} teams, {args.clients} connections from {args.load_procs} load processes; "
        f"stacks in the order {' '.join(map(str, figures['order']))}; {runs})"
    )
    print(table(rows, header))
    for scenario, unit in (("drain", "event"), ("gateway", "request")):
        sub = ["process group"]
        for c in counts:
            sub += [f"{c}r cores", f"{c}r ms/{unit}"]
        window = "from resuming the consumers" if scenario == "drain" else "the measured window"
        print(f"\nCPU in the {scenario} ({window}): cores used, and CPU ms per {unit}")
        print(table(cpu_rows(by, scenario, unit), sub))
    for c in counts:
        for scenario in ("drain", "gateway"):
            cpu = by[c][scenario]["cpu"]
            split = {  # the services that did the scenario's work
                s: v
                for s, v in by[c][scenario]["split"].items()
                if cpu["cpu_s"].get(s, 0.0) >= 0.1 * cpu["wall_s"]
            }
            if split:
                print(
                    f"  {c} replicas, {scenario}, each replica's share of its service's CPU: "
                    + ", ".join(
                        f"{s} {'/'.join(f'{x:.0f}' for x in v)} %" for s, v in split.items()
                    )
                )
    print()
    for line in limits(by):
        print(f"  {line}")
    last = figures["sizes"]
    if last.get("sizes"):
        print(
            f"\nSizes measured on the last stack ({last['replicas']} replica(s); tables with "
            "indexes and TOAST)"
        )
        rows = [
            [name, num(s["rows"]), num(s["bytes"] / 1024, 0), num(s["bytes_per_row"], 0)]
            for name, s in last["sizes"].items()
        ]
        print(table(rows, ["table", "rows", "KiB", "bytes/row"]))
        rows = [
            [
                pat,
                num(s["keys"]),
                num(s["bytes_each"]),
                num(s.get("entries_each", math.nan)),
                num(s.get("bytes_per_entry", math.nan)),
            ]
            for pat, s in sorted(last["redis"].items(), key=lambda kv: -kv[1]["keys"])
        ]
        print(
            table(
                rows,
                ["redis key (namespace stripped)", "keys", "bytes each", "entries", "bytes/entry"],
            )
        )
    for c in counts:
        print(
            f"  {c} replica(s): PostgreSQL connections held per database "
            f"{by[c]['pg_connections']}; RSS per process (MiB) "
            + ", ".join(f"{s} {v:.0f}" for s, v in by[c]["rss_mib"].items())
        )
    print(
        f"  load average at the end: {', '.join(f'{x:.2f}' for x in figures['load_average'])}; "
        f"{figures['seconds']:.0f} s in all"
    )
    summary = {
        name: dict(zip([str(c) for c in counts], values, strict=True))
        for name, values, _ in figure_rows(by)
    }
    print(
        "BENCH_JSON "
        + json.dumps(
            eb.nan_to_none(
                {
                    "bench": "scale",
                    "quick": args.quick,
                    "events": args.events,
                    "teams": args.teams,
                    "clients": args.clients,
                    "figures": summary,
                    "limits": limits(by),
                    "by_replicas": {str(c): by[c] for c in counts},
                    "runs": {str(c): v for c, v in figures["runs"].items()},
                    "sizes": figures["sizes"],
                    "order": figures["order"],
                }
            ),
            default=str,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replica-counts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2, help="1: 1 then 2 replicas; 2: 1 2 2 1")
    parser.add_argument("--events", type=int, default=10_000, help="per scenario (live, drain)")
    parser.add_argument("--warmup-events", type=int, default=1_000)
    parser.add_argument("--teams", type=int, default=500)
    parser.add_argument("--plan", default="enterprise")
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=50, help="publishes per gather")
    parser.add_argument("--producers", type=int, default=4, help="publishing tasks")
    parser.add_argument("--workspaces", type=int, default=5)
    parser.add_argument("--clients", type=int, default=64, help="gateway connections in all")
    parser.add_argument("--load-procs", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="measured gateway seconds")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle CPU measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="gateway warm-up seconds")
    parser.add_argument("--pool-size", type=int, default=3, help="AGENTHQ_DB_POOL_SIZE")
    parser.add_argument(
        "--pg-wait", type=float, default=300.0, help="seconds to wait for free connections"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--attempts", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 events, 1.5 s gateway runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.events, args.warmup_events, args.teams = 1, 1_000, 100, 50
        args.duration, args.warmup, args.idle, args.workspaces = 1.5, 0.5, 0.5, 2
    print(
        f"bench/scale.py (load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)",
        flush=True,
    )
    figures = asyncio.run(measure(args))
    report(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
