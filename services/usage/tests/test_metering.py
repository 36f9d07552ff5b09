"""Exact counters: from the bus and from HTTP ingest, each event id once, ever."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agenthq_common.events import CloudEvent

from .conftest import UsageHarness

METRIC_OF = {
    "task.created": "tasks_created",
    "task.completed": "tasks_completed",
    "llm.tokens.used": "llm_tokens_used",
    "api.calls": "api_calls",
    "storage.changed": "storage_bytes",
}


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


def data_for(type_: str, quantity: int) -> dict[str, Any]:
    return {
        "task.created": {"task_id": uuid.uuid4()},
        "task.completed": {"task_id": uuid.uuid4(), "status": "done"},
        "llm.tokens.used": {"tokens": quantity, "model": "m"},
        "api.calls": {"count": quantity},
        "storage.changed": {"delta_bytes": quantity},
    }[type_]


def quantity_of(type_: str, quantity: int) -> int:
    return 1 if type_.startswith("task.") else quantity


async def test_a_thousand_events_with_duplicates_over_bus_and_http_count_exactly(
    usage_harness: UsageHarness,
) -> None:
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    rng = random.Random(7)
    # Spread over today and the two days before, never later than now (the API
    # refuses times in the future), whatever the hour the test runs at.
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed_today = int((now - today).total_seconds())
    originals = []
    for _ in range(1000):
        type_ = rng.choice(list(METRIC_OF))
        quantity = rng.randint(-5000, 5000) if type_ == "storage.changed" else rng.randint(1, 900)
        at = (
            today
            - timedelta(days=rng.randint(0, 2))
            + timedelta(seconds=rng.randint(0, elapsed_today))
        )
        originals.append((uuid.uuid4(), type_, quantity, at))
    expected: Counter[tuple[date, str]] = Counter()
    for _, type_, quantity, at in originals:
        expected[(at.date(), METRIC_OF[type_])] += quantity_of(type_, quantity)

    # 80% over the bus, the rest over HTTP; then 200 repeats (20%) of random
    # originals, each through the other way or the same one.
    over_http = set(rng.sample(range(1000), 200))
    published: list[CloudEvent] = []

    def http_item(event_id: uuid.UUID, type_: str, quantity: int, at: datetime) -> dict[str, Any]:
        return {
            "id": str(event_id),
            "team_id": str(team_id),
            "type": type_,
            "quantity": quantity_of(type_, quantity),
            "time": at.isoformat(),
        }

    async def over_bus(i: int) -> None:
        event_id, type_, quantity, at = originals[i]
        published.append(
            await h.publish(
                type_, data_for(type_, quantity), team_id=team_id, at=at, event_id=event_id
            )
        )

    await asyncio.gather(*(over_bus(i) for i in range(1000) if i not in over_http))
    http_batch = [http_item(*originals[i]) for i in sorted(over_http)]
    response = await h.ingest(http_batch)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 200, "duplicates": 0}

    repeats = rng.sample(range(1000), 200)
    http_repeats = [http_item(*originals[i]) for i in repeats[:100]]
    response = await h.ingest(http_repeats)
    assert response.status_code == 202, response.text
    await asyncio.gather(*(over_bus(i) for i in repeats[100:]))
    await h.wait_applied(*published)
    # Every HTTP repeat is reported as such once the bus copy has been counted.
    response = await h.ingest(http_repeats)
    assert response.json() == {"accepted": 0, "duplicates": 100}

    first = (today - timedelta(days=2)).date()
    days = await h.get(
        f"/v1/teams/{team_id}/usage",
        owner,
        **{"from": first.isoformat(), "to": today.date().isoformat()},
    )
    assert days.status_code == 200, days.text
    body = days.json()
    assert body["next_cursor"] is None
    assert [d["date"] for d in body["items"]] == [
        (first + timedelta(days=n)).isoformat() for n in range(3)
    ]
    for item in body["items"]:
        day = date.fromisoformat(item["date"])
        for metric in METRIC_OF.values():
            assert item[metric] == expected[(day, metric)], (day, metric)

    month = await h.get(
        f"/v1/teams/{team_id}/usage/monthly", owner, year=today.year, month=today.month
    )
    totals = month.json()
    for metric in METRIC_OF.values():
        assert totals[metric] == sum(
            q for (day, m), q in expected.items() if m == metric and day.month == today.month
        )


async def test_late_events_land_on_the_day_they_happened(usage_harness: UsageHarness) -> None:
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    late = await h.publish("api.calls", {"count": 7}, team_id=team_id, at=yesterday)
    # 23:59:59 on the 9th in Seoul is 14:59:59 UTC: the UTC day counts.
    seoul_evening = datetime(2026, 3, 9, 23, 59, 59, tzinfo=ZoneInfo("Asia/Seoul"))
    seoul = await h.publish("api.calls", {"count": 5}, team_id=team_id, at=seoul_evening)
    today = await h.publish("api.calls", {"count": 1}, team_id=team_id, at=now)
    await h.wait_applied(late, seoul, today)
    days = (
        await h.get(
            f"/v1/teams/{team_id}/usage",
            owner,
            **{"from": yesterday.date().isoformat(), "to": now.date().isoformat()},
        )
    ).json()["items"]
    assert [d["api_calls"] for d in days] == [7, 1]
    march = (
        await h.get(
            f"/v1/teams/{team_id}/usage", owner, **{"from": "2026-03-09", "to": "2026-03-10"}
        )
    ).json()["items"]
    assert [d["api_calls"] for d in march] == [5, 0]


async def test_api_calls_without_a_team_count_for_the_user_and_bill_no_team(
    usage_harness: UsageHarness,
) -> None:
    h = usage_harness
    user = uuid.uuid4()
    event = await h.publish("api.calls", {"count": 3}, team_id=None, actor_id=user)
    await h.wait_applied(event)
    async with h.service.db.driver_connection() as conn:
        calls = await conn.fetchval(
            "SELECT api_calls FROM personal_usage_stats WHERE user_id = $1", user
        )
        teams = await conn.fetchval("SELECT count(*) FROM usage_stats WHERE team_id IS NULL")
    assert calls == 3
    assert teams == 0


async def test_ingest_refuses_users_and_unknown_credentials(usage_harness: UsageHarness) -> None:
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    item = {
        "id": str(uuid.uuid4()),
        "team_id": str(team_id),
        "type": "api.calls",
        "quantity": 1,
        "time": datetime.now(UTC).isoformat(),
    }
    user_token = h.signer.headers(owner)["Authorization"].split()[1]
    assert_error(await h.ingest([item], credential=user_token), 403, "service_credential_required")
    # Also when the body is bad: users learn nothing about the route.
    assert_error(await h.ingest([{"x": 1}], credential=user_token), 403)
    assert_error(await h.ingest([item], credential="not-the-credential"), 401, "invalid_credential")
    assert_error(await h.ingest([item], credential=None), 401)
    async with h.service.db.driver_connection() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM metered_events WHERE event_id = $1", uuid.UUID(item["id"])
            )
            == 0
        )


async def test_ingest_validation(usage_harness: UsageHarness) -> None:
    h = usage_harness
    team_id = uuid.uuid4()
    good = {
        "id": str(uuid.uuid4()),
        "team_id": str(team_id),
        "type": "api.calls",
        "quantity": 1,
        "time": datetime.now(UTC).isoformat(),
    }
    cases = [
        [],
        [{**good, "type": "task.deleted"}],
        [{**good, "quantity": -1}],
        [{**good, "quantity": 2**60}],
        [{**good, "id": "nope"}],
        [{**good, "extra": 1}],
        [{**good, "time": (datetime.now(UTC) + timedelta(days=2)).isoformat()}],
        [good] * 1001,
        {"id": good["id"]},
    ]
    for body in cases:
        response = await h.ingest(body)  # type: ignore[arg-type]
        assert_error(response, 422)
    # Storage may shrink; duplicates inside one request count once.
    shrink = {**good, "id": str(uuid.uuid4()), "type": "storage.changed", "quantity": -10}
    response = await h.ingest([shrink, shrink])
    assert response.json() == {"accepted": 1, "duplicates": 1}


async def test_usage_routes_enforce_membership_and_permission(
    usage_harness: UsageHarness,
) -> None:
    h = usage_harness
    owner, outsider = uuid.uuid4(), uuid.uuid4()
    team_id = await h.create_team(owner)
    for path in (f"/v1/teams/{team_id}/usage", f"/v1/teams/{team_id}/usage/monthly"):
        assert (await h.get(path, owner)).status_code == 200
        assert_error(await h.get(path, outsider), 404)
        assert_error(await h.get(path, None), 401)
    bad = [
        {"from": "2026-11-10", "to": "2026-11-01"},
        {"from": "2024-01-01", "to": "2026-01-01"},
        {"from": "yesterday"},
    ]
    for params in bad:
        assert_error(await h.get(f"/v1/teams/{team_id}/usage", owner, **params), 422)
    for params in ({"month": 13}, {"year": 1999}, {"month": "x"}):
        assert_error(await h.get(f"/v1/teams/{team_id}/usage/monthly", owner, **params), 422)


async def test_daily_usage_at_the_edges_of_the_calendar(usage_harness: UsageHarness) -> None:
    """Found by the fuzzer: the default start 29 days before 0001-01-10, and the day
    after 9999-12-31, were OverflowErrors (500s)."""
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    path = f"/v1/teams/{team_id}/usage"
    early = await h.get(path, owner, to="0001-01-10")
    assert early.status_code == 200, early.text
    assert [d["date"] for d in early.json()["items"]] == [f"0001-01-{d:02d}" for d in range(1, 11)]
    late = await h.get(path, owner, **{"from": "9999-12-30", "to": "9999-12-31"})
    assert late.status_code == 200, late.text
    assert [d["date"] for d in late.json()["items"]] == ["9999-12-30", "9999-12-31"]


async def test_days_and_times_are_text_not_numbers(usage_harness: UsageHarness) -> None:
    """Found by the fuzzer: ?to=0 was day 0 of 1970, and "time": 0 or "quantity": false
    were accepted, where the contract says a date, a date-time and an integer."""
    h = usage_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    for params in ({"to": "0"}, {"from": "1700000000"}, {"to": "20261101"}):
        error = assert_error(await h.get(f"/v1/teams/{team_id}/usage", owner, **params), 422)
        assert error["details"][0]["field"] == next(iter(params))
    good = {
        "id": str(uuid.uuid4()),
        "team_id": str(team_id),
        "type": "api.calls",
        "quantity": 1,
        "time": datetime.now(UTC).isoformat(),
    }
    for bad in (
        {"time": 0},
        {"time": 1.5},
        {"time": "1700000000"},
        {"quantity": False},
        {"quantity": 1.0},
        {"quantity": "1"},
        # Valid ISO 8601, but before year 1 in UTC.
        {"time": "0001-01-01T00:00:00+01:00"},
    ):
        response = await h.ingest([{**good, **bad}])
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == f"0.{next(iter(bad))}", error
    assert (await h.ingest([good])).json() == {"accepted": 1, "duplicates": 0}
