"""The failure drills' rig: private PostgreSQL, Redis and RabbitMQ on free
loopback ports (the machine's own servers are shared and never touched), and
every service twice behind HAProxy on them (docs/failure-drills.md)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from agenthq_devctl.chaos import Rig, chaos_rig
from agenthq_devctl.private_infra import make_root, missing_binaries


@pytest.fixture(scope="module")
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """Module-scoped: the twelve processes and three servers go when the
    drills are done, not at the end of the whole session."""
    missing = missing_binaries()
    if missing:
        pytest.fail(
            "the failure drills need PostgreSQL 15, Redis and RabbitMQ installed "
            f"(Debian: postgresql-15 redis-server rabbitmq-server); missing: {missing}",
            pytrace=False,
        )
    root = make_root()
    failed_before = request.session.testsfailed
    async with chaos_rig(root) as started:
        yield started
    if request.session.testsfailed == failed_before:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"\nfailure drills: logs kept in {root}")
