"""Private PostgreSQL, Redis and RabbitMQ servers for failure drills.

The failure drills (``agenthq_devctl.chaos``) stop and restart the
infrastructure under a running system. The machine's own servers are shared
(other tests, benchmarks), so the drills never touch them: each run starts
servers of its own, from the Debian packages' binaries, on free loopback
ports, with every file in one directory:

- PostgreSQL 15: ``initdb`` (trust authentication, as the ``postgres`` user
  when we are root: initdb refuses root), then ``postgres`` in the foreground,
  listening on 127.0.0.1 only, its Unix socket in the directory, no fsync.
- Redis: ``redis-server`` in the foreground on 127.0.0.1, no snapshots of its
  own; a restart saves on the way down (``SHUTDOWN SAVE``), as the
  docker-compose Redis (``redis:7`` with a volume) does.
- RabbitMQ: a node of its own (``agenthq-chaos-<id>@localhost``), no plugins
  (so no management port to clash with), its listener, distribution port,
  Mnesia and logs in the directory, and an Erlang cookie of its own in a
  private ``HOME``: ``rabbitmqctl`` run with that ``HOME`` cannot even
  authenticate to the machine's broker, whatever node name it is given.

Every server runs as a child process that gets a signal when its parent dies
(``PR_SET_PDEATHSIG``), so a drill killed with SIGKILL leaves none behind;
``PrivateInfra.close`` stops them all in the normal case.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("AGENTHQ_CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_BIN = Path(os.environ.get("AGENTHQ_CHAOS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
LOOPBACK = "127.0.0.1"


class PrivateInfraError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the thread that started
    it dies. It runs after any change of user, which clears the setting."""

    def preexec() -> None:
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, sig)  # PR_SET_PDEATHSIG

    return preexec


def missing_binaries() -> list[str]:
    """What the private servers need and this machine lacks (empty: all there)."""
    needed = [
        PG_BIN / "initdb",
        PG_BIN / "postgres",
        RABBITMQ_BIN / "rabbitmq-server",
        RABBITMQ_BIN / "rabbitmqctl",
    ]
    missing = [str(p) for p in needed if not p.exists()]
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


@dataclass
class _Child:
    """One long-running server process started by us."""

    name: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(
        self, argv: list[str], *, env: dict[str, str], die_signal: int, **kw: Any
    ) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us only
                preexec_fn=_die_with_parent(die_signal),
                **kw,
            )
        finally:
            log.close()

    async def signal_and_wait(self, sig: int, timeout: float) -> None:
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


async def _wait_until(check: Callable[[], Any], what: str, timeout: float, child: _Child) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return
        if child.process is not None and child.process.returncode is not None:
            raise PrivateInfraError(
                f"{what} exited with code {child.process.returncode}:\n{child.tail()}"
            )
        if loop.time() > deadline:
            raise PrivateInfraError(f"{what} not up after {timeout:.0f}s:\n{child.tail()}")
        await asyncio.sleep(0.1)


