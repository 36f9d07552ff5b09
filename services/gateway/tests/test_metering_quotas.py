"""API calls counted for the usage service, and quotas enforced at the edge."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, registry
from agenthq_common.testing.plugin import eventually, wait_applied
from agenthq_gateway.metering import ApiCallMeter

from .conftest import SERVICES, Echo, Gateway, GatewayFactory, bearer, error_code


@pytest.fixture(scope="module")
async def edge(start_gateway: GatewayFactory, echo: Echo) -> AsyncIterator[Gateway]:
    urls = {f"{name}_url": f"{echo.url}/{name}" for name in SERVICES}
    async with start_gateway(**urls, api_calls_flush_interval=0.5) as gw:
        yield gw


async def api_calls_in_outbox(gw: Gateway, **where: str) -> list[dict[str, Any]]:
    conditions = " AND ".join(f"payload->>'{k}' = :{k}" for k in where)
    async with gw.service.db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload FROM outbox WHERE event_type = 'api.calls'"
                + (f" AND {conditions}" if conditions else "")
            ),
            where,
        )
        return [r.payload for r in rows]


async def total(gw: Gateway, **where: str) -> int:
    return sum(p["data"]["count"] for p in await api_calls_in_outbox(gw, **where))


async def test_calls_are_counted_per_team_or_for_the_caller(edge: Gateway) -> None:
    user, tokens = await edge.signed_in_user()
    auth = bearer(tokens["access_token"])
    team = uuid.uuid4()
    for _ in range(3):
        assert (
            await edge.client.get(f"/v1/teams/{team}/workspaces", headers=auth)
        ).status_code == 200
    assert (
        await edge.client.post(f"/v1/teams/{team}/workspaces", json={}, headers=auth)
    ).status_code == 200
    # A team that refused the caller is not billed for it: the caller is.
    refused = await edge.client.get(f"/v1/teams/{team}/workspaces/notfound", headers=auth)
    assert refused.status_code == 404
    assert (await edge.client.get("/v1/teams", headers=auth)).status_code == 200
    # Unauthenticated requests never reach a service, and count for nobody.
    assert (await edge.client.get(f"/v1/teams/{team}/workspaces")).status_code == 401

    async def counted() -> bool:
        return (
            await total(edge, teamid=str(team)) == 4
            and await total(edge, actorid=user["id"], subject=f"user/{user['id']}") == 2
        )

    await eventually(counted, within=20.0)
    (event, *_) = await api_calls_in_outbox(edge, teamid=str(team))
    assert event["source"] == "agenthq/gateway"
    assert event["subject"] == f"team/{team}"
    assert event["type"] == "api.calls"


async def test_a_window_flushed_twice_is_published_once(edge: Gateway) -> None:
    """A flusher that died after committing and before deleting the window
    flushes it again: the same event ids, so nothing is counted twice."""
    meter = ApiCallMeter(edge.service.redis, edge.service.db, prefix=f"crash-{uuid.uuid4().hex}:")
    team = uuid.uuid4()
    for _ in range(5):
        await meter.record(team, uuid.uuid4())
    window = int(time.time() // 10)
    counts = await edge.service.redis.hgetall(meter._key(window))
    assert await meter._publish(window, counts) == 1
    assert await meter._publish(window, counts) == 1  # the crash-and-retry
    assert await meter.flush(now=time.time() + 30) >= 1  # and the regular flush
    rows = await api_calls_in_outbox(edge, teamid=str(team))
    assert len(rows) == 1 and rows[0]["data"] == {"count": 5}
    assert await meter.flush(now=time.time() + 30) == 0
    assert await edge.service.redis.exists(meter._key(window)) == 0


async def publish(bus: Bus, type_: str, team: uuid.UUID, data: dict[str, Any], at: datetime) -> Any:
    event = registry.create(
        type_, data, source="agenthq/tests", actor=Actor.system(), team_id=team
    ).model_copy(update={"time": at})
    await bus.publish(event)
    return event


async def test_a_team_over_its_quota_is_refused_writes_until_its_plan_changes(
    edge: Gateway, event_bus: Bus
) -> None:
    _, tokens = await edge.signed_in_user()
    auth = bearer(tokens["access_token"])
    team = uuid.uuid4()
    now = datetime.now(UTC)
    period = f"{now.year:04d}-{now.month:02d}"
    await publish(
        event_bus,
        "usage.quota_exceeded",
        team,
        {"team_id": team, "metric": "tasks_created", "limit": 100, "used": 100, "period": period},
        now,
    )
    workspaces = f"/v1/teams/{team}/workspaces"

    async def refused() -> httpx.Response | None:
        response = await edge.client.post(workspaces, json={"name": "x"}, headers=auth)
        return response if response.status_code == 429 else None

    response = await eventually(refused, within=15.0)
    assert error_code(response) == "quota_exceeded"
    error = response.json()["error"]
    assert error["details"] == {
        "metric": "tasks_created",
        "limit": 100,
        "used": 100,
        "period": period,
    }
    assert 0 < int(response.headers["retry-after"]) <= 31 * 86_400
    # Reads go on, and the ways out stay open.
    assert (await edge.client.get(workspaces, headers=auth)).status_code == 200
    assert (
        await edge.client.put(f"/v1/teams/{team}/plan", json={"plan": "pro"}, headers=auth)
    ).status_code == 200
    assert (
        await edge.client.delete(f"/v1/teams/{team}/members/{uuid.uuid4()}", headers=auth)
    ).status_code == 200
    # Another team is not affected.
    other = f"/v1/teams/{uuid.uuid4()}/workspaces"
    assert (await edge.client.post(other, json={}, headers=auth)).status_code == 200

    await publish(
        event_bus,
        "team.plan_changed",
        team,
        {"team_id": team, "old_plan": "free", "new_plan": "pro", "max_members": 50},
        now + timedelta(seconds=1),
    )

    async def open_again() -> bool:
        response = await edge.client.post(workspaces, json={"name": "x"}, headers=auth)
        return response.status_code == 200

    await eventually(open_again, within=15.0)

    # A breach of the old plan that arrives after the change blocks nothing.
    late = await publish(
        event_bus,
        "usage.quota_exceeded",
        team,
        {"team_id": team, "metric": "api_calls", "limit": 10, "used": 10, "period": period},
        now - timedelta(seconds=5),
    )
    marker = await publish(
        event_bus,
        "usage.quota_exceeded",
        uuid.uuid4(),
        {"team_id": uuid.uuid4(), "metric": "api_calls", "limit": 1, "used": 1, "period": period},
        now,
    )
    await wait_applied(edge.service.db, "gateway.quotas", late, marker)
    await asyncio.sleep(1.1)  # past the guard's cache
    assert (await edge.client.post(workspaces, json={}, headers=auth)).status_code == 200
