"""Realtime channels: sockets held, fan-out against a raw websockets floor, REST to socket.

The whole system runs as real processes (``harness.stack``: as ``make run``
starts it, on scratch databases, bus namespace ``bench-<run>.``, everything
removed afterwards, Redis keys included), the gateway's rate limits set never
to refuse. One team on the enterprise plan with ``--users`` (20) members,
registered, logged in and added through the gateway; sockets use their
tokens in turn (many sockets per user; presence is per user).

The load generator is ``--client-procs`` (2) processes (multiprocessing,
spawn, uvloop), each holding thousands of sockets with the ``websockets``
asyncio client and reading every one of them continuously. This process only
orchestrates them, over one pipe each, and holds the one sender socket per
server. Every timestamp is ``time.monotonic()`` (CLOCK_MONOTONIC: one clock
for the whole machine), taken where the thing happened: the sender just
before ``send()`` (or just before the HTTP request), each client process when
a marker frame came out of ``recv()`` on each of its sockets. Per round, the
latency is last arrival - send (the last socket; the median socket's too).

The floor: a minimal broadcast server written with ``websockets`` (asyncio
``serve`` on uvloop, as the service's process runs; each message from a client
goes to every other connected client with
``websockets.asyncio.server.broadcast``), in a process of its own, with the
same clients, the same socket counts and the same send pattern, in the same
run. The clients offer permessage-deflate (as browsers do); a probe socket
learns whether the service accepts it, and the floor does the same.

1. Hold (``--hold``, 10,000 sockets): connect them with ``--concurrency``
   (200) handshakes in flight (service: until each socket got its
   ``welcome``), then the realtime process's VmRSS after ``--settle`` s
   against its VmRSS before (after a warm-up of 50 sockets); the count is
   checked with ``GET /v1/teams/{id}/presence`` through the gateway; then
   every socket is closed and presence must return to zero. Same for the
   floor (RSS of its process), for context.
2. End to end (``--e2e-sockets`` 1,000, ``--writes`` 100): sequential
   ``POST /v1/teams/{id}/workspaces`` through the gateway, each timed from
   just before the request until the last socket received the
   ``workspace.created`` frame with that name.
3. Fan-out (``--sizes`` 1,000 and 5,000): one sender socket sends
   ``{"type": "bench.ping", "data": {"n": i}}``; the round ends when every
   receiver has it (``--round-timeout`` records a loss). ``--warmup`` rounds,
   then ``--rounds`` (50) rounds per server, service and floor alternating
   (and which goes first alternating), ``--gap`` s apart (the service allows
   20 frames/s per socket). Also the CPU time of each server process per
   delivered frame (robust to the machine's noise, where latency is not).

Goals: RSS per connection < 30 KiB; fan-out last-socket p50 and p99 within
1.25x the floor's; end to end p99 < 50 ms (the seed asks < 100 ms, and 1000+
sockets held). A miss is a finding: exit 0 unless ``--strict``. Errors (a
failed connection, a lost frame, a socket closed by the server, a wrong
presence count, an error in a service's log) exit 2. The last line is
``BENCH_JSON {...}``. ``--py-spy DIR`` profiles the realtime process while
the held sockets connect and during each fan-out size (run under ``uv run
--with py-spy``).

URLs: ``AGENTHQ_TEST_POSTGRES_URL``, ``AGENTHQ_TEST_BROKER_URL``,
``AGENTHQ_TEST_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness.stack import PASSWORD, scratch_stack
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agenthq_devctl.supervisor import Stack

NEVER = "1000000000/hour"  # the gateway's rate limits: checked on every request, never reached
RATE_LIMITS = {
    "auth": {"ip": "10000/minute"},
    "reads": {"user": NEVER, "team": NEVER},
    "writes": {"user": NEVER, "team": NEVER},
}
SERVICE, FLOOR = "service", "floor"
TARGETS = (SERVICE, FLOOR)
PING, CREATED = "bench.ping", "workspace.created"
MARKS = (f'"{PING}"', f'"{CREATED}"')
MIN_SEND_INTERVAL = 0.06  # the service allows 20 frames/s per connection
TOKEN_MAX_AGE = 600.0  # access tokens live 15 minutes: log in again before that
CLOSE_MEANING = {
    1000: "normal",
    1001: "server going away",
    1006: "no close frame",
    1008: "policy: not a team member, or too many refused frames",
    1011: "server error",
    1012: "server restarting",
    1013: "send buffer full: the client did not read fast enough",
    4401: "token missing, invalid or expired",
}

# ---------------------------------------------------------------- helpers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "p50": pct(values, 0.50),
        "p95": pct(values, 0.95),
        "p99": pct(values, 0.99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def jsonable(value: Any) -> Any:
    """NaN is not JSON: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_since(before: tuple[int, int]) -> float:
    """Percent of the machine's CPU time (all cores) used since ``before``."""
    busy, total = machine_ticks()
    return 100 * (busy - before[0]) / max(1, total - before[1])


def utc(at: float) -> str:
    """An epoch time as the services' logs write it (UTC)."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe(exc: BaseException) -> str:
    """A failed connection, as a reader of the report wants it."""
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        if frame is None:
            return "closed without a close frame (1006)"
        meaning = CLOSE_MEANING.get(frame.code, "?")
        return f"closed by the server with {frame.code} ({meaning}): {frame.reason!r}"
    if isinstance(exc, InvalidStatus):
        return f"handshake refused: HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "timed out (handshake or welcome)"
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------- child processes: pipe protocol

Handler = Callable[..., Awaitable[Any]]


async def _run_command(pipe: Pipe, rid: int, handler: Handler, args: tuple[Any, ...]) -> None:
    try:
        result = await handler(*args)
    except Exception as exc:
        pipe.send(("reply", rid, False, f"{type(exc).__name__}: {exc}"))
    else:
        pipe.send(("reply", rid, True, result))


async def serve_pipe(pipe: Pipe, handlers: dict[str, Handler]) -> None:
    """Run the orchestrator's commands, each in a task of its own, until
    ``quit`` (or until the orchestrator is gone). A thread reads the pipe, so
    the event loop never blocks on it."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                message = None
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message is None:
                return

    threading.Thread(target=read, daemon=True).start()
    running: set[asyncio.Task[None]] = set()
    while True:
        message = await inbox.get()
        if message is None:
            return
        rid, name, args = message
        if name == "quit":
            pipe.send(("reply", rid, True, None))
            return
        task = asyncio.create_task(_run_command(pipe, rid, handlers[name], args))
        running.add(task)
        task.add_done_callback(running.discard)


