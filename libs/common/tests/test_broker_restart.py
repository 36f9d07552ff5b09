"""Consumers come back by themselves after the broker restarts."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from typing import Any

import pytest

from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.testing.plugin import eventually

from .test_messaging import effect_count, make_event, recording_consumer


async def rabbitmqctl(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {err.decode()}"


async def test_consumption_resumes_after_broker_restart(
    common_db: Database, infra: Any, bus_namespace: str
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("this test restarts the broker with rabbitmqctl, which is not on PATH")
    bus = Bus(infra.broker_url, namespace=bus_namespace)
    await bus.connect()
    name = f"test.restart{uuid.uuid4().hex[:6]}"
    consumer = recording_consumer(common_db, name)
    await consumer.start(bus)
    try:
        before = make_event()
        await bus.publish(before)
        await eventually(lambda: effect_count(common_db, name, before.id))

        await rabbitmqctl("stop_app")
        await rabbitmqctl("start_app")
        await rabbitmqctl("await_startup")

        after = make_event()

        async def publish_when_reconnected() -> bool:
            try:
                await bus.publish(after)
            except Exception:
                return False
            return True

        await eventually(publish_when_reconnected, within=60.0, interval=0.5)
        await eventually(lambda: effect_count(common_db, name, after.id), within=60.0)
        assert await effect_count(common_db, name, after.id) == 1
    finally:
        await bus.close()
