"""team.deleted: the team's workspaces go, each with its workspace.deleted
event, and the team's members no longer get in."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from agenthq_common.membership import rm_teams

from .conftest import (
    LIFECYCLE_QUEUE,
    MEMBERSHIP_QUEUE,
    WorkspaceHarness,
    assert_error,
)


async def test_team_deleted_deletes_its_workspaces(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    member = uuid.uuid4()
    team_id = await h.create_team(owner, {member: "member"})
    other_team = await h.create_team(owner)
    spaces = [
        await h.create_ok(team_id, owner, "Going 1"),
        await h.create_ok(team_id, member, "Going 2", description="member's"),
        await h.create_ok(team_id, owner, "Going 3 (archived)"),
    ]
    await h.patch(team_id, owner, spaces[2]["id"], {"archived": True})
    survivor = await h.create_ok(other_team, owner, "Going 1")  # same name, other team
    assert len(await h.workspace_rows(team_id)) == 3

    deleted = await h.delete_team(team_id, owner)

    assert await h.workspace_rows(team_id) == []
    assert [str(r.id) for r in await h.workspace_rows(other_team)] == [survivor["id"]]

    events = await h.outbox_events(event_type="workspace.deleted", team_id=team_id)
    assert sorted(e.data["workspace_id"] for e in events) == sorted(s["id"] for s in spaces)
    for event in events:
        assert event.source == "agenthq/workspace"
        assert event.subject == f"workspace/{event.data['workspace_id']}"
        assert event.teamid == team_id
        assert event.data == {"workspace_id": event.data["workspace_id"], "team_id": str(team_id)}
        # The deletions are the team owner's doing.
        assert event.actorid == owner
        assert event.actorid == deleted.actorid
        assert event.actorip == deleted.actorip
        assert event.actorua == deleted.actorua

    # They are relayed to the bus, too.
    for event in events:
        received = await h.on_bus(event.id)
        assert received.type == "workspace.deleted"

    # The team's members are now non-members: 404 on every route.
    for user in (owner, member):
        assert_error(await h.list(team_id, user), 404, "team_not_found")
        assert_error(await h.get(team_id, user, spaces[0]["id"]), 404, "team_not_found")
        assert_error(await h.create(team_id, user, name="After"), 404, "team_not_found")
        assert_error(
            await h.patch(team_id, user, spaces[0]["id"], {"name": "x"}), 404, "team_not_found"
        )
        assert_error(await h.delete(team_id, user, spaces[0]["id"]), 404, "team_not_found")

    # The other team is unaffected.
    response = await h.list(other_team, owner)
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["items"]] == [survivor["id"]]
    assert await h.outbox_events(event_type="workspace.deleted", team_id=other_team) == []


async def test_team_deleted_twice_has_one_effect(workspace_harness: WorkspaceHarness) -> None:
    """A redelivered team.deleted publishes no second round of workspace.deleted."""
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    spaces = [await h.create_ok(team_id, owner, f"Twice {i}") for i in range(2)]

    deleted = await h.delete_team(team_id, owner)
    await h.bus.publish(deleted)  # the same event (same id) again
    # A marker behind it on the same queue: once it is applied, so is the duplicate.
    marker_team = await h.create_team(uuid.uuid4())
    marker = await h.publish(
        "team.deleted",
        {"team_id": marker_team},
        team_id=marker_team,
        actor_id=None,
        subject=f"team/{marker_team}",
    )
    await h.wait_applied(LIFECYCLE_QUEUE, marker)
    await h.settle()

    events = await h.outbox_events(event_type="workspace.deleted", team_id=team_id)
    assert sorted(e.data["workspace_id"] for e in events) == sorted(s["id"] for s in spaces)


async def test_team_deleted_without_workspaces(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    assert (await h.list(team_id, owner)).status_code == 200

    await h.delete_team(team_id, owner)

    assert await h.outbox_events(team_id=team_id) == []
    assert_error(await h.list(team_id, owner), 404, "team_not_found")


async def test_a_late_member_added_does_not_revive_a_deleted_team(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    await h.delete_team(team_id, owner)

    newcomer = uuid.uuid4()
    await h.add_member(team_id, owner, newcomer, "admin")

    assert_error(await h.list(team_id, newcomer), 404, "team_not_found")
    assert_error(await h.create(team_id, newcomer, name="Zombie"), 404, "team_not_found")
    assert await h.workspace_rows(team_id) == []


async def test_no_workspace_outlives_its_deleted_team_when_the_read_model_lags(
    workspace_harness: WorkspaceHarness,
) -> None:
    """A create racing the team's deletion: whichever commits first, no
    workspace of the deleted team is left behind.

    The race is made deterministic by holding a row lock on the team's
    read-model row: the deletion's handler waits for it, and so does a create
    (it reads that row FOR SHARE), which runs meanwhile in the background."""
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    before = await h.create_ok(team_id, owner, "Before the deletion")

    async with h.service.db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(
                select(rm_teams.c.team_id).where(rm_teams.c.team_id == team_id).with_for_update()
            )
            deleted = await h.publish(
                "team.deleted",
                {"team_id": team_id},
                team_id=team_id,
                actor_id=owner,
                subject=f"team/{team_id}",
            )
            creating = asyncio.create_task(
                h.create(team_id, owner, name="Created during the deletion")
            )
            await asyncio.sleep(0.5)  # both now wait for the lock
        finally:
            await transaction.commit()
    during = await creating
    assert during.status_code in (201, 404), during.text

    await h.wait_applied(MEMBERSHIP_QUEUE, deleted)
    await h.wait_applied(LIFECYCLE_QUEUE, deleted)
    await h.settle()

    assert_error(await h.list(team_id, owner), 404, "team_not_found")
    leftovers = [(str(r.id), r.name) for r in await h.workspace_rows(team_id)]
    assert leftovers == [], f"workspaces of the deleted team {team_id} survived: {leftovers}"
    deleted_ids = {
        e.data["workspace_id"]
        for e in await h.outbox_events(event_type="workspace.deleted", team_id=team_id)
    }
    assert before["id"] in deleted_ids
    if during.status_code == 201:
        assert during.json()["id"] in deleted_ids
