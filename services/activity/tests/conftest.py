"""Fixtures of the activity service's tests: one migrated database and one
running service (its consumers bound to the run's bus namespace) for the whole
session, plus a bus connection of the tests' own to publish events with."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agenthq_activity.main import bootstrap
from agenthq_activity.models import activity_logs
from agenthq_activity.settings import ActivitySettings
from agenthq_common.bus import Bus
from agenthq_common.events import Actor, CloudEvent, registry
from agenthq_common.service import Service
from agenthq_common.testing.plugin import (
    Databases,
    all_pages,
    eventually,
    serve_in_process,
    wait_applied,
)
from agenthq_common.testing.tokens import TestSigner

ACTIVITY_CLIENT_ADDRESS = ("198.51.100.7", 4321)


@pytest.fixture(scope="session")
async def activity_service(
    databases: Databases, settings_for: Callable[..., Any], signer: TestSigner
) -> Service:
    url = await databases.fresh("activity")
    return bootstrap(
        settings_for(ActivitySettings, database_url=url),
        key_source=signer.keys,
        run_retention=False,
    )


@pytest.fixture(scope="session")
async def activity_client(activity_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(activity_service, client_address=ACTIVITY_CLIENT_ADDRESS) as client:
        yield client


@pytest.fixture(scope="session")
async def activity_bus(event_bus: Bus, activity_client: httpx.AsyncClient) -> Bus:
    """Publishes onto the exchange the service consumes from (its queues exist by now)."""
    return event_bus


USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) agenthq-tests"
ACTOR_IP = "203.0.113.9"
MEMBERSHIP_QUEUE = "activity.membership"
AUDIT_QUEUE = "activity.audit"


@dataclass
class ActivityHarness:
    """Publishes events the way other services would, and reads what the
    activity service made of them (over HTTP, or straight from its database)."""

    service: Service
    client: httpx.AsyncClient
    bus: Bus
    signer: TestSigner

    async def publish(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        team_id: uuid.UUID | None,
        actor_id: uuid.UUID | None,
        subject: str | None = None,
        at: datetime | None = None,
        ip: str | None = ACTOR_IP,
        user_agent: str | None = USER_AGENT,
    ) -> CloudEvent:
        event = registry.create(
            type_,
            data,
            source="agenthq/tests",
            actor=Actor(id=actor_id, ip=ip, user_agent=user_agent),
            subject=subject,
            team_id=team_id,
        )
        if at is not None:
            event = event.model_copy(update={"time": at})
        await self.bus.publish(event)
        return event

    async def create_team(
        self, owner: uuid.UUID, *, at: datetime | None = None
    ) -> tuple[uuid.UUID, list[CloudEvent]]:
        """Publish what the team service publishes for a new team; wait until the
        owner can read its activity (the read model has it)."""
        team_id = uuid.uuid4()
        at = at or datetime.now(UTC) - timedelta(minutes=5)
        created = await self.publish(
            "team.created",
            {
                "team_id": team_id,
                "name": f"Team {team_id.hex[:6]}",
                "owner_id": owner,
                "plan": "free",
                "max_members": 5,
            },
            team_id=team_id,
            actor_id=owner,
            subject=f"team/{team_id}",
            at=at,
        )
        added = await self.publish(
            "member.added",
            {"team_id": team_id, "user_id": owner, "role": "admin"},
            team_id=team_id,
            actor_id=owner,
            subject=f"member/{owner}",
            at=at,
        )
        await self.wait_member(team_id, owner)
        return team_id, [created, added]

    async def get(
        self, team_id: uuid.UUID | str, user: uuid.UUID | None, **params: Any
    ) -> httpx.Response:
        headers = self.signer.headers(user) if user is not None else {}
        return await self.client.get(
            f"/v1/teams/{team_id}/activity", params=params, headers=headers
        )

    async def wait_member(self, team_id: uuid.UUID, user: uuid.UUID) -> None:
        async def readable() -> bool:
            return (await self.get(team_id, user)).status_code == 200

        await eventually(readable, within=15.0)

    async def wait_not_member(self, team_id: uuid.UUID, user: uuid.UUID) -> None:
        async def refused() -> bool:
            return (await self.get(team_id, user)).status_code == 404

        await eventually(refused, within=15.0)

    async def wait_applied(self, queue: str, *events: CloudEvent, within: float = 15.0) -> None:
        """Until ``queue``'s consumer has committed every one of ``events``."""
        await wait_applied(self.service.db, queue, *events, within=within)

    async def rows(self, **where: Any) -> list[Any]:
        """activity_logs rows (straight from the database) matching ``where``."""
        table = activity_logs
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with self.service.db.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def all_pages(
        self, team_id: uuid.UUID, user: uuid.UUID, **params: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """Every item of a listing, following next_cursor; and the number of pages."""
        return await all_pages(lambda query: self.get(team_id, user, **query), params)


@pytest.fixture
def activity_harness(
    activity_service: Service,
    activity_client: httpx.AsyncClient,
    activity_bus: Bus,
    signer: TestSigner,
) -> ActivityHarness:
    return ActivityHarness(activity_service, activity_client, activity_bus, signer)
