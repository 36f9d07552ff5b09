"""HAProxy (Debian's package) in front of replicated services on one machine.

With ``make run REPLICAS=2`` every service runs as several processes on
ports of their own; HAProxy listens on the services' usual ports and spreads
requests (and WebSockets, for the realtime service) over the replicas it
finds ready (``/readyz``). The processes find each other through it, as they
would through a Kubernetes Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HAPROXY = "haproxy"


def ensure_haproxy() -> str:
    found = shutil.which(HAPROXY) or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )
    if found:
        return found
    print("haproxy is missing: installing Debian's haproxy package (apt-get) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "haproxy"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return shutil.which(HAPROXY) or "/usr/sbin/haproxy"


@dataclass
class Pool:
    """One frontend (``name`` on ``port``) and the replicas' ports behind it."""

    name: str
    port: int
    backends: Sequence[int]
    health: str | None = "/readyz"  # None: TCP checks (WebSocket ports)


def max_connections() -> int:
    """As many as the open-file limit allows (each proxied connection holds two)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 100_000 if hard == resource.RLIM_INFINITY else hard
    return max(1000, min(50_000, (limit - 200) // 2))


def config(pools: Sequence[Pool], host: str = "127.0.0.1") -> str:
    lines = [
        "global",
        f"    maxconn {max_connections()}",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    option http-server-close",
        # A replica that went away: try another one rather than fail the request.
        "    retries 3",
        "    option redispatch",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        # WebSockets: the tunnel lasts as long as the socket.
        "    timeout tunnel 1h",
        "    default-server inter 1s fall 2 rise 1",
    ]
    for pool in pools:
        lines += [
            f"frontend {pool.name}",
            f"    bind {host}:{pool.port}",
            f"    default_backend {pool.name}",
            f"backend {pool.name}",
            # Sockets stay where they landed: spread them by count, requests in turn.
            f"    balance {'leastconn' if pool.health is None else 'roundrobin'}",
        ]
        if pool.health:
            lines.append(f"    option httpchk GET {pool.health}")
        lines += [
            f"    server {pool.name}-{i} {host}:{port} check"
            for i, port in enumerate(pool.backends, start=1)
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Balancer:
    pools: Sequence[Pool]
    workdir: Path
    host: str = "127.0.0.1"
    process: asyncio.subprocess.Process | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    async def start(self) -> None:
        executable = await asyncio.to_thread(ensure_haproxy)
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(config(self.pools, self.host))
        check = await asyncio.create_subprocess_exec(
            executable, "-c", "-q", "-f", str(cfg), stderr=asyncio.subprocess.PIPE
        )
        _, err = await check.communicate()
        if check.returncode:
            raise RuntimeError(f"haproxy refused its configuration: {err.decode()}")
        log = self.log_path.open("ab")
        # -db: stay in the foreground, so that stopping the stack stops it.
        self.process = await asyncio.create_subprocess_exec(
            executable, "-db", "-f", str(cfg), stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        log.close()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def pools_for(
    http_ports: Mapping[str, int],
    replica_ports: Mapping[str, Sequence[int]],
    ws_port: int,
    ws_replica_ports: Sequence[int],
) -> list[Pool]:
    pools = [Pool(service, http_ports[service], ports) for service, ports in replica_ports.items()]
    pools.append(Pool("realtime-ws", ws_port, ws_replica_ports, health=None))
    return pools
