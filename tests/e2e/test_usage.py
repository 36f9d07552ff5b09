"""Usage and billing across real processes: exact counts through a crash of
the usage service, and quotas enforced by the gateway."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, registry
from agenthq_common.testing.plugin import eventually
from agenthq_devctl.supervisor import Stack

from .conftest import USAGE_CREDENTIAL
from .people import create_team, sign_up

pytestmark = pytest.mark.e2e


def ingest_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {USAGE_CREDENTIAL}"}


async def usage_db(stack: Stack) -> asyncpg.Connection:
    url = stack.env["AGENTHQ_USAGE_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
    return await asyncpg.connect(url)


async def test_the_usage_service_killed_mid_stream_loses_and_doubles_nothing(
    stack: Stack, gateway: httpx.AsyncClient, e2e_bus: Bus
) -> None:
    owner = await sign_up(gateway, "metered")
    team_id = uuid.UUID(await create_team(gateway, owner, "Metered"))
    now = datetime.now(UTC)
    events = [
        registry.create(
            "llm.tokens.used",
            {"tokens": i % 97 + 1, "model": "m"},
            source="agenthq/e2e",
            actor=Actor(id=uuid.UUID(owner["user"]["id"])),
            team_id=team_id,
        ).model_copy(update={"time": now})
        for i in range(3000)
    ]
    expected = sum(e.data["tokens"] for e in events)
    conn = await usage_db(stack)
    try:

        async def counted() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM metered_events WHERE team_id = $1", team_id
                )
            )

        async def publish_all(batch: list[Any]) -> None:
            # In chunks: thousands of unconfirmed publishes at once can outlast
            # the publish timeout on a loaded machine.
            for i in range(0, len(batch), 100):
                await asyncio.gather(*(e2e_bus.publish(e) for e in batch[i : i + 100]))

        publishing = asyncio.create_task(publish_all(events))

        async def some_counted() -> bool:
            return 0 < await counted() < len(events)

        await eventually(some_counted, within=30.0, interval=0.01)
        await stack.kill_service("usage")  # SIGKILL, mid-stream
        at_kill = await counted()
        await publishing
        # Some events published twice more, as a producer retrying would.
        await publish_all(events[:300])
        await stack.start_service("usage")
        await stack.wait_ready(only={"usage"}, timeout=90)

        async def all_counted() -> bool:
            return await counted() == len(events)

        await eventually(all_counted, within=60.0)
        assert at_kill < len(events)
        monthly = await gateway.get(
            f"/v1/teams/{team_id}/usage/monthly",
            params={"year": now.year, "month": now.month},
            headers=owner["headers"],
        )
        assert monthly.status_code == 200, monthly.text
        assert monthly.json()["llm_tokens_used"] == expected
    finally:
        await conn.close()
        if stack.processes["usage"].process.returncode is not None:  # type: ignore[union-attr]
            # Whatever failed, the other tests need the service back.
            await stack.start_service("usage")
            await stack.wait_ready(only={"usage"}, timeout=90)


async def test_a_team_over_its_quota_is_refused_by_the_gateway_until_it_upgrades(
    stack: Stack, gateway: httpx.AsyncClient
) -> None:
    owner = await sign_up(gateway, "quota")
    team_id = await create_team(gateway, owner, "Busy")  # free: 100 tasks a month
    now = datetime.now(UTC)
    items: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "team_id": team_id,
            "type": "task.created",
            "quantity": 1,
            "time": now.isoformat(),
        }
        for _ in range(100)
    ]
    ingested = await gateway.post("/v1/usage/events", json=items, headers=ingest_headers())
    assert ingested.status_code == 202, ingested.text
    assert ingested.json() == {"accepted": 100, "duplicates": 0}
    again = await gateway.post("/v1/usage/events", json=items[:10], headers=ingest_headers())
    assert again.json() == {"accepted": 0, "duplicates": 10}
    user_try = await gateway.post("/v1/usage/events", json=items[:1], headers=owner["headers"])
    assert user_try.status_code == 403, user_try.text

    workspaces = f"/v1/teams/{team_id}/workspaces"

    async def refused() -> httpx.Response | None:
        response = await gateway.post(workspaces, json={"name": "w"}, headers=owner["headers"])
        return response if response.status_code == 429 else None

    response = await eventually(refused, within=20.0)
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert "retry-after" in response.headers
    quotas = (await gateway.get(f"/v1/teams/{team_id}/quotas", headers=owner["headers"])).json()
    tasks = next(q for q in quotas["items"] if q["metric"] == "tasks_created")
    assert (tasks["used"], tasks["remaining"], tasks["hard"]) == (100, 0, True)

    upgraded = await gateway.put(
        f"/v1/teams/{team_id}/plan", json={"plan": "pro"}, headers=owner["headers"]
    )
    assert upgraded.status_code == 200, upgraded.text

    async def created() -> bool:
        response = await gateway.post(workspaces, json={"name": "w"}, headers=owner["headers"])
        return response.status_code == 201

    await eventually(created, within=20.0)
    invoice = await gateway.get(
        f"/v1/teams/{team_id}/invoices/{now.year:04d}-{now.month:02d}", headers=owner["headers"]
    )
    assert invoice.status_code == 200, invoice.text
    assert invoice.json()["status"] == "draft"
    assert any(line["metric"] == "subscription:pro" for line in invoice.json()["lines"])


async def test_api_calls_through_the_gateway_reach_the_usage_counters(
    stack: Stack, gateway: httpx.AsyncClient
) -> None:
    owner = await sign_up(gateway, "caller")
    team_id = await create_team(gateway, owner, "Calls")
    for _ in range(5):
        response = await gateway.get(f"/v1/teams/{team_id}/workspaces", headers=owner["headers"])
        assert response.status_code == 200
    today = datetime.now(UTC).date().isoformat()

    async def calls() -> int:
        response = await gateway.get(
            f"/v1/teams/{team_id}/usage",
            params={"from": today, "to": today},
            headers=owner["headers"],
        )
        return int(response.json()["items"][0]["api_calls"])

    async def at_least_five() -> bool:
        return await calls() >= 5

    await eventually(at_least_five, within=40.0, interval=0.5)
