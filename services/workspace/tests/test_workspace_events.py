"""workspace.created / updated / deleted: written to the outbox with the
change, in the envelope of EVENTS.md, and relayed to the bus."""

from __future__ import annotations

import uuid
from typing import Any

from agenthq_common.events import CloudEvent, registry
from agenthq_common.tracing import trace_id_of

from .conftest import (
    USER_AGENT,
    WORKSPACE_CLIENT_ADDRESS,
    WorkspaceHarness,
    assert_error,
)

SOURCE = "agenthq/workspace"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _assert_envelope(
    event: CloudEvent,
    *,
    type_: str,
    team_id: uuid.UUID,
    workspace_id: str,
    actor: uuid.UUID | None,
    ip: str | None = WORKSPACE_CLIENT_ADDRESS[0],
    user_agent: str | None = USER_AGENT,
) -> None:
    assert event.specversion == "1.0"
    assert event.type == type_
    assert event.source == SOURCE
    assert event.subject == f"workspace/{workspace_id}"
    assert event.teamid == team_id
    assert event.actorid == actor
    assert event.actorip == ip
    assert event.actorua == user_agent
    assert event.dataversion == "1"
    assert event.datacontenttype == "application/json"
    # The data is valid for its type in the shared catalogue.
    registry.parse_data(event)


def _data(workspace: dict[str, Any], *, archived: bool) -> dict[str, Any]:
    return {
        "workspace_id": workspace["id"],
        "team_id": workspace["team_id"],
        "name": workspace["name"],
        "description": workspace["description"],
        "archived": archived,
    }


async def test_created_updated_deleted_in_the_outbox(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)

    created = await h.create_ok(team_id, owner, "Evented", description="first")
    subject = f"workspace/{created['id']}"
    (event,) = await h.outbox_events(subject=subject)
    _assert_envelope(
        event,
        type_="workspace.created",
        team_id=team_id,
        workspace_id=created["id"],
        actor=owner,
    )
    assert event.data == _data(created, archived=False)

    renamed = (
        await h.patch(team_id, owner, created["id"], {"name": "Evented 2", "description": None})
    ).json()
    archived = (await h.patch(team_id, owner, created["id"], {"archived": True})).json()
    unarchived = (await h.patch(team_id, owner, created["id"], {"archived": False})).json()
    assert (await h.delete(team_id, owner, created["id"])).status_code == 204

    events = await h.outbox_events(subject=subject)
    assert [e.type for e in events] == [
        "workspace.created",
        "workspace.updated",
        "workspace.updated",
        "workspace.updated",
        "workspace.deleted",
    ]
    assert len({e.id for e in events}) == 5
    for e in events:
        _assert_envelope(e, type_=e.type, team_id=team_id, workspace_id=created["id"], actor=owner)
    assert events[1].data == _data(renamed, archived=False)
    assert events[1].data["description"] is None
    assert events[2].data == _data(archived, archived=True)
    assert events[3].data == _data(unarchived, archived=False)
    assert events[4].data == {"workspace_id": created["id"], "team_id": str(team_id)}
    assert events[0].time <= events[1].time <= events[4].time


async def test_actor_comes_from_the_request(workspace_harness: WorkspaceHarness) -> None:
    """actorid is the caller, actorip the first X-Forwarded-For hop, actorua its
    User-Agent, and the W3C traceparent travels along."""
    h = workspace_harness
    owner = uuid.uuid4()
    member = uuid.uuid4()
    team_id = await h.create_team(owner, {member: "member"})
    headers = {
        "X-Forwarded-For": "192.0.2.44, 10.0.0.1",
        "User-Agent": "Mozilla/5.0 (Workspace Test)",
        "traceparent": TRACEPARENT,
    }

    response = await h.create(team_id, member, name="Traced", headers=headers)
    assert response.status_code == 201, response.text
    workspace = response.json()
    (event,) = await h.outbox_events(subject=f"workspace/{workspace['id']}")
    _assert_envelope(
        event,
        type_="workspace.created",
        team_id=team_id,
        workspace_id=workspace["id"],
        actor=member,
        ip="192.0.2.44",
        user_agent="Mozilla/5.0 (Workspace Test)",
    )
    # The service's span continues the caller's trace.
    assert trace_id_of(event.traceparent) == trace_id_of(TRACEPARENT)
    assert event.traceparent != TRACEPARENT

    # Another actor for the update, from the peer address this time.
    await h.patch(team_id, owner, workspace["id"], {"description": "by the owner"})
    (_, updated) = await h.outbox_events(subject=f"workspace/{workspace['id']}")
    assert updated.actorid == owner
    assert updated.actorip == WORKSPACE_CLIENT_ADDRESS[0]
    assert updated.actorua == USER_AGENT


async def test_events_reach_the_bus(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)

    created = await h.create_ok(team_id, owner, "On the bus")
    await h.patch(team_id, owner, created["id"], {"archived": True})
    assert (await h.delete(team_id, owner, created["id"])).status_code == 204
    in_outbox = await h.outbox_events(subject=f"workspace/{created['id']}")
    assert [e.type for e in in_outbox] == [
        "workspace.created",
        "workspace.updated",
        "workspace.deleted",
    ]

    for stored in in_outbox:
        received = await h.on_bus(stored.id)
        assert received.model_dump() == stored.model_dump()
        message = h.received.messages[stored.id]
        assert message["message_id"] == str(stored.id)
        assert message["content_type"] == "application/cloudevents+json"
        assert message["routing_key"] == stored.type
        assert message["persistent"]
        assert await h.outbox_published_at(stored.id) is not None

    on_bus = h.received.matching(subject=f"workspace/{created['id']}")
    assert [e.type for e in on_bus] == [e.type for e in in_outbox]
    assert on_bus[1].data["archived"] is True


async def test_failed_and_noop_writes_publish_nothing(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    viewer = uuid.uuid4()
    team_id = await h.create_team(owner, {viewer: "viewer"})
    first = await h.create_ok(team_id, owner, "Only")
    second = await h.create_ok(team_id, owner, "Other")
    before = await h.outbox_events(team_id=team_id)
    assert [e.type for e in before] == ["workspace.created", "workspace.created"]

    assert_error(await h.create(team_id, owner, name="only"), 409, "name_taken")
    assert_error(await h.patch(team_id, owner, second["id"], {"name": "ONLY"}), 409, "name_taken")
    assert_error(await h.create(team_id, owner, name=""), 422, "validation_error")
    assert_error(await h.create(team_id, viewer, name="Viewer's"), 403, "permission_denied")
    assert_error(await h.delete(team_id, viewer, first["id"]), 403, "permission_denied")
    assert_error(await h.delete(team_id, owner, uuid.uuid4()), 404, "workspace_not_found")
    assert (await h.patch(team_id, owner, first["id"], {})).status_code == 200
    assert (await h.patch(team_id, owner, first["id"], {"name": "Only"})).status_code == 200

    await h.settle()
    assert [e.id for e in await h.outbox_events(team_id=team_id)] == [e.id for e in before]
    assert [e.id for e in h.received.matching(teamid=team_id)] == [e.id for e in before]


async def test_concurrent_creates_publish_one_event_per_workspace(
    workspace_harness: WorkspaceHarness,
) -> None:
    import asyncio

    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    responses = await asyncio.gather(*(h.create(team_id, owner, name="Once") for _ in range(5)))
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    events = await h.outbox_events(team_id=team_id)
    assert [(e.type, e.data["workspace_id"]) for e in events] == [
        ("workspace.created", winner["id"])
    ]
    await h.on_bus(events[0].id)