# ------------------------------------------------- load client processes


@dataclass(eq=False)
class Sock:
    ws: ClientConnection
    target: str
    closing: bool = False
    task: asyncio.Task[None] | None = None


class LoadClient:
    """Holds sockets to the service and to the floor; reads every one of them
    and notes when each marker frame arrived on each."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.sockets: dict[str, list[Sock]] = {t: [] for t in TARGETS}
        self.arrivals: dict[str, list[float]] = {}
        self.waiters: dict[str, tuple[int, asyncio.Event]] = {}
        self.errors: list[str] = []
        self.frames = 0
        self.done = 0

    def handlers(self) -> dict[str, Handler]:
        return {
            "connect": self.connect,
            "close": self.close,
            "wait": self.wait,
            "status": self.status,
        }

    async def connect(
        self,
        target: str,
        url: str,
        tokens: list[str],
        first: int,
        count: int,
        concurrency: int,
        welcome: bool,
        compression: str | None,
    ) -> dict[str, Any]:
        """Open ``count`` sockets, ``concurrency`` handshakes at a time; when
        each became usable (service: its welcome arrived)."""
        gate = asyncio.Semaphore(concurrency)
        welcomed: list[float] = []
        took: list[float] = []
        failures: list[str] = []
        self.done = 0

        async def one(i: int) -> None:
            full = f"{url}?token={tokens[(first + i) % len(tokens)]}" if tokens else url
            async with gate:
                started = time.monotonic()
                try:
                    await self._open(target, full, welcome, compression)
                except Exception as exc:
                    failures.append(describe(exc))
                    return
                now = time.monotonic()
            welcomed.append(now)
            took.append((now - started) * 1000)
            self.done += 1

        async def progress() -> None:
            while True:
                await asyncio.sleep(1.0)
                self.pipe.send(("progress", self.done))

        ticker = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(one(i) for i in range(count)))
        finally:
            ticker.cancel()
        return {
            "welcomed": welcomed,
            "connect_ms": took,
            "failures": failures,
            "open": len(self.sockets[target]),
        }

    async def _open(self, target: str, url: str, welcome: bool, compression: str | None) -> None:
        ws = await connect(
            url,
            compression=compression,
            ping_interval=None,  # the servers ping; the load clients only answer
            open_timeout=60,
            close_timeout=10,
            max_size=2**20,
        )
        try:
            if welcome:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame.get("type") != "welcome":
                    raise RuntimeError(f"first frame was {frame.get('type')!r}, not 'welcome'")
        except BaseException:
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        sock = Sock(ws, target)
        sock.task = asyncio.create_task(self._read(sock))
        self.sockets[target].append(sock)

    async def _read(self, sock: Sock) -> None:
        ws = sock.ws
        try:
            async for message in ws:
                now = time.monotonic()
                self.frames += 1
                text = message if isinstance(message, str) else message.decode()
                if MARKS[0] in text or MARKS[1] in text:
                    self._arrived(text, now)
        except ConnectionClosed:
            pass
        if not sock.closing:
            code = ws.close_code
            self.errors.append(
                f"{sock.target} socket closed by the server: {code} "
                f"({CLOSE_MEANING.get(code or 1006, '?')}) {ws.close_reason!r}"
            )
            with contextlib.suppress(ValueError):
                self.sockets[sock.target].remove(sock)

    def _arrived(self, text: str, now: float) -> None:
        frame = json.loads(text)
        kind = frame.get("type")
        data = frame.get("data") or {}
        if kind == PING:
            key = f"{PING}:{data.get('n')}"
        elif kind == CREATED:
            key = f"{CREATED}:{data.get('name')}"
        else:
            return
        times = self.arrivals.setdefault(key, [])
        times.append(now)
        waiter = self.waiters.get(key)
        if waiter is not None and len(times) >= waiter[0]:
            waiter[1].set()

    async def wait(self, key: str, target: str, timeout: float) -> dict[str, Any]:
        """Until every socket of ``target`` here has the marker (or the timeout)."""
        expected = len(self.sockets[target])
        if len(self.arrivals.setdefault(key, [])) < expected:
            event = asyncio.Event()
            self.waiters[key] = (expected, event)
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                del self.waiters[key]
        times = self.arrivals.pop(key, [])
        return {"times": times, "missing": max(0, expected - len(times))}

    async def close(self, target: str, count: int | None, concurrency: int) -> dict[str, Any]:
        socks = self.sockets[target]
        n = len(socks) if count is None else min(count, len(socks))
        victims = socks[len(socks) - n :]
        del socks[len(socks) - n :]
        gate = asyncio.Semaphore(concurrency)

        async def one(sock: Sock) -> None:
            sock.closing = True
            async with gate:
                with contextlib.suppress(Exception):
                    await sock.ws.close()
            if sock.task is not None:
                with contextlib.suppress(Exception):
                    await sock.task

        started = time.monotonic()
        await asyncio.gather(*(one(s) for s in victims))
        return {"closed": n, "seconds": time.monotonic() - started, "open": len(socks)}

    async def status(self) -> dict[str, Any]:
        errors, self.errors = self.errors, []
        if not self.waiters:
            self.arrivals.clear()  # stragglers of rounds already reported
        return {
            "open": {t: len(s) for t, s in self.sockets.items()},
            "errors": errors,
            "frames": self.frames,
        }


def run_loop(main: Coroutine[Any, Any, None], loop: str) -> None:
    """``asyncio.run`` on uvloop (what uvicorn picks for the service when it is
    installed) or on asyncio's own loop."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def client_process(pipe: Pipe, loop: str) -> None:
    raise_nofile()
    run_loop(serve_pipe(pipe, LoadClient(pipe).handlers()), loop)


