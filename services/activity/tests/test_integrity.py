"""Tamper evidence, exactly-once batches, retention and who may read the log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from agenthq_activity.activity.chain import record_hash
from agenthq_activity.activity.partitions import Month
from agenthq_activity.activity.retention import RetentionPolicy, apply_retention
from agenthq_activity.activity.service import ActivityLog
from agenthq_activity.consumers import register_audit_handlers
from agenthq_common.db import Database
from agenthq_common.events import Actor, CloudEvent, registry
from agenthq_common.inbox import EventConsumer
from agenthq_common.membership import register_membership_handlers
from agenthq_common.testing.plugin import Databases, eventually

from .conftest import AUDIT_QUEUE, ActivityHarness
from .test_activity_log import assert_error


async def verify(h: ActivityHarness, team_id: uuid.UUID, user: uuid.UUID) -> dict[str, Any]:
    response = await h.client.get(
        f"/v1/teams/{team_id}/activity/verify", headers=h.signer.headers(user)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"valid", "checked", "first_invalid_id", "reason"}
    return body  # type: ignore[no-any-return]


async def team_with_tasks(h: ActivityHarness, n: int) -> tuple[uuid.UUID, uuid.UUID, list[Any]]:
    owner = uuid.uuid4()
    team_id, first = await h.create_team(owner)
    tasks = [
        await h.publish(
            "task.created",
            {"task_id": uuid.uuid4(), "workspace_id": None, "n": i},
            team_id=team_id,
            actor_id=owner,
            subject=f"task/t{i}",
        )
        for i in range(n)
    ]
    await h.wait_applied(AUDIT_QUEUE, *first, *tasks)
    return team_id, owner, tasks


async def execute(h: ActivityHarness, sql: str, **params: Any) -> None:
    async with h.service.db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_an_untouched_log_verifies(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    team_id, owner, _ = await team_with_tasks(h, 10)
    body = await verify(h, team_id, owner)
    assert body == {"valid": True, "checked": 12, "first_invalid_id": None, "reason": None}


async def test_verify_names_a_record_edited_in_the_database(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    team_id, owner, tasks = await team_with_tasks(h, 6)
    assert (await verify(h, team_id, owner))["valid"] is True
    (victim,) = await h.rows(event_id=tasks[3].id)
    await execute(
        h,
        "UPDATE activity_logs SET metadata = jsonb_set(metadata, '{n}', '42') WHERE event_id = :e",
        e=tasks[3].id,
    )
    body = await verify(h, team_id, owner)
    assert body["valid"] is False
    assert body["first_invalid_id"] == str(victim.id)
    assert body["checked"] == 2 + 4  # team.created, member.added, tasks 0..3
    assert "hash" in body["reason"]


async def test_verify_catches_a_forged_hash_a_deleted_record_and_a_cut_end(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    team_id, owner, tasks = await team_with_tasks(h, 6)
    rows = {r.event_id: r for r in await h.rows(team_id=team_id)}

    # Rewriting a record together with a correct hash of its new content
    # breaks the next record's link.
    async with h.service.db.driver_connection() as conn:
        row = dict(
            await conn.fetchrow(
                "SELECT id, event_id, team_id, user_id, action, resource_type, resource_id, "
                "metadata::text AS metadata_text, ip_address, user_agent, created_at, seq, "
                "prev_hash FROM activity_logs WHERE event_id = $1",
                tasks[1].id,
            )
        )
        row["action"] = "task.deleted"
        await conn.execute(
            "UPDATE activity_logs SET action = $2, hash = $3 WHERE event_id = $1",
            tasks[1].id,
            row["action"],
            record_hash(bytes(row["prev_hash"]), row),
        )
    body = await verify(h, team_id, owner)
    assert body["first_invalid_id"] == str(rows[tasks[2].id].id)
    assert "link" in body["reason"]

    # A record removed from the middle: the one after the gap is named.
    await execute(h, "DELETE FROM activity_logs WHERE event_id = :e", e=tasks[1].id)
    body = await verify(h, team_id, owner)
    assert body["valid"] is False
    assert body["first_invalid_id"] == str(rows[tasks[2].id].id)
    assert "missing" in body["reason"]


async def test_verify_catches_records_removed_from_the_end(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    team_id, owner, tasks = await team_with_tasks(h, 4)
    await execute(h, "DELETE FROM activity_logs WHERE event_id = :e", e=tasks[-1].id)
    body = await verify(h, team_id, owner)
    assert body["valid"] is False
    assert body["first_invalid_id"] is None
    assert body["checked"] == 5
    assert "end" in body["reason"]


async def test_verify_of_a_team_without_records_is_valid(
    activity_harness: ActivityHarness,
) -> None:
    """A team the read model knows but whose chain is empty (nothing else recorded)."""
    h = activity_harness
    team_id, owner, _ = await team_with_tasks(h, 0)
    body = await verify(h, team_id, owner)
    assert body["valid"] is True and body["checked"] == 2


async def test_a_burst_with_redeliveries_records_each_event_once_in_one_chain(
    activity_harness: ActivityHarness,
) -> None:
    """300 events published at once (the consumer takes them in batches), then
    all of them again: 300 records, sequence 1..n without holes, a valid chain."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    events = [
        registry.create(
            "task.completed",
            {"task_id": uuid.uuid4(), "workspace_id": None, "status": "done"},
            source="agenthq/tests",
            actor=Actor(id=owner),
            subject=f"task/b{i}",
            team_id=team_id,
        )
        for i in range(300)
    ]
    await asyncio.gather(*(h.bus.publish(e) for e in events))
    await asyncio.gather(*(h.bus.publish(e) for e in events))
    await h.wait_applied(AUDIT_QUEUE, *events, within=60)
    rows = await h.rows(team_id=team_id)
    assert len(rows) == 302
    assert len({r.event_id for r in rows}) == 302
    assert sorted(r.seq for r in rows) == list(range(1, 303))
    body = await verify(h, team_id, owner)
    assert body["valid"] is True and body["checked"] == 302


