"""The activity service's read model of memberships, fed by team.* and member.*
events that may arrive out of order (EVENTS.md: "consumers must tolerate
out-of-order events of one team")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from agenthq_common.events import CloudEvent
from agenthq_common.membership import rm_members, rm_teams

from .conftest import MEMBERSHIP_QUEUE, ActivityHarness


async def member(
    h: ActivityHarness,
    type_: str,
    team_id: uuid.UUID,
    user: uuid.UUID,
    at: datetime,
    *,
    role: str = "member",
    by: uuid.UUID | None = None,
) -> CloudEvent:
    return await h.publish(
        type_,
        {"team_id": team_id, "user_id": user, "role": role},
        team_id=team_id,
        actor_id=by,
        subject=f"member/{user}",
        at=at,
    )


async def team_event(
    h: ActivityHarness, type_: str, team_id: uuid.UUID, at: datetime, **data: object
) -> CloudEvent:
    return await h.publish(
        type_,
        {"team_id": team_id, **data},
        team_id=team_id,
        actor_id=None,
        subject=f"team/{team_id}",
        at=at,
    )


async def status_of(h: ActivityHarness, team_id: uuid.UUID, user: uuid.UUID) -> int:
    return (await h.get(team_id, user)).status_code


async def member_row(h: ActivityHarness, team_id: uuid.UUID, user: uuid.UUID):  # type: ignore[no-untyped-def]
    async with h.service.db.engine.connect() as conn:
        return (
            await conn.execute(
                select(rm_members).where(
                    rm_members.c.team_id == team_id, rm_members.c.user_id == user
                )
            )
        ).one_or_none()


async def team_row(h: ActivityHarness, team_id: uuid.UUID):  # type: ignore[no-untyped-def]
    async with h.service.db.engine.connect() as conn:
        return (
            await conn.execute(select(rm_teams).where(rm_teams.c.team_id == team_id))
        ).one_or_none()


async def test_late_older_member_added_does_not_undo_a_removal(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner, v = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    team_id, _ = await h.create_team(owner, at=t0)
    # The removal (later) is delivered before the addition (earlier).
    removed = await member(h, "member.removed", team_id, v, t0 + timedelta(seconds=10), by=owner)
    await h.wait_applied(MEMBERSHIP_QUEUE, removed)
    added = await member(h, "member.added", team_id, v, t0 + timedelta(seconds=5), by=owner)
    await h.wait_applied(MEMBERSHIP_QUEUE, added)

    assert await status_of(h, team_id, v) == 404
    row = await member_row(h, team_id, v)
    assert row.active is False
    assert row.changed_at == removed.time
    assert await status_of(h, team_id, owner) == 200


async def test_late_older_member_added_published_back_to_back(
    activity_harness: ActivityHarness,
) -> None:
    """The same, without waiting between the two: whatever order the consumer
    ends up applying them in, the later removal wins."""
    h = activity_harness
    owner, v = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    team_id, _ = await h.create_team(owner, at=t0)
    removed = await member(h, "member.removed", team_id, v, t0 + timedelta(seconds=10))
    added = await member(h, "member.added", team_id, v, t0 + timedelta(seconds=5))
    await h.wait_applied(MEMBERSHIP_QUEUE, removed, added)
    assert await status_of(h, team_id, v) == 404


async def test_newer_member_added_after_an_older_removal_makes_a_member(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner, w = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    team_id, _ = await h.create_team(owner, at=t0)
    removed = await member(h, "member.removed", team_id, w, t0 + timedelta(seconds=5))
    await h.wait_applied(MEMBERSHIP_QUEUE, removed)
    assert await status_of(h, team_id, w) == 404
    await member(h, "member.added", team_id, w, t0 + timedelta(seconds=10))
    await h.wait_member(team_id, w)
    row = await member_row(h, team_id, w)
    assert row.active is True
    assert row.role == "member"


async def test_member_added_before_team_created_becomes_a_member_once_the_team_arrives(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner, x = uuid.uuid4(), uuid.uuid4()
    team_id = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    added = await member(h, "member.added", team_id, x, t0 + timedelta(seconds=3))
    await h.wait_applied(MEMBERSHIP_QUEUE, added)
    assert await status_of(h, team_id, x) == 404  # the team itself is not known yet
    await team_event(
        h, "team.created", team_id, t0, name="Late", owner_id=owner, plan="free", max_members=5
    )
    await h.wait_member(team_id, x)


async def test_team_deleted_hides_the_team_from_every_member_for_good(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner, w = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    team_id, _ = await h.create_team(owner, at=t0)
    await member(h, "member.added", team_id, w, t0 + timedelta(seconds=10))
    await h.wait_member(team_id, w)

    deleted = await team_event(h, "team.deleted", team_id, t0 + timedelta(seconds=20))
    await h.wait_applied(MEMBERSHIP_QUEUE, deleted)
    assert await status_of(h, team_id, owner) == 404
    assert await status_of(h, team_id, w) == 404

    # Older events that arrive after the deletion do not revive the team.
    late = [
        await team_event(h, "team.updated", team_id, t0 + timedelta(seconds=15), name="Renamed"),
        await team_event(
            h,
            "team.plan_changed",
            team_id,
            t0 + timedelta(seconds=16),
            old_plan="free",
            new_plan="pro",
            max_members=50,
        ),
        await team_event(
            h,
            "team.created",
            team_id,
            t0,
            name="Again",
            owner_id=owner,
            plan="free",
            max_members=5,
        ),
    ]
    await h.wait_applied(MEMBERSHIP_QUEUE, *late)
    assert await status_of(h, team_id, owner) == 404
    assert await status_of(h, team_id, w) == 404
    row = await team_row(h, team_id)
    assert row.deleted is True
    assert row.changed_at == deleted.time

    # Nor does a member event of the deleted team.
    newcomer = uuid.uuid4()
    joined = await member(h, "member.added", team_id, newcomer, t0 + timedelta(seconds=30))
    await h.wait_applied(MEMBERSHIP_QUEUE, joined)
    assert await status_of(h, team_id, newcomer) == 404


async def test_team_deleted_before_team_created_keeps_the_team_deleted(
    activity_harness: ActivityHarness,
) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    deleted = await team_event(h, "team.deleted", team_id, t0 + timedelta(seconds=60))
    await h.wait_applied(MEMBERSHIP_QUEUE, deleted)
    created = await team_event(
        h, "team.created", team_id, t0, name="Ghost", owner_id=owner, plan="free", max_members=5
    )
    added = await member(h, "member.added", team_id, owner, t0, role="admin")
    await h.wait_applied(MEMBERSHIP_QUEUE, created, added)
    assert await status_of(h, team_id, owner) == 404
    row = await team_row(h, team_id)
    assert row.deleted is True


async def test_team_deleted_is_final_even_after_a_rename_stamped_later(
    activity_harness: ActivityHarness,
) -> None:
    """A deletion is final (membership.py: "A deletion is final"), even when a
    rename whose ``time`` reads a little later was applied first, as happens
    when two team-service replicas' clocks are slightly apart."""
    h = activity_harness
    owner = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    team_id, _ = await h.create_team(owner, at=t0)
    renamed = await team_event(h, "team.updated", team_id, t0 + timedelta(seconds=21), name="R")
    await h.wait_applied(MEMBERSHIP_QUEUE, renamed)
    deleted = await team_event(h, "team.deleted", team_id, t0 + timedelta(seconds=20))
    await h.wait_applied(MEMBERSHIP_QUEUE, deleted)
    assert await status_of(h, team_id, owner) == 404