# ------------------------------------------------------------ the floor


def floor_process(pipe: Pipe, port: int, loop: str, compress: bool) -> None:
    raise_nofile()
    run_loop(floor_main(pipe, port, compress), loop)


async def floor_main(pipe: Pipe, port: int, compress: bool) -> None:
    """The floor: every message from a client goes to every other client."""
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for message in ws:
                broadcast((c for c in clients if c is not ws), message)
        finally:
            clients.discard(ws)

    async def count() -> int:
        return len(clients)

    # The same negotiation as the service (which is served by websockets too):
    # permessage-deflate refused, or accepted with websockets' defaults; pings
    # every 20 s, as the service's.
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression="deflate" if compress else None,
        backlog=2048,
        max_size=2**20,
    ):
        await serve_pipe(pipe, {"count": count})


# ------------------------------------------------- orchestrator's side


class Worker:
    """A child process (spawn) driven over a pipe: commands out, replies and
    progress in (a thread reads the pipe)."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), name=name, daemon=True)
        self.process.start()
        child.close()
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count()
        self.progress = 0
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def _read(self) -> None:
        while True:
            try:
                message = self.pipe.recv()
            except (EOFError, OSError):
                message = None
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._dispatch, message)
            if message is None:
                return

    def _dispatch(self, message: Any) -> None:
        if message is None:
            for waiting in self.pending.values():
                if not waiting.done():
                    waiting.set_exception(
                        RuntimeError(f"{self.name} exited (code {self.process.exitcode})")
                    )
            self.pending.clear()
            return
        if message[0] == "progress":
            self.progress = message[1]
            return
        _, rid, ok, payload = message
        future = self.pending.pop(rid, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(payload)
        else:
            future.set_exception(RuntimeError(f"{self.name}: {payload}"))

    async def call(self, name: str, *args: Any) -> Any:
        rid = next(self.ids)
        future = self.loop.create_future()
        self.pending[rid] = future
        self.pipe.send((rid, name, args))
        return await future

    async def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call("quit"), 10)
        await asyncio.to_thread(self.process.join, 10)
        if self.process.is_alive():
            self.process.terminate()  # this child only, by its pid
            await asyncio.to_thread(self.process.join, 5)


@dataclass
class Arrival:
    first_ms: float
    median_ms: float
    last_ms: float
    received: int
    missing: int
    at: float  # wall-clock time of the send (to find it in the services' logs)


class Load:
    """The client processes, as one pool of sockets per target."""

    def __init__(self, workers: list[Worker], concurrency: int, compression: str | None) -> None:
        self.workers = workers
        self.concurrency = concurrency
        self.compression = compression
        self.open = {t: [0] * len(workers) for t in TARGETS}
        self.placed = dict.fromkeys(TARGETS, 0)  # sockets ever opened: tokens in turn
        self.errors: list[str] = []

    def count(self, target: str) -> int:
        return sum(self.open[target])

    async def ensure(
        self, target: str, total: int, url: str, tokens: list[str], label: str
    ) -> dict[str, Any] | None:
        """Open or close sockets until ``target`` has ``total``; the connect
        figures when any were opened."""
        shares = split(total, len(self.workers))
        fewer = [max(0, o - s) for o, s in zip(self.open[target], shares, strict=True)]
        more = [max(0, s - o) for o, s in zip(self.open[target], shares, strict=True)]
        per_proc = max(1, math.ceil(self.concurrency / len(self.workers)))
        if any(fewer):
            await asyncio.gather(
                *(
                    w.call("close", target, k, per_proc)
                    for w, k in zip(self.workers, fewer, strict=True)
                    if k
                )
            )
            self.open[target] = [o - k for o, k in zip(self.open[target], fewer, strict=True)]
        if not any(more):
            return None
        wanted = sum(more)
        firsts = [self.placed[target] + sum(more[:i]) for i in range(len(more))]
        self.placed[target] += wanted
        for w in self.workers:
            w.progress = 0
        started = time.monotonic()
        ticker = asyncio.create_task(self._ticker(label, wanted, started))
        try:
            replies = await asyncio.gather(
                *(
                    w.call(
                        "connect",
                        target,
                        url,
                        tokens,
                        first,
                        k,
                        per_proc,
                        target == SERVICE,
                        self.compression,
                    )
                    for w, k, first in zip(self.workers, more, firsts, strict=True)
                    if k
                )
            )
        finally:
            ticker.cancel()
        busy = [i for i, k in enumerate(more) if k]
        for i, reply in zip(busy, replies, strict=True):
            self.open[target][i] = reply["open"]
        welcomed = sorted(t for r in replies for t in r["welcomed"])
        failures = [f for r in replies for f in r["failures"]]
        if failures:
            distinct = sorted(set(failures))[:5]
            self.errors.append(
                f"{label}: {len(failures)} of {wanted} connections failed: " + "; ".join(distinct)
            )
        ok = len(welcomed)
        seconds = (welcomed[-1] - started) if welcomed else math.nan
        decile = max(1, ok // 10)
        return {
            "sockets": ok,
            "failed": len(failures),
            "seconds": seconds,
            "per_s": ok / seconds if ok else math.nan,
            "first_decile_per_s": decile / (welcomed[decile - 1] - started) if ok else math.nan,
            "last_decile_per_s": (
                decile / (welcomed[-1] - welcomed[-decile - 1]) if ok > decile else math.nan
            ),
            "connect_ms": summary([t for r in replies for t in r["connect_ms"]]),
        }

    async def _ticker(self, label: str, wanted: int, started: float) -> None:
        while True:
            await asyncio.sleep(5.0)
            done = sum(w.progress for w in self.workers)
            elapsed = time.monotonic() - started
            print(
                f"    {label}: {done:,} / {wanted:,} sockets ready after {elapsed:.0f} s "
                f"({done / elapsed:,.0f}/s)",
                flush=True,
            )

    async def close_all(self, target: str) -> float:
        started = time.monotonic()
        per_proc = max(1, math.ceil(self.concurrency / len(self.workers)))
        await asyncio.gather(*(w.call("close", target, None, per_proc) for w in self.workers))
        self.open[target] = [0] * len(self.workers)
        return time.monotonic() - started

    async def arrivals(self, key: str, target: str, sent: float, timeout: float) -> Arrival:
        replies = await asyncio.gather(
            *(w.call("wait", key, target, timeout) for w in self.workers)
        )
        times = sorted(t for r in replies for t in r["times"])
        missing = sum(r["missing"] for r in replies)
        at = time.time() - (time.monotonic() - sent)
        if not times:
            return Arrival(math.nan, math.nan, math.nan, 0, missing, at)
        first, median, last = (
            (t - sent) * 1000 for t in (times[0], times[len(times) // 2], times[-1])
        )
        return Arrival(first, median, last, len(times), missing, at)

    async def collect_errors(self) -> list[str]:
        """Sockets the servers closed since the last call (and connect failures)."""
        replies = await asyncio.gather(*(w.call("status") for w in self.workers))
        for i, reply in enumerate(replies):
            for target in TARGETS:
                self.open[target][i] = reply["open"][target]
            self.errors.extend(reply["errors"])
        errors, self.errors = self.errors, []
        return errors


@dataclass
class Sender:
    """The one socket a server's rounds are sent from (it reads what it gets)."""

    ws: ClientConnection
    errors: list[str]
    last_sent: float = 0.0
    closing: bool = False
    drain: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, url: str, welcome: bool, compression: str | None, errors: list[str]
    ) -> Sender:
        ws = await connect(url, compression=compression, ping_interval=None, max_size=2**20)
        if welcome:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert frame["type"] == "welcome", frame
        sender = cls(ws, errors)
        sender.drain = asyncio.create_task(sender._drain())
        return sender

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in self.ws:
                pass
        if not self.closing:
            self.errors.append(
                f"sender socket closed by the server: {self.ws.close_code} "
                f"({CLOSE_MEANING.get(self.ws.close_code or 1006, '?')}) {self.ws.close_reason!r}"
            )

    async def send(self, text: str) -> float:
        """Send (at most 1/MIN_SEND_INTERVAL per second); when it was sent."""
        wait = self.last_sent + MIN_SEND_INTERVAL - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        sent = time.monotonic()
        await self.ws.send(text)
        self.last_sent = sent
        return sent

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self.drain is not None:
            with contextlib.suppress(Exception):
                await self.drain