@dataclass
class PrivatePostgres:
    root: Path
    port: int = field(default_factory=free_port)
    max_connections: int = 400

    def __post_init__(self) -> None:
        self.dir = self.root / "postgres"
        self.data = self.dir / "data"
        self.sockets = self.dir / "sock"
        self.child = _Child("postgres", self.root / "postgres.log")
        # initdb refuses root: as root, the cluster belongs to ``postgres``.
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.port}"

    def _as_owner(self) -> dict[str, Any]:
        return {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}

    def init(self) -> None:
        """``initdb`` (blocking: call it in a thread)."""
        self.dir.mkdir(parents=True)
        self.sockets.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.dir, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        done = subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.dir,
            **self._as_owner(),
        )
        if done.returncode:
            raise PrivateInfraError(f"initdb failed: {done.stdout}\n{done.stderr}")

    async def start(self, timeout: float = 30.0) -> None:
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": str(self.sockets),
            "max_connections": str(self.max_connections),
            # Scratch data: durability buys nothing here, and costs the disk.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        # SIGINT is PostgreSQL's fast shutdown: if we die, it ends its clients.
        await self.child.spawn(
            argv, env=_clean_env(), die_signal=signal.SIGINT, cwd=self.dir, **self._as_owner()
        )
        await _wait_until(self._accepts, "private PostgreSQL", timeout, self.child)

    async def _accepts(self) -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(
                host=LOOPBACK, port=self.port, user="postgres", database="postgres", timeout=2
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        await conn.close()
        return True

    async def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """``fast`` (SIGINT: clients are disconnected, a clean checkpoint) or
        ``immediate`` (SIGQUIT: as after a crash, recovery at the next start)."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        await self.child.signal_and_wait(sig, timeout)


@dataclass
class PrivateRedis:
    root: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.dir = self.root / "redis"
        self.child = _Child("redis", self.root / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    async def start(self, timeout: float = 20.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--dbfilename",
            "dump.rdb",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        await self.child.spawn(argv, env=_clean_env(), die_signal=signal.SIGTERM, cwd=self.dir)
        await _wait_until(self._pings, "private Redis", timeout, self.child)

    async def _pings(self) -> bool:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()

    async def stop(self, *, save: bool = True, timeout: float = 20.0) -> None:
        """``SHUTDOWN SAVE`` (data kept for the next start) or ``NOSAVE`` (lost)."""
        if not self.child.running:
            return
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)
        try:
            await client.shutdown(save=save, nosave=not save)
        except Exception:  # redis-py raises when the server goes away, as it should
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
        await self.child.signal_and_wait(signal.SIGTERM, timeout)
        if not save:
            (self.dir / "dump.rdb").unlink(missing_ok=True)


@dataclass
class PrivateRabbit:
    root: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"agenthq-chaos-{secrets.token_hex(4)}@localhost")

    def __post_init__(self) -> None:
        self.dir = self.root / "rabbitmq"
        self.home = self.dir / "home"
        self.child = _Child("rabbitmq", self.root / "rabbitmq.log")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}/"

    def env(self) -> dict[str, str]:
        loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        return {
            **_clean_env(),
            # The private cookie lives here: rabbitmqctl cannot talk to any other node.
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),  # .conf is appended
            # Not /etc/rabbitmq/rabbitmq-env.conf: it names the machine's node.
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback_dist,
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "ERL_FLAGS": loopback_dist,
        }

    def prepare(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = {LOOPBACK}:{self.port}\n"
            # The drills' brokers see bursts: never block publishers on memory.
            "vm_memory_high_watermark.relative = 0.8\n"
            "disk_free_limit.absolute = 10MB\n"
        )

    async def ctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """``rabbitmqctl -n <our node> ...`` (with our private cookie)."""
        proc = await asyncio.create_subprocess_exec(
            str(RABBITMQ_BIN / "rabbitmqctl"),
            "-n",
            self.node,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env(),
            cwd=self.dir,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise PrivateInfraError(f"rabbitmqctl {' '.join(args)} timed out") from None
        text = out.decode(errors="replace")
        if check and proc.returncode:
            raise PrivateInfraError(f"rabbitmqctl {' '.join(args)} failed: {text[-2000:]}")
        return text

    async def start(self, timeout: float = 90.0) -> None:
        self.prepare()
        # In the foreground (its script turns SIGTERM into a clean stop):
        # the node is our child, and goes when we go.
        await self.child.spawn(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env(),
            die_signal=signal.SIGTERM,
            cwd=self.dir,
        )
        await _wait_until(self._accepts, "private RabbitMQ", timeout, self.child)

    async def _accepts(self) -> bool:
        return await asyncio.to_thread(port_open, self.port)

    async def stop_app(self) -> None:
        await self.ctl("stop_app")

    async def start_app(self) -> None:
        await self.ctl("start_app")
        await self.ctl("await_startup", "--timeout", "60")

    async def queue_depths(self) -> dict[str, int]:
        """Messages ready or unacknowledged in every queue of the node."""
        text = await self.ctl("-q", "list_queues", "name", "messages", "--no-table-headers")
        depths: dict[str, int] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths

    async def stop(self, timeout: float = 30.0) -> None:
        if not self.child.running:
            return
        with contextlib.suppress(Exception):
            await self.ctl("stop", timeout=timeout, check=False)
        await self.child.signal_and_wait(signal.SIGTERM, timeout)
        # The script's Erlang VM, should the script itself have gone first.
        pid_file = self.dir / "rabbitmq.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            if _is_our_beam(pid, self.node):
                os.kill(pid, signal.SIGKILL)


def _is_our_beam(pid: int, node: str) -> bool:
    """Whether ``pid`` is the Erlang VM of our node (never another process
    that inherited the number)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "beam" in cmdline and node.split("@")[0] in cmdline


def _clean_env() -> dict[str, str]:
    """Our environment without anything that points a server elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RABBITMQ_", "ERL_", "PG", "REDIS_"))
    }


@dataclass
class PrivateInfra:
    root: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    rabbit: PrivateRabbit
    startup_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def postgres_url(self) -> str:
        return self.postgres.url

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def broker_url(self) -> str:
        return self.rabbit.url

    def logs(self) -> dict[str, Path]:
        return {
            c.name: c.log_path for c in (self.postgres.child, self.redis.child, self.rabbit.child)
        }

    async def close(self) -> None:
        for stop in (self.rabbit.stop, self.redis.stop, self.postgres.stop):
            try:
                await stop()
            except Exception as exc:  # the others must still stop
                print(f"private infrastructure: {stop.__qualname__} failed: {exc!r}", flush=True)


def make_root(prefix: str = "agenthq-chaos-") -> Path:
    """A fresh directory under the system's temp dir that the ``postgres``
    user can reach (pytest's own temp dirs are private to their owner)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


@asynccontextmanager
async def private_infrastructure(
    root: Path, *, keep_data: bool = False
) -> AsyncIterator[PrivateInfra]:
    """Start the three servers in ``root`` (from ``make_root``), yield them,
    and stop them whatever happens.

    Their data directories are removed at the end (``keep_data``: kept);
    their logs stay in ``root``, which belongs to the caller.
    """
    missing = missing_binaries()
    if missing:
        raise PrivateInfraError(
            "The failure drills need PostgreSQL 15, Redis and RabbitMQ installed "
            f"(Debian: postgresql-15 redis-server rabbitmq-server); missing: {', '.join(missing)}"
        )
    infra = PrivateInfra(root, PrivatePostgres(root), PrivateRedis(root), PrivateRabbit(root))
    try:
        started = time.perf_counter()
        await asyncio.to_thread(infra.postgres.init)
        infra.startup_seconds["postgres initdb"] = time.perf_counter() - started

        async def timed(name: str, start: Callable[[], Any]) -> None:
            begun = time.perf_counter()
            await start()
            infra.startup_seconds[name] = time.perf_counter() - begun

        # Together (RabbitMQ's boot takes the longest); one failing cancels the others.
        async with asyncio.TaskGroup() as group:
            group.create_task(timed("postgres", infra.postgres.start))
            group.create_task(timed("redis", infra.redis.start))
            group.create_task(timed("rabbitmq", infra.rabbit.start))
        yield infra
    finally:
        await infra.close()
        if not keep_data:
            for path in (infra.postgres.dir, infra.redis.dir, infra.rabbit.dir):
                await asyncio.to_thread(shutil.rmtree, path, True)
