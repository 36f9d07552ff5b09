"""Where the tests' PostgreSQL, Redis and RabbitMQ are.

``AGENTHQ_TEST_POSTGRES_URL``, ``AGENTHQ_TEST_REDIS_URL`` and
``AGENTHQ_TEST_BROKER_URL`` win; otherwise the local services at their default
addresses; otherwise, when a Docker engine answers, testcontainers starts them.
A service that cannot be had fails the run with what to do about it: tests
are never skipped for want of infrastructure.
"""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULTS = {
    "postgres": "postgresql+asyncpg://postgres@127.0.0.1:5432",
    "redis": "redis://127.0.0.1:6379/0",
    "broker": "amqp://guest:guest@127.0.0.1:5672/",
}
ENV = {
    "postgres": "AGENTHQ_TEST_POSTGRES_URL",
    "redis": "AGENTHQ_TEST_REDIS_URL",
    "broker": "AGENTHQ_TEST_BROKER_URL",
}
HOW_TO_START = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "redis": "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    "broker": "rabbitmq-server -detached",
}


class InfrastructureUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Infrastructure:
    postgres_url: str
    redis_url: str
    broker_url: str


def reachable(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    default_port = {"postgresql": 5432, "redis": 6379, "amqp": 5672}.get(parts.scheme, 0)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=timeout
        ):
            return True
    except OSError:
        return False


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _from_containers(stack: ExitStack, kind: str) -> str:
    if kind == "postgres":
        from testcontainers.postgres import PostgresContainer

        pg = stack.enter_context(PostgresContainer("postgres:15", driver="asyncpg"))
        url = pg.get_connection_url()
        return url.rsplit("/", 1)[0]
    if kind == "redis":
        from testcontainers.redis import RedisContainer

        redis = stack.enter_context(RedisContainer("redis:7"))
        return f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
    from testcontainers.rabbitmq import RabbitMqContainer

    mq = stack.enter_context(RabbitMqContainer("rabbitmq:3-management"))
    return f"amqp://guest:guest@{mq.get_container_host_ip()}:{mq.get_exposed_port(5672)}/"


def resolve(stack: ExitStack) -> Infrastructure:
    urls: dict[str, str] = {}
    problems = []
    for kind, default in DEFAULTS.items():
        url = os.environ.get(ENV[kind]) or default
        if reachable(url):
            urls[kind] = url
        elif ENV[kind] not in os.environ and docker_available():
            urls[kind] = _from_containers(stack, kind)
        else:
            problems.append(
                f"- {kind} is not reachable at {url}. Start it with:\n    {HOW_TO_START[kind]}\n"
                f"  or point {ENV[kind]} at a running one."
            )
    if problems:
        raise InfrastructureUnavailable(
            "The tests need real PostgreSQL, Redis and RabbitMQ:\n" + "\n".join(problems)
        )
    return Infrastructure(urls["postgres"], urls["redis"], urls["broker"])


async def delete_bus_namespace(broker_url: str, namespace: str) -> int:
    """Delete every queue and exchange of a test run (durable ones outlive it otherwise).

    Listing needs ``rabbitmqctl`` (the local broker); without it nothing is
    listed and nothing deleted: the names are unique per run, so leftovers
    never disturb another run.
    """
    import asyncio
    import shutil

    import aio_pika

    if not namespace or shutil.which("rabbitmqctl") is None:
        return 0

    async def names(kind: str) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "-q",
            f"list_{kind}",
            "name",
            "--no-table-headers",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        return [n for n in out.decode().split() if n.startswith(namespace)]

    queues, exchanges = await asyncio.gather(names("queues"), names("exchanges"))
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
    return len(queues) + len(exchanges)
