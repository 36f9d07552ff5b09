"""Fixtures of the workspace service's tests: one migrated database and one
running service (its consumers bound to the run's bus namespace) for the whole
session, a bus connection of the tests' own (to publish team/member/role events
the way the team service would), and a queue bound to ``workspace.*`` that
records every event the service publishes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import func, select

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, CloudEvent, registry
from agenthq_common.plumbing import outbox
from agenthq_common.service import Service
from agenthq_common.testing.plugin import (
    Databases,
    all_pages,
    eventually,
    serve_in_process,
    wait_applied,
)
from agenthq_common.testing.tokens import TestSigner
from agenthq_workspace.main import bootstrap
from agenthq_workspace.models import Workspace
from agenthq_workspace.settings import WorkspaceSettings

WORKSPACE_CLIENT_ADDRESS = ("198.51.100.23", 4711)
# Nothing listens there: the read model's fallback then answers "not a member".
NO_TEAM_SERVICE = "http://127.0.0.1:9"
MEMBERSHIP_QUEUE = "workspace.membership"
# team.deleted is handled on the membership queue (read model + workspaces in one go).
LIFECYCLE_QUEUE = "workspace.membership"
EVENTS_TEST_QUEUE = "tests.workspace-events"
TEAM_SOURCE = "agenthq/team"
USER_AGENT = "agenthq-workspace-tests/1.0"

WORKSPACE_FIELDS = {
    "id",
    "team_id",
    "name",
    "description",
    "created_by",
    "created_at",
    "updated_at",
    "archived_at",
}


@pytest.fixture(scope="session")
async def workspace_service(
    databases: Databases, settings_for: Callable[..., Any], signer: TestSigner
) -> Service:
    url = await databases.fresh("workspace")
    settings = settings_for(WorkspaceSettings, database_url=url, team_url=NO_TEAM_SERVICE)
    return bootstrap(settings, key_source=signer.keys)


@pytest.fixture(scope="session")
async def workspace_client(workspace_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(
        workspace_service, client_address=WORKSPACE_CLIENT_ADDRESS
    ) as client:
        yield client


@pytest.fixture(scope="session")
async def workspace_bus(event_bus: Bus, workspace_client: httpx.AsyncClient) -> Bus:
    """Publishes onto the exchange the service consumes from (its queues exist by now)."""
    return event_bus


@dataclass
class ReceivedEvents:
    """Every ``workspace.*`` message that reached the bus during the session."""

    events: list[CloudEvent] = field(default_factory=list)
    messages: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        event = CloudEvent.from_bytes(message.body)
        self.events.append(event)
        self.messages[event.id] = {
            "message_id": message.message_id,
            "content_type": message.content_type,
            "routing_key": message.routing_key,
            "persistent": message.delivery_mode is not None and int(message.delivery_mode) == 2,
        }

    def matching(self, **attrs: Any) -> list[CloudEvent]:
        return [e for e in self.events if all(getattr(e, k) == v for k, v in attrs.items())]


@pytest.fixture(scope="session")
async def workspace_events(workspace_bus: Bus) -> ReceivedEvents:
    """A queue of the tests' own, bound to ``workspace.*`` before any test runs."""
    received = ReceivedEvents()
    await workspace_bus.consume(EVENTS_TEST_QUEUE, ["workspace.*"], received.handle)
    return received


