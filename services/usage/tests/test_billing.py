"""Quotas, plans and invoices through the bus and HTTP."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractIncomingMessage

from agenthq_common.bus import Bus
from agenthq_common.events import CloudEvent
from agenthq_common.testing.plugin import eventually
from agenthq_usage.billing.service import Billing, finalize_period

from .conftest import UsageHarness
from .test_metering import assert_error


@dataclass
class Received:
    events: list[CloudEvent] = field(default_factory=list)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        self.events.append(CloudEvent.from_bytes(message.body))

    def of(self, type_: str, team_id: uuid.UUID) -> list[CloudEvent]:
        return [e for e in self.events if e.type == type_ and e.teamid == team_id]


@pytest.fixture(scope="session")
async def usage_events(event_bus: Bus, usage_client: Any) -> Received:
    """What the usage service publishes, from a queue of the tests' own."""
    received = Received()
    await event_bus.consume(
        "tests.usage-events", ["usage.quota_exceeded", "invoice.finalized"], received.handle
    )
    return received


def previous_month(now: datetime) -> tuple[int, int]:
    return (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)


async def member_of(h: UsageHarness, team_id: uuid.UUID, role: str) -> uuid.UUID:
    user = uuid.uuid4()
    await h.publish(
        "member.added", {"team_id": team_id, "user_id": user, "role": role}, team_id=team_id
    )

    async def member() -> bool:
        return (await h.get(f"/v1/teams/{team_id}/usage", user)).status_code == 200

    await eventually(member, within=15.0)
    return user


async def test_reaching_a_hard_limit_publishes_one_event_per_metric_and_period(
    usage_harness: UsageHarness, usage_events: Received
) -> None:
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner, plan="free")
    now = datetime.now(UTC)
    first = [
        await h.publish("task.created", {"task_id": uuid.uuid4()}, team_id=team_id, at=now)
        for _ in range(99)
    ]
    await h.wait_applied(*first)
    quotas = {
        q["metric"]: q for q in (await h.get(f"/v1/teams/{team_id}/quotas", owner)).json()["items"]
    }
    assert quotas["tasks_created"] == {
        "metric": "tasks_created",
        "limit": 100,
        "hard": True,
        "used": 99,
        "remaining": 1,
        "period": f"{now.year:04d}-{now.month:02d}",
    }
    assert usage_events.of("usage.quota_exceeded", team_id) == []

    rest = [
        await h.publish("task.created", {"task_id": uuid.uuid4()}, team_id=team_id, at=now)
        for _ in range(11)
    ]
    await h.wait_applied(*rest)

    async def published() -> list[CloudEvent]:
        return usage_events.of("usage.quota_exceeded", team_id)

    (event,) = await eventually(published, within=15.0)
    assert event.data == {
        "team_id": str(team_id),
        "metric": "tasks_created",
        "limit": 100,
        "used": 100,
        "period": f"{now.year:04d}-{now.month:02d}",
    }
    await asyncio.sleep(1.0)  # room for a second event, were there one
    assert len(usage_events.of("usage.quota_exceeded", team_id)) == 1
    quotas = {
        q["metric"]: q for q in (await h.get(f"/v1/teams/{team_id}/quotas", owner)).json()["items"]
    }
    assert quotas["tasks_created"]["used"] == 110
    assert quotas["tasks_created"]["remaining"] == 0

    # Through HTTP ingest too: the token quota, once.
    response = await h.ingest(
        [
            {
                "id": str(uuid.uuid4()),
                "team_id": str(team_id),
                "type": "llm.tokens.used",
                "quantity": 60_000,
                "time": now.isoformat(),
            }
            for _ in range(3)
        ]
    )
    assert response.json() == {"accepted": 3, "duplicates": 0}

    async def tokens() -> list[CloudEvent]:
        return [e for e in published_now() if e.data["metric"] == "llm_tokens_used"]

    def published_now() -> list[CloudEvent]:
        return usage_events.of("usage.quota_exceeded", team_id)

    (token_event,) = await eventually(tokens, within=15.0)
    assert token_event.data["used"] == 180_000