class PySpy:
    """``py-spy record`` of one process over one phase (raw collapsed stacks)."""

    def __init__(self, directory: str) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise SystemExit(
                "--py-spy needs py-spy: uv run --frozen --with py-spy python bench/realtime.py ..."
            )
        self.exe = exe
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def start(self, pid: int, name: str) -> tuple[subprocess.Popen[bytes], Path]:
        out = self.dir / f"{name}.txt"
        cmd = [self.exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        popen = subprocess.Popen(
            [*cmd, "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return popen, out

    @staticmethod
    def stop(popen: subprocess.Popen[bytes], out: Path, top: int = 15) -> str:
        popen.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            popen.terminate()
            popen.wait(timeout=10)
        return f"{out}\n{top_self_time(out, top)}" if out.exists() else f"{out}: not written"


def top_self_time(path: Path, top: int) -> str:
    """The functions most often on top of the stack (self time), and the
    service's own functions (``agenthq_*``) most often anywhere on it (total
    time), in py-spy's raw output."""
    own: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + int(n)
        for f in {f for f in frames if "agenthq_" in f}:
            ours[f] = ours.get(f, 0) + int(n)
        total += int(n)
    if not total:
        return "no samples"
    lines = [f"{total} samples; self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in _top(own, top)]
    lines.append("service code, total time (on the stack):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in _top(ours, top)]
    return "\n".join(lines)


def _top(counts: dict[str, int], top: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: -kv[1])[:top]


def scan_logs(log_dir: Path) -> dict[str, dict[str, int]]:
    """What the services logged at warning level or above, counted by kind:
    ``{service: {"error: <event>: <exception's last line>": n}}``."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted(log_dir.glob("*.log")):
        counts: dict[str, int] = {}
        with path.open(errors="replace") as lines:
            for line in lines:
                if '"level": "' not in line or '"level": "info"' in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                level = entry.get("level") if isinstance(entry, dict) else None
                if level not in ("warning", "error", "critical"):
                    continue
                what = str(entry.get("event", "")).strip()
                if entry.get("error"):
                    what += f" ({entry['error']})"
                if entry.get("exception"):
                    what += ": " + str(entry["exception"]).strip().splitlines()[-1]
                key = f"{level}: {re.sub(r'0x[0-9a-f]+', '0x...', what)[:240]}"
                counts[key] = counts.get(key, 0) + 1
        if counts:
            found[path.stem] = counts
    return found


# ------------------------------------------------------------ the system


@dataclass
class User:
    email: str
    id: str
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Bench:
    args: argparse.Namespace
    stack: Stack
    http: httpx.AsyncClient
    load: Load
    floor: Worker | None = None
    floor_url: str = ""
    team_id: str = ""
    users: list[User] = field(default_factory=list)
    logged_in: float = 0.0
    senders: dict[str, Sender] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    spy: PySpy | None = None
    profiles: dict[str, str] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def profiled(self, name: str) -> AsyncIterator[None]:
        """py-spy the realtime process over a phase (with ``--py-spy``)."""
        if self.spy is None:
            yield
            return
        popen, out = self.spy.start(self.realtime_pid, f"realtime-{name}")
        try:
            yield
        finally:
            self.profiles[name] = await asyncio.to_thread(PySpy.stop, popen, out)

    @property
    def realtime_pid(self) -> int:
        process = self.stack.processes["realtime"].process
        assert process is not None
        return process.pid

    def pid(self, target: str) -> int:
        if target == SERVICE:
            return self.realtime_pid
        assert self.floor is not None
        return self.floor.pid

    @property
    def socket_url(self) -> str:
        base = self.stack.processes["realtime"].ws_url
        return f"{base}/ws/teams/{self.team_id}"

    def url(self, target: str) -> str:
        return self.socket_url if target == SERVICE else self.floor_url

    @property
    def tokens(self) -> list[str]:
        return [u.token for u in self.users]

    async def fresh_tokens(self) -> None:
        """Log every user in again if the tokens are getting old."""
        if time.monotonic() - self.logged_in < TOKEN_MAX_AGE:
            return
        gate = asyncio.Semaphore(4)

        async def login(user: User) -> None:
            async with gate:
                response = await self.http.post(
                    "/v1/auth/login", json={"email": user.email, "password": PASSWORD}
                )
            response.raise_for_status()
            user.token = response.json()["access_token"]

        await asyncio.gather(*(login(u) for u in self.users))
        self.logged_in = time.monotonic()

    async def ensure(self, target: str, total: int, label: str) -> dict[str, Any] | None:
        if target == SERVICE:
            await self.fresh_tokens()
        tokens = self.tokens if target == SERVICE else []
        return await self.load.ensure(target, total, self.url(target), tokens, label)

    async def presence(self) -> int:
        response = await self.http.get(
            f"/v1/teams/{self.team_id}/presence", headers=self.users[0].headers
        )
        response.raise_for_status()
        return sum(int(p["connections"]) for p in response.json())

    async def check(self, phase: str) -> None:
        for error in await self.load.collect_errors():
            self.errors.append(error if error.startswith(phase) else f"{phase}: {error}")
        for sender in self.senders.values():
            self.errors.extend(f"{phase}: {e}" for e in sender.errors)
            sender.errors.clear()


async def set_up_team(bench: Bench, users: int) -> None:
    http = bench.http
    gate = asyncio.Semaphore(4)  # argon2 hashes: a few at a time
    run = uuid.uuid4().hex[:8]

    async def sign_up(i: int) -> User:
        email = f"bench-{run}-{i}@example.com"
        async with gate:
            registered = await http.post(
                "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": f"U{i}"}
            )
            assert registered.status_code == 201, registered.text
            tokens = await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert tokens.status_code == 200, tokens.text
        return User(email, registered.json()["id"], tokens.json()["access_token"])

    bench.users = list(await asyncio.gather(*(sign_up(i) for i in range(users))))
    bench.logged_in = time.monotonic()
    owner = bench.users[0]
    created = await http.post(
        "/v1/teams", json={"name": "Realtime bench", "plan": "enterprise"}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    bench.team_id = str(created.json()["id"])

    async def add(user: User) -> None:
        deadline = time.monotonic() + 30
        while True:
            response = await http.post(
                f"/v1/teams/{bench.team_id}/members",
                json={"email": user.email, "role": "member"},
                headers=owner.headers,
            )
            if response.status_code == 201:
                return
            # 404 user_not_found: the team service has not had user.registered yet.
            if response.status_code != 404 or time.monotonic() > deadline:
                raise RuntimeError(f"adding a member: {response.status_code} {response.text}")
            await asyncio.sleep(0.2)

    for user in bench.users[1:]:
        await add(user)


async def wait_read_model(url: str, team_id: str, members: int) -> None:
    """Until the realtime service's membership read model has the whole team
    (else every connection would ask the team service)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        deadline = time.monotonic() + 60
        while True:
            known = await conn.fetchval(
                "SELECT count(*) FROM rm_members m JOIN rm_teams t USING (team_id) "
                "WHERE m.team_id = $1 AND m.active",
                uuid.UUID(team_id),
            )
            if known >= members:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"realtime read model has {known} of {members} members")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


# ------------------------------------------------------------ scenarios


async def bench_hold(bench: Bench, n: int) -> dict[str, Any]:
    args = bench.args
    result: dict[str, Any] = {}
    for target in TARGETS:
        pid = bench.pid(target)
        label = f"hold {target}"
        # Warm-up: code paths, pools and caches used once before the baseline.
        await bench.ensure(target, min(50, n), f"{label} warm-up")
        await bench.load.close_all(target)
        await asyncio.sleep(args.settle)
        rss_before = rss_kib(pid)
        cpu_before = cpu_seconds(pid)
        ticks = machine_ticks()
        print(f"  {target}: connecting {n:,} sockets ...", flush=True)
        if target == SERVICE:
            async with bench.profiled("hold-connect"):
                connected = await bench.ensure(target, n, label)
        else:
            connected = await bench.ensure(target, n, label)
        assert connected is not None
        cpu_used = cpu_seconds(pid) - cpu_before
        busy = busy_since(ticks)
        await asyncio.sleep(args.settle)
        rss_after = rss_kib(pid)
        held = connected["sockets"]
        if target == SERVICE:
            counted = await bench.presence()
        else:
            assert bench.floor is not None
            counted = int(await bench.floor.call("count"))
        if counted != held:
            bench.errors.append(f"{label}: {held:,} sockets open, the server counts {counted:,}")
        await bench.check(label)
        close_seconds = await bench.load.close_all(target)
        left = None
        if target == SERVICE:
            for _ in range(75):  # up to 15 s
                if not (left := await bench.presence()):
                    break
                await asyncio.sleep(0.2)
            if left:
                bench.errors.append(f"{label}: presence still counts {left} after closing")
        result[target] = {
            **connected,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_per_conn_kib": (rss_after - rss_before) / held if held else math.nan,
            "cpu_ms_per_connect": 1000 * cpu_used / held if held else math.nan,
            "machine_busy_pct": busy,
            "counted": counted,
            "close_seconds": close_seconds,
            "presence_after_close": left,
        }
        print(
            f"  {target}: {held:,} sockets in {connected['seconds']:.1f} s "
            f"({connected['per_s']:,.0f}/s), RSS +{(rss_after - rss_before) / 1024:.1f} MiB "
            f"({result[target]['rss_per_conn_kib']:.1f} KiB each), closed in "
            f"{close_seconds:.1f} s",
            flush=True,
        )
    return result


async def bench_e2e(bench: Bench, sockets: int, writes: int) -> dict[str, Any]:
    args = bench.args
    await bench.ensure(SERVICE, sockets, "e2e")
    await asyncio.sleep(args.settle)
    owner = bench.users[0]
    first: list[float] = []
    median: list[float] = []
    last: list[float] = []
    slowest: Arrival | None = None
    http_ms: list[float] = []
    lost = 0
    run = uuid.uuid4().hex[:6]
    ticks = machine_ticks()
    for i in range(args.warmup + writes):
        name = f"bench {run} {i}"
        sent = time.monotonic()
        response = await bench.http.post(
            f"/v1/teams/{bench.team_id}/workspaces", json={"name": name}, headers=owner.headers
        )
        answered = time.monotonic()
        if response.status_code != 201:
            bench.errors.append(f"e2e: POST workspaces {response.status_code} {response.text}")
            break
        arrival = await bench.load.arrivals(f"{CREATED}:{name}", SERVICE, sent, args.round_timeout)
        if i >= args.warmup:
            if arrival.missing:
                lost += arrival.missing
            else:
                first.append(arrival.first_ms)
                median.append(arrival.median_ms)
                last.append(arrival.last_ms)
                if slowest is None or arrival.last_ms > slowest.last_ms:
                    slowest = arrival
            http_ms.append((answered - sent) * 1000)
        await asyncio.sleep(args.gap)
    if lost:
        bench.errors.append(f"e2e: {lost} workspace.created frames never arrived")
    await bench.check("e2e")
    return {
        "sockets": bench.load.count(SERVICE),
        "writes": writes,
        "lost": lost,
        "last_ms": summary(last),
        "median_ms": summary(median),
        "first_ms": summary(first),
        "http_ms": summary(http_ms),
        "machine_busy_pct": busy_since(ticks),
        "slowest_at": utc(slowest.at) if slowest else None,
    }


async def fanout_round(bench: Bench, target: str) -> Arrival:
    n = next(bench.counter)
    sent = await bench.senders[target].send(json.dumps({"type": PING, "data": {"n": n}}))
    return await bench.load.arrivals(f"{PING}:{n}", target, sent, bench.args.round_timeout)


async def bench_fanout(bench: Bench, size: int) -> dict[str, Any]:
    args = bench.args
    for target in TARGETS:
        await bench.ensure(target, size, f"fan-out {size:,} {target}")
        if target not in bench.senders:
            await bench.fresh_tokens()
            url = bench.url(target)
            if target == SERVICE:
                url += f"?token={bench.users[0].token}"
            bench.senders[target] = await Sender.open(
                url, target == SERVICE, bench.load.compression, []
            )
    await asyncio.sleep(args.settle)
    for _ in range(args.warmup):
        for target in TARGETS:
            await fanout_round(bench, target)
            await asyncio.sleep(args.gap)
    rounds: dict[str, list[Arrival]] = {t: [] for t in TARGETS}
    async with bench.profiled(f"fanout-{size}"):
        cpu = {t: cpu_seconds(bench.pid(t)) for t in TARGETS}
        ticks = machine_ticks()
        for i in range(args.rounds):
            for target in TARGETS if i % 2 == 0 else TARGETS[::-1]:
                rounds[target].append(await fanout_round(bench, target))
                await asyncio.sleep(args.gap)
        cpu = {t: cpu_seconds(bench.pid(t)) - cpu[t] for t in TARGETS}
        busy = busy_since(ticks)
    await bench.check(f"fan-out {size:,}")
    result: dict[str, Any] = {"machine_busy_pct": busy}
    for target in TARGETS:
        done = [r for r in rounds[target] if not r.missing]
        lost = sum(r.missing for r in rounds[target])
        if lost:
            bench.errors.append(
                f"fan-out {size:,} {target}: {lost} frames lost in "
                f"{len(rounds[target]) - len(done)} rounds"
            )
        delivered = sum(r.received for r in rounds[target])
        result[target] = {
            "sockets": bench.load.count(target),
            "rounds": len(rounds[target]),
            "lost": lost,
            "last_ms": summary([r.last_ms for r in done]),
            "median_ms": summary([r.median_ms for r in done]),
            "first_ms": summary([r.first_ms for r in done]),
            "slowest_at": utc(max(done, key=lambda r: r.last_ms).at) if done else None,
            "cpu_us_per_frame": 1e6 * cpu[target] / delivered if delivered else math.nan,
        }
    print(
        f"  {size:,} sockets: last socket p50 service {result[SERVICE]['last_ms']['p50']:.1f} ms, "
        f"floor {result[FLOOR]['last_ms']['p50']:.1f} ms",
        flush=True,
    )
    return result


# ------------------------------------------------------------- the report


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(figures: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool]]:
    """Print the tables; the goals as (text, met)."""
    goals: list[tuple[str, bool]] = []
    hold = figures.get("hold")
    if hold:
        s, f = hold[SERVICE], hold[FLOOR]
        print(f"\nSockets held on one instance (one team, {args.users} users)")
        print(f"  {'':<40}{'service':>12}{'floor':>12}{'svc/floor':>11}")

        def row(name: str, a: float, b: float, fmt: str, show_ratio: bool = True) -> None:
            r = f"{ratio(a, b):>11.2f}" if show_ratio else ""
            print(f"  {name:<40}{a:>12{fmt}}{b:>12{fmt}}{r}")

        row("sockets held", s["sockets"], f["sockets"], ",.0f", False)
        row("time to all ready (s)", s["seconds"], f["seconds"], ".1f")
        row("connect rate (sockets/s)", s["per_s"], f["per_s"], ",.0f")
        row(
            "  in the first 10% (sockets/s)",
            s["first_decile_per_s"],
            f["first_decile_per_s"],
            ",.0f",
        )
        row("  in the last 10% (sockets/s)", s["last_decile_per_s"], f["last_decile_per_s"], ",.0f")
        row("connect + welcome p50 (ms)", s["connect_ms"]["p50"], f["connect_ms"]["p50"], ".1f")
        row("connect + welcome p99 (ms)", s["connect_ms"]["p99"], f["connect_ms"]["p99"], ".1f")
        row(
            "server CPU per connection (ms)",
            s["cpu_ms_per_connect"],
            f["cpu_ms_per_connect"],
            ".2f",
        )
        busy = "machine busy while connecting (%)"
        row(busy, s["machine_busy_pct"], f["machine_busy_pct"], ".0f", False)
        row(
            "RSS before (MiB)", s["rss_before_kib"] / 1024, f["rss_before_kib"] / 1024, ".1f", False
        )
        row("RSS after (MiB)", s["rss_after_kib"] / 1024, f["rss_after_kib"] / 1024, ".1f", False)
        row("RSS per connection (KiB)", s["rss_per_conn_kib"], f["rss_per_conn_kib"], ".1f")
        row("counted by the server", s["counted"], f["counted"], ",.0f", False)
        row("close all (s)", s["close_seconds"], f["close_seconds"], ".1f")
        goals.append(
            (
                f"RSS per connection < 30 KiB ........... {s['rss_per_conn_kib']:.1f} KiB "
                f"(floor {f['rss_per_conn_kib']:.1f})",
                s["rss_per_conn_kib"] < 30,
            )
        )
        goals.append(
            (
                f"seed: 1,000+ sockets held ............. {s['sockets']:,}",
                s["sockets"] >= 1000 and not s["failed"],
            )
        )
    fanout = figures.get("fanout") or {}
    if fanout:
        print(
            f"\nFan-out of one frame to the team's sockets ({args.rounds} rounds per server, "
            "alternating; ms from send to arrival)"
        )
        print(f"  {'':<40}{'service':>12}{'floor':>12}{'svc/floor':>11}{'goal':>8}")
        for size, r in fanout.items():
            s, f = r[SERVICE], r[FLOOR]
            print(f"  {int(size):,} sockets")
            for name, key, q, goal in (
                ("last socket p50", "last_ms", "p50", True),
                ("last socket p99", "last_ms", "p99", True),
                ("last socket max", "last_ms", "max", False),
                ("median socket p50", "median_ms", "p50", False),
                ("median socket p99", "median_ms", "p99", False),
                ("first socket p50", "first_ms", "p50", False),
            ):
                a, b = s[key][q], f[key][q]
                rr = ratio(a, b)
                g = mark(rr <= 1.25) if goal else ""
                print(f"    {name:<38}{a:>12.1f}{b:>12.1f}{rr:>11.2f}{g:>8}")
                if goal:
                    goals.append(
                        (
                            f"fan-out {int(size):,} {name} <= 1.25x floor .. {rr:.2f}x "
                            f"({a:.1f} vs {b:.1f} ms)",
                            rr <= 1.25,
                        )
                    )
            a, b = s["cpu_us_per_frame"], f["cpu_us_per_frame"]
            name = "server CPU per frame delivered (us)"
            print(f"    {name:<38}{a:>12.1f}{b:>12.1f}{ratio(a, b):>11.2f}")
            print(f"    {'frames lost':<38}{s['lost']:>12}{f['lost']:>12}")
            name = "machine busy, both servers' rounds (%)"
            print(f"    {name:<38}{r['machine_busy_pct']:>12.0f}")
            print(f"    slowest round sent at: service {s['slowest_at']}, floor {f['slowest_at']}")
    e2e = figures.get("e2e")
    if e2e:
        print(
            f"\nEnd to end: POST /v1/teams/{{id}}/workspaces through the gateway -> "
            f"workspace.created on the last of {e2e['sockets']:,} sockets ({e2e['writes']} writes)"
        )
        print(f"  {'ms':<40}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
        for name, key in (
            ("request -> last socket", "last_ms"),
            ("request -> median socket", "median_ms"),
            ("request -> first socket", "first_ms"),
            ("HTTP response alone", "http_ms"),
        ):
            v = e2e[key]
            print(f"  {name:<40}{v['p50']:>9.1f}{v['p95']:>9.1f}{v['p99']:>9.1f}{v['max']:>9.1f}")
        print(
            f"  machine busy during the writes: {e2e['machine_busy_pct']:.0f} %; "
            f"the slowest was sent at {e2e['slowest_at']}"
        )
        p99 = e2e["last_ms"]["p99"]
        goals.append((f"end to end p99 < 50 ms ................ {p99:.1f} ms", p99 < 50))
        goals.append((f"seed: end to end p99 < 100 ms ......... {p99:.1f} ms", p99 < 100))
    for name, text in (figures.get("profiles") or {}).items():
        print(f"\npy-spy of the realtime process, {name}: {text}")
    logged = figures.get("service_logs") or {}
    if logged:
        print("\nLogged by the services at warning level or above (count, what)")
        for service, counts in logged.items():
            for what, n in _top(counts, 8):
                print(f"  {service:<10}{n:>7,}  {what}")
    return goals


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 2 minutes")
    parser.add_argument("--hold", type=int, default=10_000, help="sockets held (0: skip)")
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[1_000, 5_000], help="fan-out sizes"
    )
    parser.add_argument("--rounds", type=int, default=50, help="fan-out rounds per size and server")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds / writes first")
    parser.add_argument("--e2e-sockets", type=int, default=1_000, help="sockets (0: skip e2e)")
    parser.add_argument("--writes", type=int, default=100, help="REST writes timed end to end")
    parser.add_argument("--users", type=int, default=20, help="members of the team")
    parser.add_argument("--client-procs", type=int, default=2, help="load client processes")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="handshakes in flight (all processes)"
    )
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="what the clients offer (deflate: like browsers and websockets' default)",
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop of the floor and the clients (the service: uvicorn's, uvloop)",
    )
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between rounds")
    parser.add_argument("--round-timeout", type=float, default=10.0, help="then a frame is lost")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before RSS readings")
    parser.add_argument(
        "--py-spy", metavar="DIR", help="py-spy the realtime process (connect, fan-out)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep and print the log dir")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()
    if args.quick:
        args.hold, args.sizes, args.rounds = min(args.hold, 1_000), [200, 1_000], 20
        args.e2e_sockets, args.writes = min(args.e2e_sockets, 200), 20
        args.users, args.settle = min(args.users, 5), 2.0
    args.sizes = sorted(set(args.sizes))
    return args


async def probe_compression(bench: Bench) -> bool:
    """Whether the service accepts the permessage-deflate the clients offer
    (the floor then does the same)."""
    url = f"{bench.socket_url}?token={bench.users[0].token}"
    async with connect(url, compression=bench.load.compression, ping_interval=None) as ws:
        await asyncio.wait_for(ws.recv(), 30)  # the welcome
        return any(e.name == "permessage-deflate" for e in ws.protocol.extensions)


async def run(args: argparse.Namespace, figures: dict[str, Any], errors: list[str]) -> Path | None:
    """Every scenario on one scratch stack; the stack's log directory."""
    spy = PySpy(args.py_spy) if args.py_spy else None
    compression = None if args.compression == "none" else "deflate"
    started = time.monotonic()
    workers = [Worker(f"client-{i}", client_process, args.loop) for i in range(args.client_procs)]
    floor: Worker | None = None
    bench: Bench | None = None
    env = {"AGENTHQ_RATE_LIMITS": json.dumps(RATE_LIMITS)}
    log_dir: Path | None = None
    try:
        async with scratch_stack("realtime", env) as stack:
            log_dir = stack.log_dir
            gateway = stack.processes["gateway"].url
            async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
                bench = Bench(
                    args=args,
                    stack=stack,
                    http=http,
                    load=Load(workers, args.concurrency, compression),
                    spy=spy,
                )
                try:
                    await scenarios(bench, figures, stack, workers, started)
                finally:
                    for sender in bench.senders.values():
                        await sender.close()
                    floor = bench.floor
    except Exception as exc:  # reported; what was measured is still shown
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if bench is not None:
            errors[:0] = bench.errors
            figures["profiles"] = bench.profiles
        await asyncio.gather(*(w.stop() for w in workers), *([floor.stop()] if floor else []))
    return log_dir


async def scenarios(
    bench: Bench, figures: dict[str, Any], stack: Stack, workers: list[Worker], started: float
) -> None:
    args = bench.args
    await set_up_team(bench, args.users)
    realtime_db = stack.env["AGENTHQ_REALTIME_DATABASE_URL"]
    await wait_read_model(realtime_db, bench.team_id, args.users)
    accepted = await probe_compression(bench)
    figures["compression"] = {"offered": args.compression, "accepted": accepted}
    floor_port = free_port()
    bench.floor = Worker("floor", floor_process, floor_port, args.loop, accepted)
    bench.floor_url = f"ws://127.0.0.1:{floor_port}/"
    await asyncio.gather(*(w.call("status") for w in workers), bench.floor.call("count"))
    print(
        f"  stack and team of {args.users} users ready in {time.monotonic() - started:.0f} s; "
        f"realtime pid {bench.realtime_pid}, floor pid {bench.floor.pid}, client pids "
        f"{[w.pid for w in workers]}; logs {stack.log_dir}\n"
        f"  clients offer {args.compression}; the service "
        f"{'accepts' if accepted else 'refuses'} permessage-deflate, so does the floor",
        flush=True,
    )
    if args.hold:
        print(f"\nhold: {args.hold:,} sockets per server", flush=True)
        figures["hold"] = await bench_hold(bench, args.hold)
    if args.e2e_sockets and args.writes:
        print(f"\nend to end: {args.writes} writes, {args.e2e_sockets:,} sockets", flush=True)
        figures["e2e"] = await bench_e2e(bench, args.e2e_sockets, args.writes)
    if args.sizes:
        print(f"\nfan-out: {args.rounds} rounds per size and server", flush=True)
        figures["fanout"] = {}
        for size in args.sizes:
            figures["fanout"][str(size)] = await bench_fanout(bench, size)
    for sender in bench.senders.values():
        await sender.close()
    for target in TARGETS:
        await bench.load.close_all(target)
    await bench.check("end")


async def main() -> int:
    args = parse_args()
    nofile = raise_nofile()  # before the stack starts: its processes inherit it
    need = max([args.hold, args.e2e_sockets, *args.sizes]) + 500  # the realtime process
    print(
        f"bench/realtime.py (load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, "
        f"RLIMIT_NOFILE {nofile})",
        flush=True,
    )
    if nofile < need:
        print(f"  note: RLIMIT_NOFILE {nofile} may be too low for {need} sockets", flush=True)
    figures: dict[str, Any] = {"bench": "realtime", "quick": args.quick}
    errors: list[str] = []
    started = time.monotonic()
    log_dir = await run(args, figures, errors)
    figures["seconds"] = time.monotonic() - started
    if log_dir is not None:
        figures["service_logs"] = scan_logs(log_dir)
        for service, counts in figures["service_logs"].items():
            logged = sum(n for what, n in counts.items() if not what.startswith("warning"))
            if logged:
                errors.append(f"the {service} service logged {logged:,} errors (listed above)")
    figures["errors"] = errors
    goals = report(figures, args)
    print()
    for text, ok in goals:
        print(f"  goal: {text}  {mark(ok)}")
    for error in errors:
        print(f"  ERROR: {error}")
    if log_dir is not None:
        if args.keep_logs or errors:
            print(f"  service logs: {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print(f"  took {figures['seconds']:.0f} s (load average {os.getloadavg()[0]:.2f})")
    figures["goals"] = {text.split(" ..")[0].strip(): ok for text, ok in goals}
    print("BENCH_JSON " + json.dumps(jsonable(figures)))
    if errors:
        return 2
    if args.strict and not all(ok for _, ok in goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
