"""The whole system as real processes on scratch databases, for a benchmark
or for screenshots.

Every service gets a database ``agenthq_<service>_bench<run>`` migrated with
its own migrations, the bus a namespace ``bench-<run>.``; all of it, and the
Redis keys under the namespace, is removed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis

from agenthq_common.migrations import create_database_if_missing, drop_database, upgrade
from agenthq_common.testing.infra import delete_bus_namespace
from agenthq_devctl.services import SERVICES
from agenthq_devctl.supervisor import Stack, free_port

POSTGRES = os.environ.get(
    "AGENTHQ_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
)
BROKER = os.environ.get("AGENTHQ_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS = os.environ.get("AGENTHQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@asynccontextmanager
async def scratch_stack(
    tag: str, env: Mapping[str, str] | None = None, *, replicas: int = 1
) -> AsyncIterator[Stack]:
    """All six services started as ``make run`` starts them (``replicas`` of
    each, behind HAProxy when more than one), ready."""
    run = uuid.uuid4().hex[:8]
    namespace = f"bench-{run}."
    full_env = {
        "AGENTHQ_POSTGRES_URL": POSTGRES,
        "AGENTHQ_BROKER_URL": BROKER,
        "AGENTHQ_REDIS_URL": REDIS,
        "AGENTHQ_BUS_NAMESPACE": namespace,
        "AGENTHQ_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        **(env or {}),
    }
    urls = {s: f"{POSTGRES}/agenthq_{s}_bench{run}" for s in SERVICES}
    try:
        for service, url in urls.items():
            await create_database_if_missing(url)
            await asyncio.to_thread(upgrade, service, url)
            full_env[f"AGENTHQ_{service.upper()}_DATABASE_URL"] = url
        stack = Stack(
            log_dir=Path(tempfile.mkdtemp(prefix=f"bench-{tag}-")),
            ports={s: free_port() for s in SERVICES},
            ws_port=free_port(),
            env=full_env,
            replicas=replicas,
        )
        await stack.start()
        try:
            await stack.wait_ready(timeout=120)
            yield stack
        finally:
            await stack.stop()
    finally:
        for url in urls.values():
            await drop_database(url)
        await delete_bus_namespace(BROKER, namespace)
        redis = aioredis.from_url(REDIS)
        try:
            async for key in redis.scan_iter(match=f"{namespace}*", count=1000):
                await redis.delete(key)
        finally:
            await redis.aclose()
