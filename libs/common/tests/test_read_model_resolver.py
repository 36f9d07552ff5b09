"""``ReadModelResolver``: memberships from a service's local read model (the
``rm_*`` tables), with the read-your-writes fallback to a REAL team service
(served by uvicorn on a free port) when the read model has never heard of the
(team, user) pair."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import insert

from agenthq_common.auth import CurrentUser
from agenthq_common.authz import ALL_PERMISSIONS, BUILT_IN_ROLES, Membership
from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.events import Actor, registry
from agenthq_common.membership import ReadModelResolver, rm_members, rm_roles, rm_teams
from agenthq_common.service import Service
from agenthq_common.testing.infra import Infrastructure, delete_bus_namespace
from agenthq_common.testing.plugin import Databases, eventually
from agenthq_common.testing.tokens import TestSigner
from agenthq_team.main import bootstrap
from agenthq_team.settings import TeamSettings

# Own databases and broker namespace: the e2e stack of the same run uses
# databases.fresh("team") / ("activity") and the run's namespace.
DB_SUFFIX = "_rmresolver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the real team service ------------------------------------------------------


@dataclass
class RunningTeam:
    service: Service
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        if self.task.done():
            return
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=30)


@asynccontextmanager
async def serve_team(settings: TeamSettings, signer: TestSigner) -> AsyncIterator[RunningTeam]:
    service = bootstrap(settings, key_source=signer.keys)
    app = service.create_app()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    running = RunningTeam(service, server, task, f"http://127.0.0.1:{port}")
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("team service exited during startup")
            assert loop.time() < deadline, "team service did not start within 30 s"
            await asyncio.sleep(0.02)
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
async def team_settings(
    databases: Databases,
    settings_for: Callable[..., Any],
    infra: Infrastructure,
    bus_namespace: str,
) -> AsyncIterator[TeamSettings]:
    namespace = f"{bus_namespace}rmresolver."
    url = await databases.fresh("team", DB_SUFFIX)
    yield settings_for(TeamSettings, database_url=url, bus_namespace=namespace)
    await delete_bus_namespace(infra.broker_url, namespace)


@pytest.fixture(scope="module")
async def team(team_settings: TeamSettings, signer: TestSigner) -> AsyncIterator[RunningTeam]:
    async with serve_team(team_settings, signer) as running:
        yield running


@pytest.fixture
async def team_http(team: RunningTeam) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=team.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
async def rm_db(databases: Databases) -> AsyncIterator[Database]:
    """A migrated activity database: it holds the membership read model."""
    db = Database(await databases.fresh("activity", DB_SUFFIX), service="rmresolvertest")
    yield db
    await db.dispose()


# -- helpers ------------------------------------------------------------------


@dataclass
class Counted:
    """A resolver whose HTTP client counts the requests it sends."""

    resolver: ReadModelResolver
    requests: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.requests)


@asynccontextmanager
async def counted_resolver(team_url: str | None, **kw: Any) -> AsyncIterator[Counted]:
    counted = Counted(resolver=None)  # type: ignore[arg-type]

    async def on_request(request: httpx.Request) -> None:
        counted.requests.append(str(request.url))

    client = httpx.AsyncClient(timeout=2.0, event_hooks={"request": [on_request]})
    counted.resolver = ReadModelResolver(team_url, client=client, **kw)
    try:
        yield counted
    finally:
        await counted.resolver.aclose()


def user_of(user_id: uuid.UUID) -> CurrentUser:
    return CurrentUser(id=user_id, token_id=uuid.uuid4().hex, claims={"sub": str(user_id)})


async def resolve(
    db: Database,
    resolver: ReadModelResolver,
    team_id: uuid.UUID,
    user_id: uuid.UUID,
    token: str,
) -> Membership | None:
    async with db.unit_of_work() as uow:
        return await resolver.resolve(uow.session, team_id, user_of(user_id), token)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def rm_team(
    db: Database, team_id: uuid.UUID, owner_id: uuid.UUID, *, deleted: bool = False
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(rm_teams).values(
                team_id=team_id,
                name="T",
                owner_id=owner_id,
                plan="free",
                max_members=5,
                deleted=deleted,
                changed_at=NOW,
            )
        )


async def rm_member(
    db: Database, team_id: uuid.UUID, user_id: uuid.UUID, role: str, *, active: bool = True
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(rm_members).values(
                team_id=team_id, user_id=user_id, role=role, active=active, changed_at=NOW
            )
        )


async def rm_role(
    db: Database, team_id: uuid.UUID, name: str, permissions: list[str], *, deleted: bool = False
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(rm_roles).values(
                team_id=team_id,
                name=name,
                permissions=permissions,
                deleted=deleted,
                changed_at=NOW,
            )
        )


async def create_team_via_http(
    client: httpx.AsyncClient, signer: TestSigner, owner: uuid.UUID
) -> uuid.UUID:
    response = await client.post(
        "/v1/teams", json={"name": f"rm-{owner.hex[:6]}"}, headers=signer.headers(owner)
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def register_user_with_team_service(
    settings: TeamSettings, infra: Infrastructure, user_id: uuid.UUID
) -> str:
    """Publish ``user.registered`` the way the gateway does; the team service learns the user."""
    email = f"u-{user_id.hex[:8]}@example.com"
    bus = Bus(infra.broker_url, namespace=settings.bus_namespace)
    await bus.connect()
    try:
        await bus.publish(
            registry.create(
                "user.registered",
                {"user_id": user_id, "email": email, "name": "B"},
                source="agenthq/tests",
                actor=Actor(id=user_id),
                subject=f"user/{user_id}",
            )
        )
    finally:
        await bus.close()
    return email


# -- from the read model --------------------------------------------------------


async def test_built_in_roles_and_owner_flag_from_the_read_model(rm_db: Database) -> None:
    team_id, owner, member, viewer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await rm_team(rm_db, team_id, owner)
    await rm_member(rm_db, team_id, owner, "admin")
    await rm_member(rm_db, team_id, member, "member")
    await rm_member(rm_db, team_id, viewer, "viewer")
    async with counted_resolver(None) as c:
        m = await resolve(rm_db, c.resolver, team_id, owner, "t")
        assert m is not None
        assert (m.team_id, m.user_id, m.role, m.is_owner) == (team_id, owner, "admin", True)
        assert m.permissions == ALL_PERMISSIONS

        m = await resolve(rm_db, c.resolver, team_id, member, "t")
        assert m is not None
        assert (m.role, m.is_owner) == ("member", False)
        assert m.permissions == BUILT_IN_ROLES["member"]

        m = await resolve(rm_db, c.resolver, team_id, viewer, "t")
        assert m is not None
        assert (m.role, m.is_owner) == ("viewer", False)
        assert m.permissions == BUILT_IN_ROLES["viewer"]
        assert c.calls == 0


async def test_owner_flag_follows_rm_teams_owner_not_the_role(rm_db: Database) -> None:
    """After a transfer of ownership the new owner is the owner, the old one an admin."""
    team_id, old_owner, new_owner = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await rm_team(rm_db, team_id, new_owner)
    await rm_member(rm_db, team_id, old_owner, "admin")
    await rm_member(rm_db, team_id, new_owner, "admin")
    async with counted_resolver(None) as c:
        old = await resolve(rm_db, c.resolver, team_id, old_owner, "t")
        new = await resolve(rm_db, c.resolver, team_id, new_owner, "t")
    assert old is not None and new is not None
    assert old.is_owner is False
    assert new.is_owner is True


async def test_custom_role_permissions_come_from_rm_roles(rm_db: Database) -> None:
    team_id, other_team, owner, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await rm_team(rm_db, team_id, owner)
    await rm_team(rm_db, other_team, owner)
    await rm_role(rm_db, team_id, "auditor", ["workspace:read", "activity:read"])
    # Same role name in another team: must not leak into this one.
    await rm_role(rm_db, other_team, "auditor", ["billing:update", "team:delete"])
    await rm_member(rm_db, team_id, user, "auditor")
    await rm_member(rm_db, other_team, user, "auditor")
    async with counted_resolver(None) as c:
        m = await resolve(rm_db, c.resolver, team_id, user, "t")
        assert m is not None
        assert m.role == "auditor"
        assert m.permissions == {"workspace:read", "activity:read"}
        assert m.can("activity:read") and not m.can("billing:update")

        other = await resolve(rm_db, c.resolver, other_team, user, "t")
        assert other is not None
        assert other.permissions == {"billing:update", "team:delete"}
        assert c.calls == 0


async def test_a_deleted_custom_role_grants_nothing_but_the_member_stays_a_member(
    rm_db: Database,
) -> None:
    team_id, owner, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await rm_team(rm_db, team_id, owner)
    await rm_role(rm_db, team_id, "auditor", ["workspace:read"], deleted=True)
    await rm_member(rm_db, team_id, user, "auditor")
    async with counted_resolver(None) as c:
        m = await resolve(rm_db, c.resolver, team_id, user, "t")
    assert m is not None
    assert m.role == "auditor"
    assert m.permissions == frozenset()


async def test_an_rm_roles_row_named_like_a_built_in_role_changes_nothing(
    rm_db: Database,
) -> None:
    team_id, owner, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await rm_team(rm_db, team_id, owner)
    await rm_role(rm_db, team_id, "viewer", ["billing:update", "team:delete"])
    await rm_member(rm_db, team_id, user, "viewer")
    async with counted_resolver(None) as c:
        m = await resolve(rm_db, c.resolver, team_id, user, "t")
    assert m is not None
    assert m.permissions == BUILT_IN_ROLES["viewer"]


async def test_removed_member_and_deleted_team_resolve_to_none(rm_db: Database) -> None:
    team_id, owner, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await rm_team(rm_db, team_id, owner)
    await rm_member(rm_db, team_id, owner, "admin")
    await rm_member(rm_db, team_id, gone, "member", active=False)
    deleted_team = uuid.uuid4()
    await rm_team(rm_db, deleted_team, owner, deleted=True)
    await rm_member(rm_db, deleted_team, owner, "admin")
    async with counted_resolver(None) as c:
        assert await resolve(rm_db, c.resolver, team_id, gone, "t") is None
        assert await resolve(rm_db, c.resolver, deleted_team, owner, "t") is None
        assert await resolve(rm_db, c.resolver, team_id, owner, "t") is not None


async def test_unknown_pair_without_a_team_service_is_none(rm_db: Database) -> None:
    async with counted_resolver(None) as c:
        assert await resolve(rm_db, c.resolver, uuid.uuid4(), uuid.uuid4(), "t") is None
        assert c.calls == 0


def test_default_fallback_ttl_is_about_a_second() -> None:
    resolver = ReadModelResolver("http://127.0.0.1:1/")
    assert resolver.fallback_ttl == 1.0
    assert resolver.team_url == "http://127.0.0.1:1"


# -- the read-your-writes fallback (real team service) ---------------------------


async def test_fallback_asks_the_team_service_with_the_callers_token(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)
    async with counted_resolver(team.url) as c:
        m = await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner))
        assert m is not None
        assert (m.team_id, m.user_id, m.role, m.is_owner) == (team_id, owner, "admin", True)
        assert m.permissions == ALL_PERMISSIONS
        assert c.requests == [f"{team.url}/internal/v1/teams/{team_id}/membership"]

        # The caller's own token decides: a stranger is not a member there.
        assert await resolve(rm_db, c.resolver, team_id, stranger, signer.token(stranger)) is None
        assert c.calls == 2


async def test_fallback_with_a_custom_role(
    rm_db: Database,
    team: RunningTeam,
    team_http: httpx.AsyncClient,
    signer: TestSigner,
    team_settings: TeamSettings,
    infra: Infrastructure,
) -> None:
    owner, b = uuid.uuid4(), uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)
    role = await team_http.post(
        f"/v1/teams/{team_id}/roles",
        json={"name": "auditor", "permissions": ["workspace:read", "activity:read"]},
        headers=signer.headers(owner),
    )
    assert role.status_code == 201, role.text
    await register_user_with_team_service(team_settings, infra, b)

    async def added() -> bool:
        response = await team_http.post(
            f"/v1/teams/{team_id}/members",
            json={"user_id": str(b), "role": "auditor"},
            headers=signer.headers(owner),
        )
        if response.status_code == 404:
            assert response.json()["error"]["code"] == "user_not_found", response.text
            return False
        assert response.status_code == 201, response.text
        return True

    await eventually(added, within=15.0, interval=0.1)
    async with counted_resolver(team.url) as c:
        m = await resolve(rm_db, c.resolver, team_id, b, signer.token(b))
    assert m is not None
    assert (m.role, m.is_owner) == ("auditor", False)
    assert m.permissions == {"workspace:read", "activity:read"}


async def test_fallback_answer_is_cached_for_the_ttl(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)
    async with counted_resolver(team.url) as c:
        assert c.resolver.fallback_ttl == 1.0
        first = await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner))
        second = await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner))
        assert first is not None and first == second
        assert c.calls == 1
        # A "no" is cached as well, per (team, user).
        assert await resolve(rm_db, c.resolver, team_id, stranger, signer.token(stranger)) is None
        assert await resolve(rm_db, c.resolver, team_id, stranger, signer.token(stranger)) is None
        assert c.calls == 2

        await asyncio.sleep(1.2)
        third = await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner))
        assert third == first
        assert c.calls == 3


async def test_cached_answer_survives_the_team_service_going_away_until_the_ttl(
    rm_db: Database, team_settings: TeamSettings, signer: TestSigner
) -> None:
    ttl = 2.0  # the default (1 s) is checked above; some margin for stopping a server
    owner = uuid.uuid4()
    async with serve_team(team_settings, signer) as own_team:
        async with httpx.AsyncClient(base_url=own_team.url, timeout=10) as http:
            team_id = await create_team_via_http(http, signer, owner)
        async with counted_resolver(own_team.url, fallback_ttl=ttl) as c:
            token = signer.token(owner)
            asked_at = time.monotonic()
            first = await resolve(rm_db, c.resolver, team_id, owner, token)
            assert first is not None and first.role == "admin"
            assert c.calls == 1

            await own_team.stop()
            # The team service is gone, yet within the TTL the answer stands.
            assert time.monotonic() - asked_at < ttl, "stopping the team service took too long"
            second = await resolve(rm_db, c.resolver, team_id, owner, token)
            assert second == first
            assert c.calls == 1

            # After the TTL the team service is asked again; it is down: None, no exception.
            await asyncio.sleep(max(0.0, asked_at + ttl + 0.1 - time.monotonic()))
            assert await resolve(rm_db, c.resolver, team_id, owner, token) is None
            assert c.calls == 2


async def test_fallback_is_none_when_the_team_service_is_down(
    rm_db: Database, signer: TestSigner
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    user = uuid.uuid4()
    async with counted_resolver(nobody) as c:
        assert await resolve(rm_db, c.resolver, uuid.uuid4(), user, signer.token(user)) is None
        assert c.calls == 1


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500, json={"error": {"code": "internal_error", "message": "x"}}),
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}}),
        httpx.Response(401, json={"error": {"code": "invalid_token", "message": "x"}}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"role": "admin"}),  # missing fields
    ],
    ids=["500", "503", "401", "not-json", "missing-fields"],
)
async def test_fallback_is_none_when_the_team_service_misbehaves(
    rm_db: Database, reply: httpx.Response
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return reply

    resolver = ReadModelResolver(
        "http://team.invalid", client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    try:
        assert await resolve(rm_db, resolver, uuid.uuid4(), uuid.uuid4(), "t") is None
    finally:
        await resolver.aclose()


async def test_fallback_sees_removal_and_deletion_in_the_team_service(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    owner = uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)
    async with counted_resolver(team.url, fallback_ttl=0.2) as c:
        assert await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner)) is not None
        deleted = await team_http.delete(f"/v1/teams/{team_id}", headers=signer.headers(owner))
        assert deleted.status_code == 204, deleted.text
        await asyncio.sleep(0.3)
        assert await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner)) is None
        assert c.calls == 2


# -- the read model wins over the fallback ---------------------------------------


async def test_a_known_row_is_answered_without_asking_the_team_service(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    """The read model says viewer (say, a demotion the team service no longer
    reflects): the read model is what counts, no call is made."""
    owner = uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)
    await rm_team(rm_db, team_id, owner)
    await rm_member(rm_db, team_id, owner, "viewer")
    async with counted_resolver(team.url) as c:
        m = await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner))
        assert m is not None and m.role == "viewer"
        assert m.permissions == BUILT_IN_ROLES["viewer"]
        assert c.calls == 0


async def test_a_removed_member_tombstone_is_never_overridden_by_the_fallback(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    owner = uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)  # the team service: admin
    await rm_team(rm_db, team_id, owner)
    await rm_member(rm_db, team_id, owner, "admin", active=False)
    async with counted_resolver(team.url) as c:
        assert await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner)) is None
        assert c.calls == 0


async def test_a_deleted_team_tombstone_is_never_overridden_by_the_fallback(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    owner = uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)  # the team service: admin
    await rm_team(rm_db, team_id, owner, deleted=True)
    await rm_member(rm_db, team_id, owner, "admin")
    async with counted_resolver(team.url) as c:
        assert await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner)) is None
        assert c.calls == 0


async def test_a_removed_member_tombstone_wins_even_before_the_team_row_arrives(
    rm_db: Database, team: RunningTeam, team_http: httpx.AsyncClient, signer: TestSigner
) -> None:
    """membership.py: "A pair the read model knows (even as removed) is never
    overridden by the fallback" -- also when ``member.removed`` was applied
    before ``team.created`` (events of one team may arrive out of order)."""
    owner = uuid.uuid4()
    team_id = await create_team_via_http(team_http, signer, owner)  # the team service: admin
    await rm_member(rm_db, team_id, owner, "admin", active=False)  # no rm_teams row yet
    async with counted_resolver(team.url) as c:
        assert await resolve(rm_db, c.resolver, team_id, owner, signer.token(owner)) is None
        assert c.calls == 0
