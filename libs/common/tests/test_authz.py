"""The roles and permissions matrix of API.md, and ``require``: the dependency
every team-scoped route uses to answer 404 to non-members and 403 to members
whose role lacks the permission."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agenthq_common.auth import CurrentUser, TokenVerifier
from agenthq_common.authz import (
    ACTIONS,
    ALL_PERMISSIONS,
    BUILT_IN_ROLES,
    READ_ALL,
    RESOURCES,
    Member,
    Membership,
    is_permission,
    permissions_of,
    require,
)
from agenthq_common.http import install_error_handlers
from agenthq_common.testing.tokens import AUDIENCE, ISSUER, TestSigner

EVERY_RESOURCE = ("team", "member", "role", "workspace", "activity", "usage", "billing")
EVERY_ACTION = ("create", "read", "update", "delete")
READS = {f"{r}:read" for r in EVERY_RESOURCE}


# -- the matrix ---------------------------------------------------------------


def test_permissions_are_every_resource_action_pair() -> None:
    assert set(RESOURCES) == set(EVERY_RESOURCE)
    assert set(ACTIONS) == set(EVERY_ACTION)
    assert len(ALL_PERMISSIONS) == 28
    assert {f"{r}:{a}" for r in EVERY_RESOURCE for a in EVERY_ACTION} == ALL_PERMISSIONS
    assert set(READ_ALL) == READS


def test_built_in_roles_are_admin_member_viewer() -> None:
    assert set(BUILT_IN_ROLES) == {"admin", "member", "viewer"}


def test_admin_has_every_permission() -> None:
    admin = BUILT_IN_ROLES["admin"]
    assert len(admin) == 28
    assert set(admin) == {f"{r}:{a}" for r in EVERY_RESOURCE for a in EVERY_ACTION}


def test_member_reads_everything_and_creates_and_updates_workspaces() -> None:
    member = BUILT_IN_ROLES["member"]
    assert set(member) == READS | {"workspace:create", "workspace:update"}
    assert len(member) == 9
    # API.md: "read activity and usage" spelled out.
    assert {"activity:read", "usage:read"} <= member
    for denied in (
        "workspace:delete",
        "member:create",
        "member:update",
        "member:delete",
        "role:create",
        "team:update",
        "team:delete",
        "billing:update",
    ):
        assert denied not in member, denied


def test_viewer_only_reads() -> None:
    viewer = BUILT_IN_ROLES["viewer"]
    assert set(viewer) == READS
    assert len(viewer) == 7
    assert not any(p.split(":")[1] != "read" for p in viewer)


@pytest.mark.parametrize(
    "permission", sorted(f"{r}:{a}" for r in EVERY_RESOURCE for a in EVERY_ACTION)
)
def test_is_permission_accepts_every_resource_action(permission: str) -> None:
    assert is_permission(permission)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "workspace",
        "workspace:",
        ":read",
        "workspace:archive",
        "workspaces:read",
        "WORKSPACE:READ",
        "Workspace:read",
        " workspace:read",
        "workspace:read ",
        "workspace:read:extra",
        "workspace.read",
        "*:*",
        "admin",
    ],
)
def test_is_permission_rejects_anything_else(value: str) -> None:
    assert not is_permission(value)


# -- permissions_of -----------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_permissions_of_a_built_in_role(role: str) -> None:
    assert permissions_of(role) == BUILT_IN_ROLES[role]


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_a_built_in_role_cannot_be_redefined_by_a_custom_set(role: str) -> None:
    """A team's custom data (e.g. a stray rm_roles row named "viewer") never
    changes what a built-in role grants."""
    assert permissions_of(role, frozenset()) == BUILT_IN_ROLES[role]
    assert permissions_of(role, frozenset({"billing:delete"})) == BUILT_IN_ROLES[role]


def test_permissions_of_a_custom_role_are_its_own() -> None:
    custom = frozenset({"workspace:read", "activity:read"})
    assert permissions_of("auditor", custom) == custom
    assert permissions_of("auditor", frozenset({"billing:update"})) == {"billing:update"}


def test_a_deleted_or_unknown_custom_role_grants_nothing() -> None:
    assert permissions_of("auditor", None) == frozenset()
    assert permissions_of("auditor") == frozenset()
    assert permissions_of("auditor", frozenset()) == frozenset()


def test_membership_can() -> None:
    m = Membership(
        team_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        role="auditor",
        is_owner=False,
        permissions=frozenset({"activity:read"}),
    )
    assert m.can("activity:read")
    assert not m.can("activity:create")
    assert not m.can("workspace:read")
    empty = Membership(team_id=uuid.uuid4(), user_id=uuid.uuid4(), role="gone", is_owner=False)
    assert not any(empty.can(p) for p in ALL_PERMISSIONS)


# -- require() at definition time -------------------------------------------


@pytest.mark.parametrize(
    "permission", ["workspace:archive", "workspaces:read", "", "admin", "Workspace:Read"]
)
def test_require_rejects_unknown_permissions_when_the_route_is_defined(permission: str) -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        require(permission)


def test_require_accepts_every_known_permission() -> None:
    for permission in ALL_PERMISSIONS:
        assert require(permission) is not None


# -- require() through a FastAPI app ------------------------------------------


@dataclass
class FakeResolver:
    """Memberships from a dict; remembers what it was asked."""

    memberships: dict[tuple[uuid.UUID, uuid.UUID], Membership] = field(default_factory=dict)
    calls: list[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=list)

    def add(
        self,
        team_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str,
        *,
        permissions: frozenset[str] | None = None,
        is_owner: bool = False,
    ) -> Membership:
        m = Membership(
            team_id=team_id,
            user_id=user_id,
            role=role,
            is_owner=is_owner,
            permissions=permissions if permissions is not None else permissions_of(role),
        )
        self.memberships[(team_id, user_id)] = m
        return m

    async def resolve(
        self, session: Any, team_id: uuid.UUID, user: CurrentUser, token: str
    ) -> Membership | None:
        self.calls.append((team_id, user.id, token))
        return self.memberships.get((team_id, user.id))


class FakeDatabase:
    """What ``deps.Uow`` needs: a unit of work with a session (unused by the fake resolver)."""

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Any]:
        yield SimpleNamespace(session=None)


CanCreateWorkspace = require("workspace:create")
CanReadActivity = require("activity:read")


def build_app(resolver: FakeResolver, signer: TestSigner) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.service = SimpleNamespace(
        membership_resolver=resolver,
        verifier=TokenVerifier(signer.keys, issuer=ISSUER, audience=AUDIENCE, algorithm="EdDSA"),
        db=FakeDatabase(),
    )

    @app.post("/v1/teams/{team_id}/workspaces")
    async def create_workspace(member: CanCreateWorkspace) -> dict[str, Any]:
        return {"team_id": str(member.team_id), "role": member.role}

    @app.get("/v1/teams/{team_id}/activity")
    async def activity(member: CanReadActivity) -> dict[str, Any]:
        return {"user_id": str(member.user_id), "owner": member.is_owner}

    @app.get("/v1/teams/{team_id}")
    async def team(member: Member) -> dict[str, Any]:
        return {"role": member.role}

    return app


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
def local_signer() -> TestSigner:
    return TestSigner(kid="authz-test")


@pytest.fixture
async def client(
    resolver: FakeResolver, local_signer: TestSigner
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(resolver, local_signer)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://authz.test") as c:
        yield c


async def test_member_with_the_permission_gets_200(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    team_id, user = uuid.uuid4(), uuid.uuid4()
    resolver.add(team_id, user, "member")
    response = await client.post(
        f"/v1/teams/{team_id}/workspaces", headers=local_signer.headers(user)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"team_id": str(team_id), "role": "member"}


async def test_member_without_the_permission_gets_403_permission_denied(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    team_id, user = uuid.uuid4(), uuid.uuid4()
    resolver.add(team_id, user, "viewer")
    response = await client.post(
        f"/v1/teams/{team_id}/workspaces", headers=local_signer.headers(user)
    )
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == "permission_denied"
    assert isinstance(error["message"], str) and error["message"]
    assert error["details"] == {"permission": "workspace:create", "role": "viewer"}


async def test_non_member_gets_404_team_not_found(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    team_id, other_team, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    resolver.add(other_team, user, "admin")  # a member of another team only
    for method, path in (
        ("POST", f"/v1/teams/{team_id}/workspaces"),
        ("GET", f"/v1/teams/{team_id}/activity"),
        ("GET", f"/v1/teams/{team_id}"),
    ):
        response = await client.request(method, path, headers=local_signer.headers(user))
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "team_not_found"
        # A 404 must not hint at which permission would have been needed.
        assert "details" not in response.json()["error"]


async def test_custom_role_permissions_decide(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    team_id, user = uuid.uuid4(), uuid.uuid4()
    resolver.add(team_id, user, "auditor", permissions=frozenset({"activity:read"}))
    headers = local_signer.headers(user)
    assert (await client.get(f"/v1/teams/{team_id}/activity", headers=headers)).status_code == 200
    denied = await client.post(f"/v1/teams/{team_id}/workspaces", headers=headers)
    assert denied.status_code == 403
    assert denied.json()["error"]["details"] == {
        "permission": "workspace:create",
        "role": "auditor",
    }


async def test_a_custom_role_that_grants_nothing_is_403_not_404(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    """A member whose custom role was deleted is still a member: 403, and the
    plain membership routes still answer."""
    team_id, user = uuid.uuid4(), uuid.uuid4()
    resolver.add(team_id, user, "auditor", permissions=permissions_of("auditor", None))
    headers = local_signer.headers(user)
    response = await client.get(f"/v1/teams/{team_id}/activity", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert (await client.get(f"/v1/teams/{team_id}", headers=headers)).status_code == 200


async def test_resolver_gets_the_path_team_the_token_user_and_the_token(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    team_id, user = uuid.uuid4(), uuid.uuid4()
    resolver.add(team_id, user, "admin", is_owner=True)
    token = local_signer.token(user)
    response = await client.get(
        f"/v1/teams/{team_id}/activity", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": str(user), "owner": True}
    assert resolver.calls == [(team_id, user, token)]


async def test_unauthenticated_is_401_and_never_reaches_the_resolver(
    client: httpx.AsyncClient, resolver: FakeResolver, local_signer: TestSigner
) -> None:
    team_id, user = uuid.uuid4(), uuid.uuid4()
    resolver.add(team_id, user, "admin")
    stranger = TestSigner(kid="authz-test")  # same kid, another key
    for headers in (
        {},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {stranger.token(user)}"},
        {"Authorization": f"Bearer {local_signer.token(user, ttl=-60)}"},
    ):
        response = await client.get(f"/v1/teams/{team_id}/activity", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert "error" in response.json()
    assert resolver.calls == []


async def test_a_team_id_that_is_not_a_uuid_is_422(
    client: httpx.AsyncClient, local_signer: TestSigner
) -> None:
    response = await client.get(
        "/v1/teams/not-a-uuid/activity", headers=local_signer.headers(uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
