"""Is PostgreSQL, Redis and RabbitMQ reachable? Say which is not and how to start it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
import asyncpg
import redis.asyncio as aioredis
import sqlalchemy as sa

from agenthq_common.settings import ServiceSettings
from agenthq_common.testing.infra import HOW_TO_START


@dataclass
class DependencyStatus:
    name: str
    url: str
    ok: bool
    error: str = ""
    how_to_start: str = ""


def _safe(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


async def _postgres(url: str) -> None:
    dsn = sa.engine.make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=3)
    await conn.close()


async def _redis(url: str) -> None:
    client = aioredis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _broker(url: str) -> None:
    conn = await aio_pika.connect(url, timeout=3)
    await conn.close()


async def check_dependencies(settings: ServiceSettings) -> list[DependencyStatus]:
    probes = [
        ("PostgreSQL", settings.postgres_url, _postgres, HOW_TO_START["postgres"]),
        ("Redis", settings.redis_url, _redis, HOW_TO_START["redis"]),
        ("RabbitMQ", settings.broker_url, _broker, HOW_TO_START["broker"]),
    ]

    async def probe(name: str, url: str, fn, how: str) -> DependencyStatus:  # type: ignore[no-untyped-def]
        try:
            await asyncio.wait_for(fn(url), 5)
        except Exception as exc:
            return DependencyStatus(name, _safe(url), False, f"{type(exc).__name__}: {exc}", how)
        return DependencyStatus(name, _safe(url), True)

    return list(await asyncio.gather(*(probe(*p) for p in probes)))
