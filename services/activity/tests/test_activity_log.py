"""Every event becomes one activity record, readable by the team's members."""

from __future__ import annotations

import asyncio
import base64
import json
import types
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from agenthq_common.events import CloudEvent, registry
from agenthq_common.testing.plugin import eventually

from .conftest import ACTOR_IP, AUDIT_QUEUE, USER_AGENT, ActivityHarness

ACTIVITY_FIELDS = {
    "id",
    "team_id",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "metadata",
    "ip_address",
    "user_agent",
    "created_at",
}


def assert_error(response: Any, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    assert "Traceback" not in response.text
    return error  # type: ignore[no-any-return]


def error_fields(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error.get("details") or []}


def assert_record_of(item: dict[str, Any], event: CloudEvent) -> None:
    """``item`` (an Activity) is exactly what ``event`` should have become."""
    assert set(item) == ACTIVITY_FIELDS
    uuid.UUID(item["id"])
    assert item["team_id"] == (str(event.teamid) if event.teamid else None)
    assert item["user_id"] == (str(event.actorid) if event.actorid else None)
    assert item["action"] == event.type
    kind, _, ident = (event.subject or "").partition("/")
    assert item["resource_type"] == (kind or None)
    assert item["resource_id"] == (ident or None)
    assert item["metadata"] == event.data
    assert item["ip_address"] == event.actorip
    assert item["user_agent"] == event.actorua
    created = datetime.fromisoformat(item["created_at"])
    assert created == event.time
    assert created.utcoffset() == timedelta(0)


async def test_three_events_of_a_new_team(activity_harness: ActivityHarness) -> None:
    """team.created + member.added + task.created: exactly three records, newest first."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    created = await h.publish(
        "team.created",
        {"team_id": team_id, "name": "Three", "owner_id": owner, "plan": "pro", "max_members": 50},
        team_id=team_id,
        actor_id=owner,
        subject=f"team/{team_id}",
        at=t0,
    )
    added = await h.publish(
        "member.added",
        {"team_id": team_id, "user_id": owner, "role": "admin"},
        team_id=team_id,
        actor_id=owner,
        subject=f"member/{owner}",
        at=t0 + timedelta(milliseconds=1),
    )
    task_id = uuid.uuid4()
    task = await h.publish(
        "task.created",
        {"task_id": task_id, "workspace_id": None},
        team_id=team_id,
        actor_id=owner,
        subject=f"task/{task_id}",
        at=t0 + timedelta(seconds=3, microseconds=123456),
    )

    async def all_three() -> list[dict[str, Any]]:
        response = await h.get(team_id, owner)
        if response.status_code == 404:  # the read model has not seen the team yet
            return []
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        return items if len(items) == 3 else []

    items = await eventually(all_three, within=15.0)
    for item, event in zip(items, [task, added, created], strict=True):
        assert_record_of(item, event)
    assert items[0]["metadata"] == {"task_id": str(task_id), "workspace_id": None}
    assert items[1]["resource_type"] == "member"
    assert items[1]["resource_id"] == str(owner)
    assert items[1]["metadata"] == {"team_id": str(team_id), "user_id": str(owner), "role": "admin"}


async def test_event_time_with_an_offset_is_listed_in_utc(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    seoul = timezone(timedelta(hours=9))
    at = datetime(2026, 11, 24, 19, 0, 0, 123000, tzinfo=seoul)
    event = await h.publish(
        "task.completed",
        {"task_id": uuid.uuid4(), "status": "done"},
        team_id=team_id,
        actor_id=owner,
        subject="task/x",
        at=at,
    )

    async def listed() -> list[dict[str, Any]]:
        response = await h.get(team_id, owner, action="task.completed")
        return response.json()["items"]  # type: ignore[no-any-return]

    (item,) = await eventually(listed)
    assert datetime.fromisoformat(item["created_at"]) == event.time
    assert datetime.fromisoformat(item["created_at"]).utcoffset() == timedelta(0)


async def test_redelivered_event_is_recorded_once(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    event = await h.publish(
        "task.created",
        {"task_id": uuid.uuid4()},
        team_id=team_id,
        actor_id=owner,
        subject="task/dup",
    )
    await h.bus.publish(event)
    await h.bus.publish(event)
    marker = await h.publish(
        "task.completed",
        {"task_id": uuid.uuid4(), "status": "done"},
        team_id=team_id,
        actor_id=owner,
    )
    await h.wait_applied(AUDIT_QUEUE, event, marker)
    await asyncio.sleep(0.5)  # room for a duplicate to show up, were there one
    assert len(await h.rows(event_id=event.id)) == 1
    response = await h.get(team_id, owner, action="task.created")
    assert len(response.json()["items"]) == 1


async def test_event_without_team_is_recorded_but_not_listed(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    user = uuid.uuid4()
    team_id, _ = await h.create_team(user)
    registered = await h.publish(
        "user.registered",
        {"user_id": user, "email": "new@example.test", "name": "New User"},
        team_id=None,
        actor_id=user,
        subject=f"user/{user}",
    )

    async def recorded() -> list[Any]:
        return await h.rows(event_id=registered.id)

    (row,) = await eventually(recorded)
    assert row.team_id is None
    assert row.user_id == user
    assert row.action == "user.registered"
    assert row.resource_type == "user"
    assert row.resource_id == str(user)
    assert row.metadata == {"user_id": str(user), "email": "new@example.test", "name": "New User"}
    assert str(row.ip_address) == ACTOR_IP
    assert row.user_agent == USER_AGENT
    assert row.created_at == registered.time

    # Not through the route of the team its actor belongs to ...
    response = await h.get(team_id, user)
    assert "user.registered" not in {i["action"] for i in response.json()["items"]}
    response = await h.get(team_id, user, action="user.registered")
    assert response.json() == {"items": [], "next_cursor": None}
    # ... nor through any other path that might match a NULL team.
    for bogus in ("00000000-0000-0000-0000-000000000000", "null", "None", ""):
        response = await h.client.get(f"/v1/teams/{bogus}/activity", headers=h.signer.headers(user))
        assert response.status_code in (404, 422), response.text
        assert "user.registered" not in response.text


async def test_event_of_an_unknown_type_is_recorded(activity_harness: ActivityHarness) -> None:
    """Types this service's catalogue does not know are recorded too (activity takes ``#``)."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    event = CloudEvent(
        source="agenthq/elsewhere",
        type="agent.run.started",
        subject="agent_run/r-42",
        teamid=team_id,
        actorid=owner,
        actorip="2001:DB8::1",
        actorua="agent/2",
        data={"run": "r-42", "nested": {"a": [1, 2, 3]}},
    )
    await h.bus.publish(event)

    async def listed() -> list[dict[str, Any]]:
        return (await h.get(team_id, owner, action="agent.run.started")).json()["items"]  # type: ignore[no-any-return]

    (item,) = await eventually(listed)
    assert item["resource_type"] == "agent_run"
    assert item["resource_id"] == "r-42"
    assert item["metadata"] == {"run": "r-42", "nested": {"a": [1, 2, 3]}}
    assert item["ip_address"] == "2001:db8::1"  # normalised
    assert item["user_agent"] == "agent/2"


