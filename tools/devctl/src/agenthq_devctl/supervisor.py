"""Runs the six services as separate processes and stops them together.

Used by ``make run`` and by the end-to-end tests, so the tests start the
system exactly as a developer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agenthq_devctl.balancer import Balancer, pools_for
from agenthq_devctl.services import SERVICES, default_port, default_ws_port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the supervisor dies without stopping it."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ServiceProcess:
    name: str  # the service's name, or a replica's (``realtime-2``)
    service: str
    port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    ws_port: int | None = None  # the realtime service's WebSocket endpoint

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        assert self.ws_port is not None, f"{self.name} serves no WebSockets"
        return f"ws://127.0.0.1:{self.ws_port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class Stack:
    """All six services on the given ports (defaults: 8000..8006), and the
    realtime service's WebSocket endpoint on ``ws_port`` (REALTIME.md: 8005)."""

    log_dir: Path
    ports: Mapping[str, int] = field(default_factory=lambda: {s: default_port(s) for s in SERVICES})
    ws_port: int = field(default_factory=default_ws_port)
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    # More than one: each service runs as that many processes on ports of
    # their own, behind HAProxy on ``ports`` and ``ws_port``.
    replicas: int = 1
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    balancer: Balancer | None = None

    def service_env(self) -> dict[str, str]:
        """What every process gets: the caller's environment, then the wiring
        between the processes (where the gateway finds each service, where
        each service finds the gateway's keys)."""
        env = {**os.environ, **self.env}
        for service in SERVICES:
            env[f"AGENTHQ_{service.upper()}_URL"] = f"http://127.0.0.1:{self.ports[service]}"
        env["AGENTHQ_JWKS_URL"] = f"http://127.0.0.1:{self.ports['gateway']}/.well-known/jwks.json"
        # Where the console (served by the gateway) finds the realtime sockets.
        env["AGENTHQ_REALTIME_PUBLIC_URL"] = f"ws://{self.host}:{self.ws_port}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.service_env()
        if self.replicas == 1:
            for service in SERVICES:
                await self.start_service(service, env)
            return
        for service in SERVICES:
            for replica in range(1, self.replicas + 1):
                name = service if replica == 1 else f"{service}-{replica}"
                ws = free_port() if service == "realtime" else None
                await self.start_service(service, env, name=name, port=free_port(), ws_port=ws)
        self.balancer = Balancer(
            pools_for(
                self.ports,
                {s: [p.port for p in self.replicas_of(s)] for s in SERVICES},
                self.ws_port,
                [p.ws_port for p in self.replicas_of("realtime") if p.ws_port is not None],
            ),
            self.log_dir,
            self.host,
        )
        await self.balancer.start()

    def replicas_of(self, service: str) -> list[ServiceProcess]:
        return [p for p in self.processes.values() if p.service == service]

    def public_url(self, service: str) -> str:
        """Where clients reach ``service``: HAProxy when replicated, else its process."""
        return f"http://{self.host}:{self.ports[service]}"

    @property
    def public_ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    async def start_service(
        self,
        service: str,
        env: dict[str, str] | None = None,
        *,
        name: str | None = None,
        port: int | None = None,
        ws_port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ServiceProcess:
        """Start (or start again, after it stopped) one service's process.

        ``name`` and ``port`` (and, for realtime, ``ws_port``) start another
        process of the same service (a replica, sharing its database and
        queues), kept under ``name``; ``extra_env`` is added to that process's
        environment only."""
        name = name or service
        known = self.processes.get(name)
        if port is None:
            port = known.port if known is not None else self.ports[service]
        proc = ServiceProcess(name, service, port, self.log_dir / f"{name}.log")
        own_env = dict(extra_env or {})
        if service == "realtime":
            if ws_port is None:
                ws_port = known.ws_port if known is not None else self.ws_port
            proc.ws_port = ws_port
            own_env["AGENTHQ_REALTIME_WS_HOST"] = self.host
            own_env["AGENTHQ_REALTIME_WS_PORT"] = str(ws_port)
        log = proc.log_path.open("ab")
        proc.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            f"agenthq_{service}.main:create_app",
            "--factory",
            "--host",
            self.host,
            "--port",
            str(proc.port),
            "--no-access-log",
            "--no-server-header",  # no banner: the gateway answers the world
            "--timeout-graceful-shutdown",
            "10",
            # HTTP only: the realtime service serves its sockets itself.
            "--ws",
            "none",
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**(env or self.service_env()), **own_env},
            # Own session: Ctrl-C reaches only us, and we stop the children in
            # order (a second signal would make uvicorn skip its graceful exit).
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.processes[name] = proc
        return proc

    async def wait_ready(  # type: ignore[no-untyped-def]
        self, timeout: float = 120.0, on_ready=None, on_waiting=None, only=None
    ) -> None:
        """Wait for every /readyz (or those of ``only``); raise with the log tail
        of a service that died."""
        pending = {n: p for n, p in self.processes.items() if only is None or n in only}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_progress = loop.time() + 10
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                if on_waiting is not None and loop.time() >= next_progress:
                    next_progress = loop.time() + 10
                    on_waiting(sorted(pending))
                for name, proc in list(pending.items()):
                    assert proc.process is not None
                    if proc.process.returncode is not None:
                        raise RuntimeError(
                            f"{name} exited with code {proc.process.returncode} while starting; "
                            f"last lines of {proc.log_path}:\n{proc.log_tail()}"
                        )
                    try:
                        response = await client.get(f"{proc.url}/readyz")
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        del pending[name]
                        if on_ready is not None:
                            on_ready(name)
                if pending and loop.time() > deadline:
                    tails = "\n".join(
                        f"--- {n} ({p.log_path}):\n{p.log_tail(15)}" for n, p in pending.items()
                    )
                    raise TimeoutError(
                        f"not ready after {timeout:.0f}s: {', '.join(pending)}\n{tails}"
                    )
                await asyncio.sleep(0.2)
            if self.balancer is not None and only is None:
                await self._wait_balanced(client, deadline)

    async def _wait_balanced(self, client: httpx.AsyncClient, deadline: float) -> None:
        """Until HAProxy's health checks have found every service's replicas."""
        loop = asyncio.get_running_loop()
        for service in SERVICES:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.public_url(service)}/readyz")
                    if response.status_code == 200:
                        break
                if loop.time() > deadline:
                    raise TimeoutError(f"HAProxy has no ready {service} ({self.balancer.log_path})")
                await asyncio.sleep(0.2)

    async def wait_any_exit(self) -> ServiceProcess:
        waits = {
            asyncio.create_task(p.process.wait()): p for p in self.processes.values() if p.process
        }
        done, rest = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in rest:
            task.cancel()
        return waits[next(iter(done))]

    async def stop_service(self, name: str, timeout: float = 15.0) -> None:
        proc = self.processes[name]
        if proc.process is None or proc.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.process.kill()
            await proc.process.wait()

    async def kill_service(self, name: str) -> None:
        """SIGKILL: the process gets no chance to finish anything (failure drills)."""
        proc = self.processes[name]
        if proc.process is not None and proc.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.process.kill()
            await proc.process.wait()

    async def stop(self) -> None:
        if self.balancer is not None:
            await self.balancer.stop()
        await asyncio.gather(*(self.stop_service(name) for name in self.processes))