async def test_role_change_and_removal_of_a_member(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner, u = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    team_id, _ = await h.create_team(owner, at=t0)
    await member(h, "member.added", team_id, u, t0 + timedelta(seconds=1))
    await h.wait_member(team_id, u)
    changed = await h.publish(
        "member.role_changed",
        {"team_id": team_id, "user_id": u, "old_role": "member", "new_role": "viewer"},
        team_id=team_id,
        actor_id=owner,
        subject=f"member/{u}",
        at=t0 + timedelta(seconds=2),
    )
    await h.wait_applied(MEMBERSHIP_QUEUE, changed)
    assert (await member_row(h, team_id, u)).role == "viewer"
    await member(h, "member.removed", team_id, u, t0 + timedelta(seconds=3), role="viewer")
    await h.wait_not_member(team_id, u)
    # A late, older role change does not bring the member back.
    late = await h.publish(
        "member.role_changed",
        {"team_id": team_id, "user_id": u, "old_role": "viewer", "new_role": "admin"},
        team_id=team_id,
        actor_id=owner,
        subject=f"member/{u}",
        at=t0 + timedelta(seconds=2, milliseconds=500),
    )
    await h.wait_applied(MEMBERSHIP_QUEUE, late)
    assert await status_of(h, team_id, u) == 404
    assert await status_of(h, team_id, owner) == 200