async def test_event_without_subject_or_actor(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    event = await h.publish(
        "api.calls", {"count": 17}, team_id=team_id, actor_id=None, ip=None, user_agent=None
    )

    async def listed() -> list[dict[str, Any]]:
        return (await h.get(team_id, owner, action="api.calls")).json()["items"]  # type: ignore[no-any-return]

    (item,) = await eventually(listed)
    assert_record_of(item, event)
    assert item["user_id"] is None
    assert item["resource_type"] is None and item["resource_id"] is None
    assert item["ip_address"] is None and item["user_agent"] is None


@pytest.mark.parametrize(
    "bad_ip",
    [
        "not-an-ip",
        "999.1.1.1",
        "203.0.113.9:4321",
        "203.0.113.9, 10.0.0.1",
        "",
        "   ",
        "::ffff:999.0.0.1",
    ],
)
async def test_invalid_actor_ip_is_recorded_as_null(
    activity_harness: ActivityHarness, bad_ip: str
) -> None:
    """An address the inet column cannot hold does not cost the record."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    event = await h.publish(
        "task.created",
        {"task_id": uuid.uuid4()},
        team_id=team_id,
        actor_id=owner,
        subject="task/ip",
        ip=bad_ip,
    )

    async def listed() -> list[dict[str, Any]]:
        return (await h.get(team_id, owner, action="task.created")).json()["items"]  # type: ignore[no-any-return]

    (item,) = await eventually(listed, within=10.0)
    assert item["ip_address"] is None
    assert item["user_agent"] == USER_AGENT
    assert item["user_id"] == str(owner)
    assert len(await h.rows(event_id=event.id)) == 1


async def test_non_member_gets_404(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    response = await h.get(team_id, uuid.uuid4())
    error = assert_error(response, 404, "team_not_found")
    assert str(team_id) not in response.text
    # The same answer as for a team that does not exist.
    missing = await h.get(uuid.uuid4(), owner)
    assert missing.status_code == 404
    assert missing.json()["error"] == error


async def test_no_token_gets_401(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    response = await h.get(team_id, None)
    assert_error(response, 401, "unauthorized")
    response = await h.client.get(
        f"/v1/teams/{team_id}/activity", headers={"Authorization": "Bearer nope"}
    )
    assert_error(response, 401, None)


@pytest.mark.parametrize("team_id", ["not-a-uuid", "42", "g" * 32])
async def test_malformed_team_id_gets_422(activity_harness: ActivityHarness, team_id: str) -> None:
    response = await activity_harness.get(team_id, uuid.uuid4())
    error = assert_error(response, 422, "validation_error")
    assert "team_id" in error_fields(error)


async def test_pagination_returns_each_record_once_newest_first(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=2)
    team_id, setup = await h.create_team(owner, at=t0)
    # Three of them share one instant: the id must break the tie across pages.
    offsets = [1, 2, 2, 2, 3, 4]
    tasks = [
        await h.publish(
            "task.created",
            {"task_id": uuid.uuid4()},
            team_id=team_id,
            actor_id=owner,
            subject=f"task/{n}",
            at=t0 + timedelta(seconds=s),
        )
        for n, s in enumerate(offsets)
    ]
    total = len(setup) + len(tasks)

    async def all_in() -> list[dict[str, Any]]:
        items = (await h.get(team_id, owner, limit=200)).json()["items"]
        return items if len(items) == total else []  # type: ignore[no-any-return]

    everything = await eventually(all_in, within=15.0)
    paged, pages = await h.all_pages(team_id, owner, limit=2)
    assert pages == 4
    assert paged == everything
    assert len({i["id"] for i in paged}) == total
    times = [datetime.fromisoformat(i["created_at"]) for i in paged]
    assert times == sorted(times, reverse=True)
    assert [i["resource_id"] for i in paged[:1]] == ["5"]
    assert {i["resource_id"] for i in paged[2:5]} == {"1", "2", "3"}
    assert {i["action"] for i in paged[-2:]} == {"team.created", "member.added"}

    # Page sizes that do not divide the total, and a single-item page.
    for limit in (1, 3, 7, 8, 9):
        items, _ = await h.all_pages(team_id, owner, limit=limit)
        assert items == everything, limit

    # The action filter, alone and paged.
    only_tasks, pages = await h.all_pages(team_id, owner, action="task.created", limit=4)
    assert pages == 2
    assert {i["action"] for i in only_tasks} == {"task.created"}
    assert sorted(i["resource_id"] for i in only_tasks) == [str(n) for n in range(len(tasks))]
    assert only_tasks == [i for i in everything if i["action"] == "task.created"]
    members = (await h.get(team_id, owner, action="member.added")).json()
    assert [i["action"] for i in members["items"]] == ["member.added"]
    none = (await h.get(team_id, owner, action="task.nothing")).json()
    assert none == {"items": [], "next_cursor": None}


def forged_cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "bm90IGpzb24",  # "not json"
        forged_cursor({"t": "soon", "id": str(uuid.uuid4())}),
        forged_cursor({"t": "2026-01-01T00:00:00+00:00", "id": "x"}),
        forged_cursor({"id": str(uuid.uuid4())}),
        forged_cursor("a string"),
    ],
)
async def test_garbage_cursor_gets_422(activity_harness: ActivityHarness, cursor: str) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    response = await h.get(team_id, owner, cursor=cursor)
    error = assert_error(response, 422, "invalid_cursor")
    assert "cursor" in error_fields(error)


@pytest.mark.parametrize("limit", ["0", "201", "-5", "many"])
async def test_limit_out_of_range_gets_422(activity_harness: ActivityHarness, limit: str) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    response = await h.get(team_id, owner, limit=limit)
    error = assert_error(response, 422, "validation_error")
    assert "limit" in error_fields(error)


def sample_value(name: str, annotation: Any) -> Any:
    """A valid value for one field of an event's data model (enough for the catalogue)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return sample_value(name, next(a for a in args if a is not type(None)))
    if typing.get_origin(annotation) is typing.Literal:
        return args[0]
    if typing.get_origin(annotation) is list:
        return [sample_value(name, args[0])]
    if annotation is uuid.UUID:
        return str(uuid.uuid4())
    if annotation is bool:
        return True
    if annotation is int:
        return 7
    if annotation is datetime:
        return "2026-11-25T10:00:00Z"
    if name == "period":
        return "2026-10"
    if "email" in name:
        return "someone@example.com"
    if name == "permissions":
        return "activity:read"  # an item of the list
    return f"{name}-value"


async def test_every_catalogued_event_type_becomes_one_record(
    activity_harness: ActivityHarness,
) -> None:
    """Each type of EVENTS.md, published as its producer would, is one record
    with the fields of the contract."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    published: list[CloudEvent] = []
    for info in registry.types():
        data = {
            name: sample_value(name, field.annotation)
            for name, field in info.data_model.model_fields.items()
        }
        if "team_id" in data:
            data["team_id"] = str(team_id)
        info.data_model.model_validate(data)  # the sample is valid for its type
        event = CloudEvent(
            source="agenthq/tests",
            type=info.type,
            subject=f"{info.type.split('.')[0]}/{uuid.uuid4()}",
            teamid=team_id,
            actorid=owner,
            actorip=ACTOR_IP,
            actorua=USER_AGENT,
            dataversion=info.version,
            data=data,
            time=datetime.now(UTC) - timedelta(minutes=1),
        )
        await h.bus.publish(event)
        published.append(event)
    # Team and member events also feed the read model: keep the owner a member.
    published = [e for e in published if e.type not in ("team.deleted",)]
    await h.wait_applied(AUDIT_QUEUE, *published, within=30)
    by_event = {r.event_id: r for r in await h.rows(team_id=team_id)}
    assert len(published) >= 20
    for event in published:
        row = by_event[event.id]
        assert row.action == event.type
        assert row.metadata == event.data
        assert (row.resource_type, row.resource_id) == event.resource
        assert (row.user_id, str(row.ip_address), row.user_agent) == (owner, ACTOR_IP, USER_AGENT)
        assert row.created_at == event.time
