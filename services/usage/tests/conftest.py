"""Fixtures of the usage service's tests: one migrated database and one running
service (consumers bound to the run's bus namespace) for the session, and a
bus connection of the tests' own to publish events with."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, CloudEvent, registry
from agenthq_common.service import Service
from agenthq_common.testing.plugin import Databases, eventually, serve_in_process, wait_applied
from agenthq_common.testing.tokens import TestSigner
from agenthq_usage.main import bootstrap
from agenthq_usage.settings import UsageSettings

INGEST_CREDENTIAL = "test-producer-credential-" + uuid.uuid4().hex
METERING_QUEUE = "usage.metering"


@pytest.fixture(scope="session")
async def usage_service(
    databases: Databases, settings_for: Callable[..., Any], signer: TestSigner
) -> Service:
    url = await databases.fresh("usage")
    settings = settings_for(UsageSettings, database_url=url, ingest_credentials=[INGEST_CREDENTIAL])
    return bootstrap(settings, key_source=signer.keys, run_jobs=False)


@pytest.fixture(scope="session")
async def usage_client(usage_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(usage_service) as client:
        yield client


@dataclass
class UsageHarness:
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
        actor_id: uuid.UUID | None = None,
        at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> CloudEvent:
        event = registry.create(
            type_, data, source="agenthq/tests", actor=Actor(id=actor_id), team_id=team_id
        )
        update: dict[str, Any] = {}
        if at is not None:
            update["time"] = at
        if event_id is not None:
            update["id"] = event_id
        if update:
            event = event.model_copy(update=update)
        await self.bus.publish(event)
        return event

    async def create_team(
        self, owner: uuid.UUID, *, plan: str = "free", at: datetime | None = None
    ) -> uuid.UUID:
        team_id = uuid.uuid4()
        at = at or datetime.now(UTC) - timedelta(days=40)
        await self.publish(
            "team.created",
            {
                "team_id": team_id,
                "name": "T",
                "owner_id": owner,
                "plan": plan,
                "max_members": 5,
            },
            team_id=team_id,
            actor_id=owner,
            at=at,
        )
        await self.publish(
            "member.added",
            {"team_id": team_id, "user_id": owner, "role": "admin"},
            team_id=team_id,
            actor_id=owner,
            at=at,
        )

        async def readable() -> bool:
            return (await self.get(f"/v1/teams/{team_id}/usage", owner)).status_code == 200

        await eventually(readable, within=15.0)
        return team_id

    async def get(self, path: str, user: uuid.UUID | None, **params: Any) -> httpx.Response:
        headers = self.signer.headers(user) if user is not None else {}
        return await self.client.get(path, params=params, headers=headers)

    async def ingest(
        self, events: list[dict[str, Any]], credential: str | None = INGEST_CREDENTIAL
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return await self.client.post("/v1/usage/events", json=events, headers=headers)

    async def wait_applied(self, *events: CloudEvent, within: float = 30.0) -> None:
        await wait_applied(self.service.db, METERING_QUEUE, *events, within=within)


@pytest.fixture
def usage_harness(
    usage_service: Service, usage_client: httpx.AsyncClient, event_bus: Bus, signer: TestSigner
) -> UsageHarness:
    return UsageHarness(usage_service, usage_client, event_bus, signer)