async def test_a_closed_month_is_finalized_once_and_never_changes(
    usage_harness: UsageHarness, usage_events: Received
) -> None:
    h = usage_harness
    owner = uuid.uuid4()
    now = datetime.now(UTC)
    year, month = previous_month(now)
    start = datetime(year, month, 1, tzinfo=UTC)
    team_id = await h.create_team(owner, plan="pro", at=start)
    in_month = start + timedelta(days=3)
    used = [
        await h.publish(
            "llm.tokens.used", {"tokens": 5_000_500, "model": "m"}, team_id=team_id, at=in_month
        ),
        await h.publish("api.calls", {"count": 500_001}, team_id=team_id, at=in_month),
    ]
    await h.wait_applied(*used)
    period = f"{year:04d}-{month:02d}"

    draft = (await h.get(f"/v1/teams/{team_id}/invoices/{period}", owner)).json()
    assert draft["status"] == "draft"
    # A whole month of pro, one started block of tokens (1) and of calls (5).
    assert draft["total"] == 4_900 + 1 + 5
    billing = h.service.component(Billing)
    finalized = await finalize_period(h.service.db, billing, year, month)
    assert finalized >= 1
    assert await finalize_period(h.service.db, billing, year, month) == 0

    final = (await h.get(f"/v1/teams/{team_id}/invoices/{period}", owner)).json()
    assert final == {**draft, "status": "final"}
    assert {line["metric"] for line in final["lines"]} == {
        "subscription:pro",
        "tasks_created",
        "llm_tokens_used",
        "api_calls",
    }

    async def announced() -> list[CloudEvent]:
        return usage_events.of("invoice.finalized", team_id)

    (event,) = await eventually(announced, within=15.0)
    assert event.data == {
        "team_id": str(team_id),
        "period": period,
        "total": 4_906,
        "currency": "USD",
    }

    # Usage that arrives late for a finalized month changes nothing.
    late = await h.publish("api.calls", {"count": 10_000_000}, team_id=team_id, at=in_month)
    await h.wait_applied(late)
    assert (await h.get(f"/v1/teams/{team_id}/invoices/{period}", owner)).json() == final

    listed = (await h.get(f"/v1/teams/{team_id}/invoices", owner)).json()["items"]
    assert [(i["period"], i["status"]) for i in listed] == [
        (f"{now.year:04d}-{now.month:02d}", "draft"),
        (period, "final"),
    ]


async def test_plans_are_public_to_users(usage_harness: UsageHarness) -> None:
    h = usage_harness
    response = await h.get("/v1/plans", uuid.uuid4())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["id"] for p in body["items"]] == ["free", "pro", "enterprise"]
    pro = body["items"][1]
    assert pro["monthly_price"] == 4_900 and pro["currency"] == "USD"
    assert {m["metric"] for m in pro["metrics"]} == {
        "tasks_created",
        "llm_tokens_used",
        "api_calls",
    }
    assert_error(await h.get("/v1/plans", None), 401)


async def test_billing_and_usage_permissions(usage_harness: UsageHarness) -> None:
    h = usage_harness
    owner, outsider = uuid.uuid4(), uuid.uuid4()
    team_id = await h.create_team(owner, plan="pro")
    # Built-in roles all read billing (viewer: read everything); a custom role
    # with usage:read alone does not.
    await h.publish(
        "role.created",
        {"team_id": team_id, "name": "usage-watcher", "permissions": ["usage:read"]},
        team_id=team_id,
    )
    viewer = await member_of(h, team_id, "usage-watcher")
    now = datetime.now(UTC)
    current = f"{now.year:04d}-{now.month:02d}"
    assert (await h.get(f"/v1/teams/{team_id}/invoices/{current}", owner)).status_code == 200
    for path in (f"/v1/teams/{team_id}/invoices", f"/v1/teams/{team_id}/invoices/{current}"):

        async def forbidden(path: str = path) -> bool:
            return (await h.get(path, viewer)).status_code == 403

        await eventually(forbidden)
        assert_error(await h.get(path, viewer), 403, "permission_denied")
        assert_error(await h.get(path, outsider), 404)
        assert_error(await h.get(path, None), 401)
    assert (await h.get(f"/v1/teams/{team_id}/quotas", viewer)).status_code == 200
    assert_error(await h.get(f"/v1/teams/{team_id}/quotas", outsider), 404)
    for bad in ("2026-13", "26-01", "2026-1", "latest"):
        assert_error(await h.get(f"/v1/teams/{team_id}/invoices/{bad}", owner), 422)
    ahead = now + timedelta(days=40)
    assert_error(
        await h.get(f"/v1/teams/{team_id}/invoices/{ahead.year:04d}-{ahead.month:02d}", owner),
        404,
        "invoice_not_found",
    )
    assert_error(await h.get(f"/v1/teams/{team_id}/invoices/2001-01", owner), 404)


async def test_an_invoice_of_year_zero_is_invalid_input_not_a_server_error(
    usage_harness: UsageHarness,
) -> None:
    """Found by the fuzzer: 0000-01 matched the period pattern and date(0, 1, 1) raised."""
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    error = assert_error(await h.get(f"/v1/teams/{team_id}/invoices/0000-01", owner), 422)
    assert error["details"][0]["field"] == "period"
    # The first and the last month of the calendar are periods, without an invoice.
    for period in ("0001-01", "9999-12"):
        response = await h.get(f"/v1/teams/{team_id}/invoices/{period}", owner)
        assert_error(response, 404, "invoice_not_found")
