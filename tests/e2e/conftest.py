"""The whole system as real processes, started the way ``make run`` starts it."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agenthq_common.bus import Bus
from agenthq_common.testing.infra import Infrastructure
from agenthq_common.testing.otlp import OtlpCollector
from agenthq_common.testing.plugin import Databases
from agenthq_devctl.services import SERVICES
from agenthq_devctl.supervisor import Stack
from agenthq_gateway.settings import DEFAULT_RATE_LIMITS

# `make test` runs the end-to-end tests a second time with every service
# twice behind HAProxy (as `make run REPLICAS=2` starts them).
REPLICAS = int(os.environ.get("AGENTHQ_E2E_REPLICAS", "1"))
USAGE_CREDENTIAL = f"e2e-producer-{uuid.uuid4().hex}"
# The console as `make web` builds it (`make test` builds it first).
WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def e2e_namespace(bus_namespace: str) -> str:
    """The end-to-end stack's own broker and Redis namespace (inside the run's,
    so it is removed with it). Shared with the in-process tests, whose services
    run until the session ends, the stack's consumers would compete with theirs
    for its events, and start with the backlog their queues gathered."""
    return f"{bus_namespace}e2e."


@pytest.fixture(scope="session")
async def e2e_bus(infra: Infrastructure, e2e_namespace: str) -> AsyncIterator[Bus]:
    """The tests' connection to the stack's bus, to publish as other services would."""
    bus = Bus(infra.broker_url, namespace=e2e_namespace)
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture(scope="session")
async def otlp() -> AsyncIterator[OtlpCollector]:
    """Where the session's stack exports its spans (tracing is off by default)."""
    collector = OtlpCollector()
    await collector.start()
    yield collector
    await collector.stop()


@pytest.fixture(scope="session")
async def stack(
    infra: Infrastructure,
    otlp: OtlpCollector,
    databases: Databases,
    e2e_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    env = {
        "AGENTHQ_POSTGRES_URL": infra.postgres_url,
        "AGENTHQ_BROKER_URL": infra.broker_url,
        "AGENTHQ_REDIS_URL": infra.redis_url,
        "AGENTHQ_BUS_NAMESPACE": e2e_namespace,
        "AGENTHQ_OUTBOX_POLL_INTERVAL": "0.5",
        "AGENTHQ_USAGE_INGEST_CREDENTIALS": json.dumps([USAGE_CREDENTIAL]),
        "AGENTHQ_API_CALLS_FLUSH_INTERVAL": "1",
        "AGENTHQ_WEB_DIST": str(WEB_DIST),
        "AGENTHQ_OTLP_ENDPOINT": otlp.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: the tracing test waits less
        # Small pools: this stack lives through the whole session beside the
        # extra processes some tests start, within PostgreSQL's 100 connections.
        "AGENTHQ_DB_POOL_SIZE": "2",
        "AGENTHQ_OUTBOX_LANES": "1",
        # The default limits, but every test signs up from 127.0.0.1.
        "AGENTHQ_RATE_LIMITS": json.dumps({**DEFAULT_RATE_LIMITS, "auth": {"ip": "100000/minute"}}),
    }
    for service in SERVICES:
        # Databases of its own: the in-process tests' services (still running,
        # session-scoped) would otherwise share their outboxes with the stack's,
        # and their relays publish into the in-process tests' namespace.
        env[f"AGENTHQ_{service.upper()}_DATABASE_URL"] = await databases.fresh(service, "_e2e")
    log_dir = Path(tmp_path_factory.mktemp("stack-logs"))
    system = Stack(
        log_dir=log_dir,
        ports={s: free_port() for s in SERVICES},
        ws_port=free_port(),
        env=env,
        replicas=REPLICAS,
    )
    await system.start()
    try:
        await system.wait_ready(timeout=90 * REPLICAS)
        yield system
    finally:
        await system.stop()


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway, as a user agent the services record."""
    async with httpx.AsyncClient(
        base_url=stack.public_url("gateway"),
        headers={"User-Agent": "agenthq-e2e/1.0"},
        timeout=10,
    ) as client:
        yield client