async def test_concurrent_appends_to_one_team_keep_one_chain(
    activity_harness: ActivityHarness,
) -> None:
    """Two consumers (replicas) appending to the same team at once queue on the
    chain's head: no sequence number is handed out twice."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id, first = await h.create_team(owner)
    await h.wait_applied(AUDIT_QUEUE, *first)
    log = h.service.component(ActivityLog)

    def batch(tag: str) -> list[tuple[CloudEvent, None]]:
        return [
            (
                CloudEvent(
                    source="agenthq/tests",
                    type="llm.tokens.used",
                    subject=f"model/{tag}{i}",
                    teamid=team_id,
                    actorid=owner,
                    data={"tokens": i, "model": tag},
                ),
                None,
            )
            for i in range(50)
        ]

    async def append(tag: str) -> None:
        for _ in range(4):
            async with h.service.db.unit_of_work() as uow:
                await log.record(uow, batch(tag))

    await asyncio.gather(append("a"), append("b"), append("c"))
    rows = await h.rows(team_id=team_id)
    assert sorted(r.seq for r in rows) == list(range(1, 2 + 600 + 1))
    assert (await verify(h, team_id, owner))["valid"] is True


async def test_events_of_long_ago_and_far_ahead_get_partitions(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    old = await h.publish(
        "task.created",
        {"task_id": uuid.uuid4()},
        team_id=team_id,
        actor_id=owner,
        at=datetime(2011, 3, 4, 5, 6, 7, tzinfo=UTC),
    )
    ahead = await h.publish(
        "task.created",
        {"task_id": uuid.uuid4()},
        team_id=team_id,
        actor_id=owner,
        at=datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    await h.wait_applied(AUDIT_QUEUE, old, ahead)
    async with h.service.db.engine.connect() as conn:
        placed = dict(
            (
                await conn.execute(
                    text(
                        "SELECT event_id, tableoid::regclass::text FROM activity_logs "
                        "WHERE event_id IN (:a, :b)"
                    ),
                    {"a": old.id, "b": ahead.id},
                )
            ).all()
        )
    assert placed == {old.id: "activity_logs_p2011_03", ahead.id: "activity_logs_p2099_12"}
    assert (await verify(h, team_id, owner))["valid"] is True


async def test_the_log_has_no_route_that_changes_a_record(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    team_id, owner, _ = await team_with_tasks(h, 1)
    headers = h.signer.headers(owner)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("", "/export", "/verify"):
            response = await h.client.request(
                method, f"/v1/teams/{team_id}/activity{path}", headers=headers, json={}
            )
            assert response.status_code == 405, (method, path, response.text)
    paths = (await h.client.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        if "activity" in path:
            assert set(operations) == {"get"}, path


async def role_event(
    h: ActivityHarness, type_: str, team_id: uuid.UUID, name: str, permissions: list[str]
) -> CloudEvent:
    return await h.publish(
        type_,
        {"team_id": team_id, "name": name, "permissions": permissions},
        team_id=team_id,
        actor_id=None,
        subject=f"team/{team_id}",
    )


async def test_who_may_read_verify_and_export(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    team_id, owner, _ = await team_with_tasks(h, 1)
    viewer, auditor, outsider = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await role_event(h, "role.created", team_id, "billing-clerk", ["billing:read"])
    for user, role in ((viewer, "viewer"), (auditor, "billing-clerk")):
        await h.publish(
            "member.added",
            {"team_id": team_id, "user_id": user, "role": role},
            team_id=team_id,
            actor_id=owner,
            subject=f"member/{user}",
        )
    await h.wait_member(team_id, viewer)
    other_team, other_owner, _ = await team_with_tasks(h, 1)

    async def status(user: uuid.UUID | None, path: str, team: uuid.UUID = team_id) -> Any:
        headers = h.signer.headers(user) if user else {}
        return await h.client.get(f"/v1/teams/{team}/activity{path}", headers=headers)

    for path in ("", "/export", "/verify"):
        assert (await status(owner, path)).status_code == 200
        assert (await status(viewer, path)).status_code == 200
        assert_error(await status(None, path), 401, None)
        assert_error(await status(outsider, path), 404, None)
        # A member of another team learns nothing about this one.
        assert_error(await status(other_owner, path), 404, None)

        async def forbidden(path: str = path) -> bool:
            return (await status(auditor, path)).status_code == 403

        await eventually(forbidden)
        error = assert_error(await status(auditor, path), 403, "permission_denied")
        assert "activity:read" in error["message"]
    assert other_team != team_id


@pytest.fixture
async def retention_db(databases: Databases) -> AsyncIterator[Database]:
    """A database of its own: retention acts on every chain of a database."""
    url = await databases.fresh("activity", f"_retention_{uuid.uuid4().hex[:8]}")
    db = Database(url, service="activity")
    yield db
    await db.dispose()


class Recorder:
    """Applies events as the activity service's consumers do (inbox and all),
    without the broker in between."""

    def __init__(self, db: Database) -> None:
        self.log = ActivityLog(db)
        self.membership = EventConsumer("activity.membership", db, registry)
        register_membership_handlers(self.membership)
        self.audit = EventConsumer("activity.audit", db, registry)
        register_audit_handlers(self.audit, self.log)

    async def team(self, plan: str, at: datetime) -> uuid.UUID:
        team_id = uuid.uuid4()
        event = registry.create(
            "team.created",
            {
                "team_id": team_id,
                "name": plan,
                "owner_id": uuid.uuid4(),
                "plan": plan,
                "max_members": 5,
            },
            source="agenthq/tests",
            subject=f"team/{team_id}",
            team_id=team_id,
        ).model_copy(update={"time": at})
        assert await self.membership.handle(event)
        assert await self.audit.handle(event)
        return team_id

    async def event(self, team_id: uuid.UUID | None, at: datetime) -> CloudEvent:
        event = CloudEvent(
            source="agenthq/tests",
            type="task.created",
            teamid=team_id,
            time=at,
            data={"task_id": str(uuid.uuid4())},
        )
        assert await self.audit.handle(event)
        return event


async def remaining(db: Database, team_id: uuid.UUID | None) -> set[uuid.UUID]:
    condition = "team_id IS NULL" if team_id is None else "team_id = :t"
    async with db.engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT event_id FROM activity_logs WHERE {condition}"), {"t": team_id}
        )
        return set(result.scalars())


async def test_retention_keeps_each_plans_days_and_the_chain_verifiable(
    retention_db: Database,
) -> None:
    db = retention_db
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    days = timedelta(days=1)
    r = Recorder(db)
    free = await r.team("free", now - 400 * days)
    pro = await r.team("pro", now - 400 * days)
    custom = await r.team("enterprise", now - 900 * days)
    free_old = [await r.event(free, now - d * days) for d in (90, 45, 31)]
    free_young = [await r.event(free, now - d * days) for d in (29, 1)]
    pro_old = [await r.event(pro, now - 370 * days)]
    pro_young = [await r.event(pro, now - d * days) for d in (300, 31, 2)]
    # An event that arrives late, after younger ones: kept until the records
    # before it in the chain expire (at most its retention after it arrived).
    free_late = await r.event(free, now - 200 * days)
    custom_events = [await r.event(custom, now - d * days) for d in (800, 700, 10)]
    no_team = [await r.event(None, now - d * days) for d in (500, 5)]

    policy = RetentionPolicy({"free": 30, "pro": 365, "enterprise": 750}, default_days=365)
    report = await apply_retention(db, r.log.partitions, policy, now=now)
    assert report.ran

    ids = lambda events: {e.id for e in events}  # noqa: E731
    assert await remaining(db, free) == ids([*free_young, free_late])
    assert not ids([*free_old, *pro_old]) & (await remaining(db, free) | await remaining(db, pro))
    # team.created of pro (400 days) and the 370-day-old event are gone.
    assert await remaining(db, pro) == ids(pro_young)
    assert await remaining(db, custom) == ids(custom_events[1:])
    assert await remaining(db, None) == ids(no_team[1:])
    assert report.deleted == 4 + 2 + 2 + 1  # incl. each team.created

    for team in (free, pro, custom):
        result = await r.log.verify(team)
        assert result.valid, (team, result)
    async with db.engine.connect() as conn:
        head = (
            await conn.execute(
                text("SELECT first_seq, last_seq FROM activity_chains WHERE chain_key = :t"),
                {"t": free},
            )
        ).one()
    assert (head.first_seq, head.last_seq) == (5, 7)

    # Tampering is still caught after retention, including with the first kept record.
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE activity_logs SET user_agent = 'x' WHERE event_id = :e"),
            {"e": free_young[0].id},
        )
    assert not (await r.log.verify(free)).valid

    # Running it again changes nothing; new events keep chaining on.
    again = await apply_retention(db, r.log.partitions, policy, now=now)
    assert again.deleted == 0
    await r.event(pro, now)
    assert (await r.log.verify(pro)).valid


async def test_retention_drops_months_it_emptied_and_prepares_the_next(
    retention_db: Database,
) -> None:
    db = retention_db
    now = datetime(2026, 11, 25, tzinfo=UTC)
    r = Recorder(db)
    team = await r.team("free", datetime(2026, 3, 10, tzinfo=UTC))
    await r.event(team, datetime(2026, 4, 10, tzinfo=UTC))
    await r.event(team, datetime(2026, 11, 20, tzinfo=UTC))
    policy = RetentionPolicy({"free": 30}, default_days=30)
    report = await apply_retention(db, r.log.partitions, policy, now=now)
    assert sorted(report.partitions_dropped) == [Month(2026, 3).name, Month(2026, 4).name]
    async with db.driver_connection() as conn:
        months = await r.log.partitions.existing(conn)
    assert months == [Month(2026, 11), Month(2026, 12)]
    assert (await r.log.verify(team)).valid

    # A late event for a dropped month gets its partition back.
    late = await r.event(team, datetime(2026, 4, 11, tzinfo=UTC))
    assert await remaining(db, team) >= {late.id}
    assert (await r.log.verify(team)).valid


async def test_only_one_retention_run_at_a_time(retention_db: Database) -> None:
    r = Recorder(retention_db)
    policy = RetentionPolicy({}, default_days=30)
    async with retention_db.driver_connection() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", 0x72657465)
        try:
            report = await apply_retention(retention_db, r.log.partitions, policy)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", 0x72657465)
    assert report.ran is False
    assert (await apply_retention(retention_db, r.log.partitions, policy)).ran


async def test_every_connection_plans_each_query_for_its_parameters(
    activity_harness: ActivityHarness,
) -> None:
    """Generic plans of prepared statements are wrong for big teams (see main.py)."""
    async with activity_harness.service.db.driver_connection() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
