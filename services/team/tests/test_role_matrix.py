"""Every route of the team service against every built-in role (API.md's matrix),
the owner, and custom roles that hold exactly, or all but, the permission a
route needs. Each case gets a fresh team, so the writes never interfere."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

RESOURCES = ["team", "member", "role", "workspace", "activity", "usage", "billing"]
ACTIONS = ["create", "read", "update", "delete"]
EVERYTHING = frozenset(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
READS = frozenset(f"{r}:read" for r in RESOURCES)
MATRIX = {
    "admin": EVERYTHING,
    "member": READS | {"workspace:create", "workspace:update"},
    "viewer": READS,
}
OWNER_ONLY = "owner"  # routes that need ownership, not a permission
ANY_MEMBER = "any"  # routes every member may call
SELF = "self"  # leaving: the member itself


@dataclass
class Case:
    kit: Any
    team: dict[str, Any]
    actor: Any  # Person, or the owner's uuid
    target: Any  # a viewer of the team
    newcomer: Any  # a known user outside the team
    invitation: dict[str, Any]
    spare_role: str  # a custom role nobody holds

    @property
    def base(self) -> str:
        return f"/v1/teams/{self.team['id']}"

    @property
    def actor_id(self) -> uuid.UUID:
        return getattr(self.actor, "id", self.actor)  # type: ignore[no-any-return]

    def h(self) -> dict[str, str]:
        return self.kit.headers(self.actor)  # type: ignore[no-any-return]


Call = Callable[[Case], Awaitable[httpx.Response]]


async def get_team(c: Case) -> httpx.Response:
    return await c.kit.client.get(c.base, headers=c.h())


async def rename_team(c: Case) -> httpx.Response:
    return await c.kit.client.patch(c.base, json={"name": "Renamed"}, headers=c.h())


async def delete_team(c: Case) -> httpx.Response:
    return await c.kit.client.delete(c.base, headers=c.h())


async def transfer(c: Case) -> httpx.Response:
    return await c.kit.client.post(
        f"{c.base}/transfer-ownership", json={"user_id": str(c.target.id)}, headers=c.h()
    )


async def change_plan(c: Case) -> httpx.Response:
    return await c.kit.client.put(f"{c.base}/plan", json={"plan": "pro"}, headers=c.h())


async def list_members(c: Case) -> httpx.Response:
    return await c.kit.client.get(f"{c.base}/members", headers=c.h())


async def add_member(c: Case) -> httpx.Response:
    return await c.kit.client.post(
        f"{c.base}/members",
        json={"user_id": str(c.newcomer.id), "role": c.spare_role},
        headers=c.h(),
    )


async def change_role(c: Case) -> httpx.Response:
    return await c.kit.client.patch(
        f"{c.base}/members/{c.target.id}", json={"role": c.spare_role}, headers=c.h()
    )


async def remove_member(c: Case) -> httpx.Response:
    return await c.kit.client.delete(f"{c.base}/members/{c.target.id}", headers=c.h())


async def leave(c: Case) -> httpx.Response:
    return await c.kit.client.delete(f"{c.base}/members/{c.actor_id}", headers=c.h())


async def list_invitations(c: Case) -> httpx.Response:
    return await c.kit.client.get(f"{c.base}/invitations", headers=c.h())


async def invite(c: Case) -> httpx.Response:
    return await c.kit.client.post(
        f"{c.base}/invitations",
        json={"email": "matrix@example.com", "role": c.spare_role},
        headers=c.h(),
    )


async def revoke(c: Case) -> httpx.Response:
    return await c.kit.client.delete(f"{c.base}/invitations/{c.invitation['id']}", headers=c.h())


async def list_roles(c: Case) -> httpx.Response:
    return await c.kit.client.get(f"{c.base}/roles", headers=c.h())


async def create_role(c: Case) -> httpx.Response:
    return await c.kit.client.post(
        f"{c.base}/roles", json={"name": "fresh", "permissions": []}, headers=c.h()
    )


async def update_role(c: Case) -> httpx.Response:
    return await c.kit.client.patch(
        f"{c.base}/roles/{c.spare_role}", json={"permissions": []}, headers=c.h()
    )


async def delete_role(c: Case) -> httpx.Response:
    return await c.kit.client.delete(f"{c.base}/roles/{c.spare_role}", headers=c.h())


async def check_self(c: Case) -> httpx.Response:
    return await c.kit.client.get(
        f"{c.base}/permissions/check", params={"permission": "billing:delete"}, headers=c.h()
    )


async def check_other(c: Case) -> httpx.Response:
    return await c.kit.client.get(
        f"{c.base}/permissions/check",
        params={"permission": "team:read", "user_id": str(c.target.id)},
        headers=c.h(),
    )


# name -> (what it needs, call, success status, whether a success publishes an event)
ROUTES: dict[str, tuple[str, Call, int, bool]] = {
    "get_team": (ANY_MEMBER, get_team, 200, False),
    "rename_team": ("team:update", rename_team, 200, True),
    "delete_team": (OWNER_ONLY, delete_team, 204, True),
    "transfer_ownership": (OWNER_ONLY, transfer, 200, True),
    "change_plan": ("billing:update", change_plan, 200, True),
    "list_members": ("member:read", list_members, 200, False),
    "add_member": ("member:create", add_member, 201, True),
    "change_member_role": ("member:update", change_role, 200, True),
    "remove_member": ("member:delete", remove_member, 204, True),
    "leave": (SELF, leave, 204, True),
    "list_invitations": ("member:read", list_invitations, 200, False),
    "invite": ("member:create", invite, 201, True),
    "revoke_invitation": ("member:create", revoke, 204, True),
    "list_roles": ("member:read", list_roles, 200, False),
    "create_role": ("role:create", create_role, 201, True),
    "update_role": ("role:update", update_role, 200, True),
    "delete_role": ("role:delete", delete_role, 204, True),
    "check_self": (ANY_MEMBER, check_self, 200, False),
    "check_other": ("member:read", check_other, 200, False),
}
PERMISSION_ROUTES = [n for n, (need, *_) in ROUTES.items() if ":" in need]


async def setup(kit: Any, role: str | None, permissions: frozenset[str] | None = None) -> Case:
    """A fresh team; the actor has ``role`` (None: the owner; "custom": a custom
    role with ``permissions``), plus a viewer, an outsider, an invitation and
    an unused custom role that grants nothing."""
    team = await kit.team(plan="free")
    owner = uuid.UUID(team["owner_id"])
    target, newcomer, actor = await kit.people(3)
    await kit.add(team, target, "viewer")
    if role is None:
        actor = owner
    elif role == "custom":
        await kit.create_role(team, "tailored", sorted(permissions or ()))
        await kit.add(team, actor, "tailored")
    else:
        await kit.add(team, actor, role)
    invitation = await kit.invite(team, f"pending-{uuid.uuid4().hex[:8]}@example.com")
    # Granting nothing, it is assignable by anyone allowed to assign roles at
    # all (nobody may grant permissions they do not hold themselves).
    await kit.create_role(team, "spare", [])
    return Case(kit, team, actor, target, newcomer, invitation, "spare")


async def assert_outcome(
    case: Case, name: str, allowed: bool, *, denied_code: str = "permission_denied"
) -> None:
    need, call, success, publishes = ROUTES[name]
    kit = case.kit
    before = await kit.snapshot(case.team)
    response = await call(case)
    if allowed:
        assert response.status_code == success, (name, response.text)
        if publishes:
            assert len(await kit.events(case.team["id"])) > before["events"], name
        else:
            assert len(await kit.events(case.team["id"])) == before["events"], name
    else:
        error = kit.error(response, 403, denied_code)
        if denied_code == "permission_denied" and "details" in error:
            assert error["details"]["permission"] == need
        assert await kit.snapshot(case.team) == before, name


def expected(role: str, name: str) -> bool:
    need = ROUTES[name][0]
    if need == OWNER_ONLY:
        return False  # no role gives ownership powers
    if need in (ANY_MEMBER, SELF):
        return True
    return need in MATRIX[role]


@pytest.mark.parametrize("name", list(ROUTES))
@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_built_in_role_matrix(kit: Any, role: str, name: str) -> None:
    case = await setup(kit, role)
    need = ROUTES[name][0]
    await assert_outcome(
        case,
        name,
        expected(role, name),
        denied_code="owner_only" if need == OWNER_ONLY else "permission_denied",
    )


@pytest.mark.parametrize("name", [n for n in ROUTES if n != "leave"])
async def test_owner_may_call_every_route(kit: Any, name: str) -> None:
    case = await setup(kit, None)
    await assert_outcome(case, name, True)


async def test_owner_cannot_leave(kit: Any) -> None:
    case = await setup(kit, None)
    before = await kit.snapshot(case.team)
    kit.error(await leave(case), 409, "owner_cannot_leave")
    assert await kit.snapshot(case.team) == before


@pytest.mark.parametrize("name", PERMISSION_ROUTES)
async def test_custom_role_with_exactly_the_permission(kit: Any, name: str) -> None:
    need = ROUTES[name][0]
    case = await setup(kit, "custom", frozenset({need}))
    await assert_outcome(case, name, True)


@pytest.mark.parametrize("name", PERMISSION_ROUTES)
async def test_custom_role_with_everything_but_the_permission(kit: Any, name: str) -> None:
    need = ROUTES[name][0]
    case = await setup(kit, "custom", EVERYTHING - {need})
    await assert_outcome(case, name, False)


@pytest.mark.parametrize("name", [n for n, (need, *_) in ROUTES.items() if need == OWNER_ONLY])
async def test_every_permission_is_not_ownership(kit: Any, name: str) -> None:
    case = await setup(kit, "custom", EVERYTHING)
    await assert_outcome(case, name, False, denied_code="owner_only")


async def test_a_role_with_no_permissions_can_still_see_the_team_and_leave(kit: Any) -> None:
    for name in ("get_team", "check_self", "leave"):
        case = await setup(kit, "custom", frozenset())
        await assert_outcome(case, name, True)
    for name in PERMISSION_ROUTES:
        case = await setup(kit, "custom", frozenset())
        await assert_outcome(case, name, False)


@pytest.mark.parametrize(
    ("holds", "call"),
    [
        (["member:create", "member:read"], "add_admin"),
        (["member:create", "member:read"], "invite_admin"),
        (["member:update", "member:read"], "promote_self"),
        (["role:create"], "create_mighty_role"),
        (["role:update"], "update_to_mighty_role"),
    ],
)
async def test_nobody_grants_what_they_do_not_hold(kit: Any, holds: list[str], call: str) -> None:
    case = await setup(kit, "custom", frozenset(holds))
    c = case
    requests = {
        "add_admin": lambda: c.kit.client.post(
            f"{c.base}/members",
            json={"user_id": str(c.newcomer.id), "role": "admin"},
            headers=c.h(),
        ),
        "invite_admin": lambda: c.kit.client.post(
            f"{c.base}/invitations",
            json={"email": "mighty@example.com", "role": "admin"},
            headers=c.h(),
        ),
        "promote_self": lambda: c.kit.client.patch(
            f"{c.base}/members/{c.actor_id}", json={"role": "admin"}, headers=c.h()
        ),
        "create_mighty_role": lambda: c.kit.client.post(
            f"{c.base}/roles",
            json={"name": "mighty", "permissions": ["billing:delete"]},
            headers=c.h(),
        ),
        "update_to_mighty_role": lambda: c.kit.client.patch(
            f"{c.base}/roles/{c.spare_role}", json={"permissions": ["team:delete"]}, headers=c.h()
        ),
    }
    before = await kit.snapshot(case.team)
    response = await requests[call]()
    error = kit.error(response, 403, "cannot_grant")
    assert error["details"]["missing"]
    assert await kit.snapshot(case.team) == before
