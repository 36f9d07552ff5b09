"""What creating a team publishes: outbox rows written with the change, then
relayed to the bus with ``message_id`` = event id."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
import httpx
from sqlalchemy import select

from agenthq_common.bus import Bus
from agenthq_common.events import CloudEvent
from agenthq_common.plumbing import outbox
from agenthq_common.service import Service
from agenthq_common.testing.plugin import eventually
from agenthq_common.testing.tokens import TestSigner

USER_AGENT = "agenthq-tests/1.0 (+https://example.test)"


async def outbox_rows(service: Service, team_id: str) -> dict[str, Any]:
    """The outbox rows of ``team_id``, by event type."""
    async with service.db.engine.connect() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.seq))).all()
    return {r.event_type: r for r in rows if r.payload.get("teamid") == team_id}


async def create(
    client: httpx.AsyncClient, signer: TestSigner, user: uuid.UUID, **headers: str
) -> dict[str, Any]:
    response = await client.post(
        "/v1/teams",
        json={"name": "  Evented  ", "plan": "pro"},
        headers=signer.headers(user, **{"User-Agent": USER_AGENT, **headers}),
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_writes_team_created_and_member_added_to_the_outbox(
    team_client: httpx.AsyncClient, team_service: Service, signer: TestSigner
) -> None:
    user = uuid.uuid4()
    team = await create(team_client, signer, user)
    rows = await outbox_rows(team_service, team["id"])
    assert set(rows) == {"team.created", "member.added"}

    created = rows["team.created"].payload
    assert created["type"] == "team.created"
    assert created["specversion"] == "1.0"
    assert created["source"] == "agenthq/team"
    assert created["teamid"] == team["id"]
    assert created["subject"] == f"team/{team['id']}"
    assert created["actorid"] == str(user)
    assert created["actorip"] == "198.51.100.7"  # the client address: no proxy header
    assert created["actorua"] == USER_AGENT
    assert created["data"] == {
        "team_id": team["id"],
        "name": "Evented",
        "owner_id": str(user),
        "plan": "pro",
        "max_members": 50,
    }

    added = rows["member.added"].payload
    assert added["type"] == "member.added"
    assert added["source"] == "agenthq/team"
    assert added["teamid"] == team["id"]
    assert added["subject"] == f"member/{user}"
    assert added["actorid"] == str(user)
    assert added["actorip"] == "198.51.100.7"
    assert added["actorua"] == USER_AGENT
    assert added["data"] == {"team_id": team["id"], "user_id": str(user), "role": "admin"}

    for row in rows.values():
        assert str(row.event_id) == row.payload["id"]
        # The envelope in the outbox is a valid CloudEvent.
        assert CloudEvent.model_validate(row.payload).id == row.event_id
    assert rows["team.created"].event_id != rows["member.added"].event_id


async def test_actor_ip_is_the_first_forwarded_hop(
    team_client: httpx.AsyncClient, team_service: Service, signer: TestSigner
) -> None:
    team = await create(
        team_client, signer, uuid.uuid4(), **{"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}
    )
    rows = await outbox_rows(team_service, team["id"])
    assert {r.payload["actorip"] for r in rows.values()} == {"203.0.113.9"}


async def test_rejected_create_writes_nothing_to_the_outbox(
    team_client: httpx.AsyncClient, team_service: Service, signer: TestSigner
) -> None:
    async with team_service.db.engine.connect() as conn:
        before = len((await conn.execute(select(outbox.c.seq))).all())
    response = await team_client.post(
        "/v1/teams", json={"name": " ", "plan": "pro"}, headers=signer.headers(uuid.uuid4())
    )
    assert response.status_code == 422
    async with team_service.db.engine.connect() as conn:
        after = len((await conn.execute(select(outbox.c.seq))).all())
    assert after == before


async def test_created_events_reach_the_bus(
    team_client: httpx.AsyncClient, team_service: Service, signer: TestSigner, team_bus: Bus
) -> None:
    received: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message)

    await team_bus.consume(f"test.team{uuid.uuid4().hex[:8]}", ["team.*", "member.*"], collect)
    user = uuid.uuid4()
    team = await create(team_client, signer, user)

    def ours() -> dict[str, tuple[aio_pika.abc.AbstractIncomingMessage, CloudEvent]]:
        found = {}
        for message in received:
            event = CloudEvent.from_bytes(message.body)
            if str(event.teamid) == team["id"]:
                found[event.type] = (message, event)
        return found

    async def both_arrived() -> bool:
        return set(ours()) == {"team.created", "member.added"}

    await eventually(both_arrived, within=10.0)
    rows = await outbox_rows(team_service, team["id"])
    for type_, (message, event) in ours().items():
        assert message.message_id == str(event.id)
        assert event.id == rows[type_].event_id
        assert message.routing_key == type_
        assert message.content_type == "application/cloudevents+json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert str(event.actorid) == str(user)
        assert event.actorip == "198.51.100.7"
        assert event.actorua == USER_AGENT

    async def marked_published() -> bool:
        rows = await outbox_rows(team_service, team["id"])
        return all(r.published_at is not None for r in rows.values())

    await eventually(marked_published, within=10.0)
    await asyncio.sleep(0.3)  # room for a duplicate to show up, were there one
    assert (
        len([m for m in received if m.message_id in {str(e.id) for _, e in ours().values()}]) == 2
    )
