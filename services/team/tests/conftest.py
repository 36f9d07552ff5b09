"""Fixtures of the team service's tests: one migrated database and one running
service (relay included) for the whole session, called in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from agenthq_common.bus import Bus
from agenthq_common.service import Service
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
async def team_bus(event_bus: Bus) -> Bus:
    """A connection of the test's own to the service's broker namespace."""
    return event_bus


# --- Shared helpers of the members/invitations/roles/permissions tests --------
# (a fixture, because test modules are imported in importlib mode and cannot
# import each other; ``kit`` is a ``TeamKit``).

import asyncio  # noqa: E402
import re  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from sqlalchemy import select, text  # noqa: E402

from agenthq_common.events import registry  # noqa: E402
from agenthq_common.plumbing import outbox  # noqa: E402
from agenthq_common.testing.plugin import eventually  # noqa: E402


@dataclass(frozen=True)
class Person:
    """A user the team service knows (its ``user.registered`` event arrived)."""

    id: uuid.UUID
    email: str
    name: str


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


class TeamKit:
    """Calls the team service in process and looks into its database."""

    def __init__(self, client: httpx.AsyncClient, signer: Any, service: Service, bus: Bus) -> None:
        self.client = client
        self.signer = signer
        self.service = service
        self.bus = bus

    # -- identity ---------------------------------------------------------------
    def headers(self, user: uuid.UUID | Person, **claims: Any) -> dict[str, str]:
        user_id = user.id if isinstance(user, Person) else user
        return {"Authorization": f"Bearer {self.signer.token(user_id, **claims)}"}

    async def people(self, count: int, *, prefix: str = "user") -> list[Person]:
        """``count`` new users, announced by ``user.registered`` events on the bus."""
        made = [
            Person(uuid.uuid4(), unique_email(prefix), f"{prefix.title()} {i}")
            for i in range(count)
        ]
        for person in made:
            await self.announce("user.registered", person.id, email=person.email, name=person.name)
        wanted = {p.id for p in made}

        async def all_known() -> bool:
            return wanted <= await self.known_user_ids(wanted)

        await eventually(all_known, within=30.0)
        return made

    async def announce(self, event_type: str, user_id: uuid.UUID, *, email: str, name: str) -> None:
        """Publish a gateway ``user.*`` event (retried while the broker reconnects)."""
        event = registry.create(
            event_type,
            {"user_id": user_id, "email": email, "name": name},
            source="agenthq/gateway",
            subject=f"user/{user_id}",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        while True:
            try:
                await self.bus.publish(event)
                return
            except Exception:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def person(self, prefix: str = "user") -> Person:
        return (await self.people(1, prefix=prefix))[0]

    async def known_user_ids(self, ids: set[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.rows("SELECT id FROM users WHERE id = ANY(:ids)", ids=list(ids))
        return {r.id for r in rows}

    # -- database ---------------------------------------------------------------
    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.service.db.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.service.db.engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def events(self, team_id: str | uuid.UUID) -> list[dict[str, Any]]:
        """The outbox envelopes about ``team_id``, oldest first."""
        async with self.service.db.engine.connect() as conn:
            rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.seq))).all()
        return [r.payload for r in rows if r.payload.get("teamid") == str(team_id)]

    async def event_types(self, team_id: str | uuid.UUID) -> list[str]:
        return [e["type"] for e in await self.events(team_id)]

    async def events_of(self, team_id: str | uuid.UUID, event_type: str) -> list[dict[str, Any]]:
        return [e for e in await self.events(team_id) if e["type"] == event_type]

    # -- API shortcuts ----------------------------------------------------------
    async def team(
        self, owner: uuid.UUID | Person | None = None, *, plan: str = "free", name: str = "Kit"
    ) -> dict[str, Any]:
        owner = owner or uuid.uuid4()
        response = await self.client.post(
            "/v1/teams", json={"name": name, "plan": plan}, headers=self.headers(owner)
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def add(
        self, team: dict[str, Any], person: Person, role: str = "member", *, by: Any = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/teams/{team['id']}/members",
            json={"user_id": str(person.id), "role": role},
            headers=self.headers(by or uuid.UUID(team["owner_id"])),
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def team_with(
        self, *roles: str, plan: str = "free", owner: uuid.UUID | Person | None = None
    ) -> tuple[dict[str, Any], list[Person]]:
        """A new team and one new member per role in ``roles`` (in that order)."""
        team = await self.team(owner, plan=plan)
        people = await self.people(len(roles)) if roles else []
        for person, role in zip(people, roles, strict=True):
            await self.add(team, person, role)
        return team, people

    async def invite(
        self, team: dict[str, Any], email: str, role: str = "member", *, by: Any = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/teams/{team['id']}/invitations",
            json={"email": email, "role": role},
            headers=self.headers(by or uuid.UUID(team["owner_id"])),
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def create_role(
        self, team: dict[str, Any], name: str, permissions: list[str], *, by: Any = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/teams/{team['id']}/roles",
            json={"name": name, "permissions": permissions},
            headers=self.headers(by or uuid.UUID(team["owner_id"])),
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def get(self, path: str, user: Any, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params or None, headers=self.headers(user))

    async def members(self, team: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every member of ``team`` by user id (asked as its owner)."""
        response = await self.get(
            f"/v1/teams/{team['id']}/members", uuid.UUID(team["owner_id"]), limit=200
        )
        assert response.status_code == 200, response.text
        return {m["user_id"]: m for m in response.json()["items"]}

    async def snapshot(self, team: dict[str, Any]) -> dict[str, Any]:
        """Everything the API shows of ``team`` to its owner, plus its outbox count."""
        owner = uuid.UUID(team["owner_id"])
        base = f"/v1/teams/{team['id']}"
        state: dict[str, Any] = {}
        for key, path in [
            ("team", base),
            ("members", f"{base}/members"),
            ("invitations", f"{base}/invitations"),
            ("roles", f"{base}/roles"),
        ]:
            response = await self.get(path, owner)
            assert response.status_code == 200, response.text
            state[key] = response.json()
        state["events"] = len(await self.events(team["id"]))
        return state

    @staticmethod
    def items(body: Any) -> list[Any]:
        """The items of a list response: a page ``{items, next_cursor}`` or a bare list."""
        if isinstance(body, dict):
            return body["items"]  # type: ignore[no-any-return]
        assert isinstance(body, list), body
        return body

    @staticmethod
    def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
        """Assert the contract's error shape; ``code=None`` accepts any snake_case code."""
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert set(error) <= {"code", "message", "details"}, error
        if code is None:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), error
        else:
            assert error["code"] == code, error
        assert isinstance(error["message"], str) and error["message"]
        assert "Traceback" not in response.text
        return error  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def kit_bus(event_bus: Bus) -> Bus:
    return event_bus


@pytest.fixture
def kit(
    team_client: httpx.AsyncClient, signer: Any, team_service: Service, kit_bus: Bus
) -> TeamKit:
    return TeamKit(team_client, signer, team_service, kit_bus)