@dataclass
class WorkspaceHarness:
    """Plays the team service on the bus, calls the workspace API, and reads
    what the service stored and published."""

    service: Service
    client: httpx.AsyncClient
    bus: Bus
    signer: TestSigner
    received: ReceivedEvents

    # -- events in (the team service's side) ---------------------------------

    async def publish(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        team_id: uuid.UUID,
        actor_id: uuid.UUID | None,
        subject: str | None = None,
    ) -> CloudEvent:
        event = registry.create(
            type_,
            data,
            source=TEAM_SOURCE,
            actor=Actor(id=actor_id, ip="203.0.113.9", user_agent="team-service-test"),
            subject=subject,
            team_id=team_id,
        )
        await self.bus.publish(event)
        return event

    async def wait_applied(self, queue: str, *events: CloudEvent, within: float = 20.0) -> None:
        """Until ``queue``'s consumer has committed every one of ``events``."""
        await wait_applied(self.service.db, queue, *events, within=within)

    async def create_team(
        self,
        owner: uuid.UUID,
        members: dict[uuid.UUID, str] | None = None,
        *,
        roles: dict[str, list[str]] | None = None,
    ) -> uuid.UUID:
        """What the team service publishes for a new team (owner: admin), its
        custom roles and its other members; returns once the read model has it all."""
        team_id = uuid.uuid4()
        events = [
            await self.publish(
                "team.created",
                {
                    "team_id": team_id,
                    "name": f"Team {team_id.hex[:6]}",
                    "owner_id": owner,
                    "plan": "pro",
                    "max_members": 50,
                },
                team_id=team_id,
                actor_id=owner,
                subject=f"team/{team_id}",
            )
        ]
        for name, permissions in (roles or {}).items():
            events.append(await self._role_event("role.created", team_id, owner, name, permissions))
        events.append(await self._member_event("member.added", team_id, owner, owner, "admin"))
        for user, role in (members or {}).items():
            events.append(await self._member_event("member.added", team_id, owner, user, role))
        await self.wait_applied(MEMBERSHIP_QUEUE, *events)
        return team_id

    async def _member_event(
        self, type_: str, team_id: uuid.UUID, actor: uuid.UUID, user: uuid.UUID, role: str
    ) -> CloudEvent:
        return await self.publish(
            type_,
            {"team_id": team_id, "user_id": user, "role": role},
            team_id=team_id,
            actor_id=actor,
            subject=f"member/{user}",
        )

    async def _role_event(
        self,
        type_: str,
        team_id: uuid.UUID,
        actor: uuid.UUID,
        name: str,
        permissions: list[str],
    ) -> CloudEvent:
        return await self.publish(
            type_,
            {"team_id": team_id, "name": name, "permissions": permissions},
            team_id=team_id,
            actor_id=actor,
            subject=f"role/{name}",
        )

    async def add_member(
        self, team_id: uuid.UUID, actor: uuid.UUID, user: uuid.UUID, role: str
    ) -> None:
        event = await self._member_event("member.added", team_id, actor, user, role)
        await self.wait_applied(MEMBERSHIP_QUEUE, event)

    async def change_role(
        self, team_id: uuid.UUID, actor: uuid.UUID, user: uuid.UUID, old: str, new: str
    ) -> None:
        event = await self.publish(
            "member.role_changed",
            {"team_id": team_id, "user_id": user, "old_role": old, "new_role": new},
            team_id=team_id,
            actor_id=actor,
            subject=f"member/{user}",
        )
        await self.wait_applied(MEMBERSHIP_QUEUE, event)

    async def remove_member(
        self, team_id: uuid.UUID, actor: uuid.UUID, user: uuid.UUID, role: str
    ) -> None:
        event = await self._member_event("member.removed", team_id, actor, user, role)
        await self.wait_applied(MEMBERSHIP_QUEUE, event)

    async def role_event(
        self,
        type_: str,
        team_id: uuid.UUID,
        actor: uuid.UUID,
        name: str,
        permissions: list[str],
    ) -> None:
        event = await self._role_event(type_, team_id, actor, name, permissions)
        await self.wait_applied(MEMBERSHIP_QUEUE, event)

    async def delete_team(self, team_id: uuid.UUID, owner: uuid.UUID) -> CloudEvent:
        """Publish team.deleted; returns once both of the service's queues applied it."""
        event = await self.publish(
            "team.deleted",
            {"team_id": team_id},
            team_id=team_id,
            actor_id=owner,
            subject=f"team/{team_id}",
        )
        await self.wait_applied(MEMBERSHIP_QUEUE, event)
        await self.wait_applied(LIFECYCLE_QUEUE, event)
        return event

    # -- HTTP -----------------------------------------------------------------

    def headers(self, user: uuid.UUID | None, **extra: str) -> dict[str, str]:
        base = {"User-Agent": USER_AGENT, **extra}
        if user is None:
            return base
        return {**self.signer.headers(user), **base}

    @staticmethod
    def path(team_id: uuid.UUID | str, workspace_id: uuid.UUID | str | None = None) -> str:
        base = f"/v1/teams/{team_id}/workspaces"
        return base if workspace_id is None else f"{base}/{workspace_id}"

    async def create(
        self,
        team_id: uuid.UUID | str,
        user: uuid.UUID | None,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        payload = body if body is not None else fields
        return await self.client.post(
            self.path(team_id), json=payload, headers={**self.headers(user), **(headers or {})}
        )

    async def create_ok(
        self, team_id: uuid.UUID, user: uuid.UUID, name: str, **fields: Any
    ) -> dict[str, Any]:
        response = await self.create(team_id, user, name=name, **fields)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def list(
        self, team_id: uuid.UUID | str, user: uuid.UUID | None, **params: Any
    ) -> httpx.Response:
        return await self.client.get(self.path(team_id), params=params, headers=self.headers(user))

    async def get(
        self, team_id: uuid.UUID | str, user: uuid.UUID | None, workspace_id: uuid.UUID | str
    ) -> httpx.Response:
        return await self.client.get(self.path(team_id, workspace_id), headers=self.headers(user))

    async def patch(
        self,
        team_id: uuid.UUID | str,
        user: uuid.UUID | None,
        workspace_id: uuid.UUID | str,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.patch(
            self.path(team_id, workspace_id),
            json=body,
            headers={**self.headers(user), **(headers or {})},
        )

    async def delete(
        self,
        team_id: uuid.UUID | str,
        user: uuid.UUID | None,
        workspace_id: uuid.UUID | str,
        *,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.delete(
            self.path(team_id, workspace_id), headers={**self.headers(user), **(headers or {})}
        )

    async def all_pages(
        self, team_id: uuid.UUID, user: uuid.UUID, **params: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """Every item of a listing, following next_cursor; and the number of pages."""
        return await all_pages(lambda query: self.list(team_id, user, **query), params)

    # -- what the service stored and published ---------------------------------

    async def workspace_rows(self, team_id: uuid.UUID) -> list[Any]:
        table = Workspace.__table__
        async with self.service.db.engine.connect() as conn:
            query = select(table).where(table.c.team_id == team_id)
            return list((await conn.execute(query)).all())

    async def outbox_events(
        self,
        *,
        event_type: str | None = None,
        subject: str | None = None,
        team_id: uuid.UUID | None = None,
    ) -> list[CloudEvent]:
        """The events the service wrote to its outbox (in outbox order)."""
        query = select(outbox.c.payload).order_by(outbox.c.seq)
        if event_type is not None:
            query = query.where(outbox.c.event_type == event_type)
        if subject is not None:
            query = query.where(outbox.c.payload["subject"].astext == subject)
        if team_id is not None:
            query = query.where(outbox.c.payload["teamid"].astext == str(team_id))
        async with self.service.db.engine.connect() as conn:
            payloads = list((await conn.execute(query)).scalars())
        return [CloudEvent.model_validate(p) for p in payloads]

    async def outbox_count(self, team_id: uuid.UUID) -> int:
        query = select(func.count()).where(outbox.c.payload["teamid"].astext == str(team_id))
        async with self.service.db.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def outbox_published_at(self, event_id: uuid.UUID) -> Any:
        query = select(outbox.c.published_at).where(outbox.c.event_id == event_id)
        async with self.service.db.engine.connect() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def on_bus(self, event_id: uuid.UUID, *, within: float = 15.0) -> CloudEvent:
        """The event with this id, once it reached the tests' ``workspace.*`` queue."""

        async def arrived() -> CloudEvent | None:
            found = [e for e in self.received.events if e.id == event_id]
            return found[0] if found else None

        return await eventually(arrived, within=within)

    async def settle(self, seconds: float = 0.5) -> None:
        """Room for something that should not happen (a stray event) to show up."""
        await asyncio.sleep(seconds)


@pytest.fixture
def workspace_harness(
    workspace_service: Service,
    workspace_client: httpx.AsyncClient,
    workspace_bus: Bus,
    workspace_events: ReceivedEvents,
    signer: TestSigner,
) -> WorkspaceHarness:
    return WorkspaceHarness(
        workspace_service, workspace_client, workspace_bus, signer, workspace_events
    )


# -- assertions shared by the test modules ---------------------------------------


def assert_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """An error in the contract's shape, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    assert "Traceback" not in response.text
    return error  # type: ignore[no-any-return]


def error_fields(error: dict[str, Any]) -> set[str]:
    details = error.get("details") or []
    assert isinstance(details, list), error
    return {d["field"] for d in details}


def assert_workspace_shape(item: dict[str, Any]) -> None:
    assert set(item) == WORKSPACE_FIELDS, item
    uuid.UUID(item["id"])
    uuid.UUID(item["team_id"])
    uuid.UUID(item["created_by"])
