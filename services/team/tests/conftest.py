"""Fixtures of the team service's tests: one migrated database and one running
service (relay included) for the whole session, called in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from agenthq_common.bus import Bus
from agenthq_common.service import Service
from agenthq_common.testing.infra import Infrastructure
from agenthq_common.testing.plugin import Databases, serve_in_process
from agenthq_team.main import bootstrap
from agenthq_team.settings import TeamSettings

TEAM_CLIENT_ADDRESS = ("198.51.100.7", 4321)


@pytest.fixture(scope="session")
async def team_service(
    databases: Databases, settings_for: Callable[..., Any], signer: Any
) -> Service:
    url = await databases.fresh("team")
    return bootstrap(settings_for(TeamSettings, database_url=url), key_source=signer.keys)


@pytest.fixture(scope="session")
async def team_client(team_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(team_service, client_address=TEAM_CLIENT_ADDRESS) as client:
        yield client


@pytest.fixture
async def team_bus(infra: Infrastructure, bus_namespace: str) -> AsyncIterator[Bus]:
    """A connection of the test's own to the service's broker namespace."""
    bus = Bus(infra.broker_url, namespace=bus_namespace)
    await bus.connect()
    yield bus
    await bus.close()
