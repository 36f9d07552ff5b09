"""Roles: the built-in matrix of API.md, custom roles, and what they allow."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

RESOURCES = ["team", "member", "role", "workspace", "activity", "usage", "billing"]
ACTIONS = ["create", "read", "update", "delete"]
EVERYTHING = sorted(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
READS = sorted(f"{r}:read" for r in RESOURCES)
MATRIX = {
    "admin": EVERYTHING,
    "member": sorted([*READS, "workspace:create", "workspace:update"]),
    "viewer": READS,
}


def roles_path(team: dict[str, Any], name: str | None = None) -> str:
    base = f"/v1/teams/{team['id']}/roles"
    return base if name is None else f"{base}/{name}"


def owner_of(team: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(team["owner_id"])


async def roles_of(kit: Any, team: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = await kit.get(roles_path(team), owner_of(team))
    assert response.status_code == 200, response.text
    return {r["name"]: r for r in kit.items(response.json())}


# --- list -------------------------------------------------------------------------


async def test_built_in_roles_follow_the_matrix(kit: Any) -> None:
    team = await kit.team()
    response = await kit.get(roles_path(team), owner_of(team))
    assert response.status_code == 200, response.text
    roles = kit.items(response.json())
    assert [r["name"] for r in roles] == ["admin", "member", "viewer"]
    for role in roles:
        assert set(role) == {"name", "built_in", "permissions"}
        assert role["built_in"] is True
        assert role["permissions"] == MATRIX[role["name"]]
    assert len(EVERYTHING) == 28
    assert len(roles[0]["permissions"]) == 28


async def test_custom_roles_are_listed_after_the_built_ins(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "zeta", ["usage:read"])
    await kit.create_role(team, "alpha", ["activity:read", "team:read"])
    roles = kit.items((await kit.get(roles_path(team), owner_of(team))).json())
    assert [r["name"] for r in roles] == ["admin", "member", "viewer", "alpha", "zeta"]
    assert roles[3] == {
        "name": "alpha",
        "built_in": False,
        "permissions": ["activity:read", "team:read"],
    }
    # Another team does not see them.
    other = await kit.team()
    assert list(await roles_of(kit, other)) == ["admin", "member", "viewer"]


@pytest.mark.parametrize("role", ["viewer", "member"])
async def test_viewer_and_member_can_list_roles(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.get(roles_path(team), person)
    assert response.status_code == 200, response.text
    assert len(kit.items(response.json())) == 3


# --- create ---------------------------------------------------------------------------


async def test_create_a_custom_role(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    response = await kit.client.post(
        roles_path(team),
        json={
            "name": "  release-manager_2 ",
            "permissions": ["workspace:update", "workspace:create", "workspace:update"],
        },
        headers=kit.headers(admin),
    )
    assert response.status_code == 201, response.text
    role = response.json()
    assert role == {
        "name": "release-manager_2",
        "built_in": False,
        "permissions": ["workspace:create", "workspace:update"],
    }
    assert (await roles_of(kit, team))["release-manager_2"] == role
    [event] = await kit.events_of(team["id"], "role.created")
    assert event["data"] == {
        "team_id": team["id"],
        "name": "release-manager_2",
        "permissions": ["workspace:create", "workspace:update"],
    }
    assert event["subject"] == "role/release-manager_2"
    assert event["actorid"] == str(admin.id)


async def test_a_role_with_no_permissions(kit: Any) -> None:
    team = await kit.team()
    assert (await kit.create_role(team, "nobody", []))["permissions"] == []


async def test_the_same_name_in_two_teams(kit: Any) -> None:
    first, second = await kit.team(), await kit.team()
    await kit.create_role(first, "ops", ["team:read"])
    created = await kit.create_role(second, "ops", ["usage:read"])
    assert created["permissions"] == ["usage:read"]
    assert (await roles_of(kit, first))["ops"]["permissions"] == ["team:read"]


@pytest.mark.parametrize(
    "permissions",
    [
        ["workspace:fly"],
        ["spaceship:read"],
        ["team:read", "team:*"],
        ["*"],
        ["Team:Read"],
        ["team"],
        [""],
        "team:read",
        [1],
        None,
    ],
    ids=repr,
)
async def test_unknown_permission_is_422(kit: Any, permissions: Any) -> None:
    team = await kit.team()
    response = await kit.client.post(
        roles_path(team),
        json={"name": "weird", "permissions": permissions},
        headers=kit.headers(owner_of(team)),
    )
    error = kit.error(response, 422, "validation_error")
    assert "permissions" in " ".join(d["field"] for d in error["details"])
    assert "weird" not in await roles_of(kit, team)


@pytest.mark.parametrize(
    "name",
    ["", "  ", "Ops", "ops team", "1ops", "-ops", "ops!", "x" * 51, "ops/x", "ops.x", None, 5],
    ids=repr,
)
async def test_bad_role_name_is_422(kit: Any, name: Any) -> None:
    team = await kit.team()
    response = await kit.client.post(
        roles_path(team),
        json={"name": name, "permissions": ["team:read"]},
        headers=kit.headers(owner_of(team)),
    )
    error = kit.error(response, 422, "validation_error")
    assert "name" in {d["field"] for d in error["details"]}
    assert list(await roles_of(kit, team)) == ["admin", "member", "viewer"]


async def test_create_body_with_unknown_fields_is_422(kit: Any) -> None:
    team = await kit.team()
    response = await kit.client.post(
        roles_path(team),
        json={"name": "ops", "permissions": [], "built_in": True},
        headers=kit.headers(owner_of(team)),
    )
    kit.error(response, 422, "validation_error")


async def test_a_name_of_fifty_characters_is_accepted(kit: Any) -> None:
    team = await kit.team()
    name = "r" + "x" * 49
    assert (await kit.create_role(team, name, ["team:read"]))["name"] == name


@pytest.mark.parametrize("name", ["admin", "member", "viewer", "ops"])
async def test_duplicate_or_built_in_name_is_409_role_exists(kit: Any, name: str) -> None:
    team = await kit.team()
    await kit.create_role(team, "ops", ["team:read"])
    response = await kit.client.post(
        roles_path(team),
        json={"name": name, "permissions": ["billing:delete"]},
        headers=kit.headers(owner_of(team)),
    )
    kit.error(response, 409, "role_exists")
    roles = await roles_of(kit, team)
    assert roles["ops"]["permissions"] == ["team:read"]
    assert roles[name]["permissions"] != ["billing:delete"]
    assert len(await kit.events_of(team["id"], "role.created")) == 1


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_create_roles(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.client.post(
        roles_path(team), json={"name": "mine", "permissions": []}, headers=kit.headers(person)
    )
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "role:create"


# --- update -----------------------------------------------------------------------------


async def test_update_a_custom_role(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "ops", ["team:read"])
    response = await kit.client.patch(
        roles_path(team, "ops"),
        json={"permissions": ["usage:read", "billing:read", "usage:read"]},
        headers=kit.headers(owner_of(team)),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "ops",
        "built_in": False,
        "permissions": ["billing:read", "usage:read"],
    }
    assert (await roles_of(kit, team))["ops"]["permissions"] == ["billing:read", "usage:read"]
    [event] = await kit.events_of(team["id"], "role.updated")
    assert event["data"] == {
        "team_id": team["id"],
        "name": "ops",
        "permissions": ["billing:read", "usage:read"],
    }
    assert event["subject"] == "role/ops"


@pytest.mark.parametrize("name", ["admin", "member", "viewer"])
async def test_built_in_roles_cannot_be_updated(kit: Any, name: str) -> None:
    team = await kit.team()
    response = await kit.client.patch(
        roles_path(team, name), json={"permissions": []}, headers=kit.headers(owner_of(team))
    )
    kit.error(response, 409, "built_in_role")
    assert (await roles_of(kit, team))[name]["permissions"] == MATRIX[name]


async def test_update_errors(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    await kit.create_role(team, "ops", ["team:read"])
    missing = await kit.client.patch(
        roles_path(team, "ghost"), json={"permissions": []}, headers=kit.headers(owner)
    )
    kit.error(missing, 404, "role_not_found")
    for body in (
        {"permissions": ["team:fly"]},
        {},
        {"name": "renamed", "permissions": []},
        {"permissions": None},
    ):
        response = await kit.client.patch(
            roles_path(team, "ops"), json=body, headers=kit.headers(owner)
        )
        kit.error(response, 422, "validation_error")
    assert (await roles_of(kit, team))["ops"]["permissions"] == ["team:read"]
    # A role of another team is not found here.
    other = await kit.team()
    await kit.create_role(other, "theirs", ["team:read"])
    foreign = await kit.client.patch(
        roles_path(team, "theirs"), json={"permissions": []}, headers=kit.headers(owner)
    )
    kit.error(foreign, 404, "role_not_found")
    assert (await roles_of(kit, other))["theirs"]["permissions"] == ["team:read"]


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_update_roles(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    await kit.create_role(team, "ops", ["team:read"])
    response = await kit.client.patch(
        roles_path(team, "ops"), json={"permissions": EVERYTHING}, headers=kit.headers(person)
    )
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "role:update"
    assert (await roles_of(kit, team))["ops"]["permissions"] == ["team:read"]


# --- delete -----------------------------------------------------------------------------


async def test_delete_an_unused_role(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "ops", ["team:read", "usage:read"])
    response = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner_of(team)))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "ops" not in await roles_of(kit, team)
    [event] = await kit.events_of(team["id"], "role.deleted")
    assert event["data"] == {
        "team_id": team["id"],
        "name": "ops",
        "permissions": ["team:read", "usage:read"],
    }
    assert event["subject"] == "role/ops"
    again = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner_of(team)))
    kit.error(again, 404, "role_not_found")
    # The name can be used again.
    await kit.create_role(team, "ops", [])


async def test_a_role_held_by_a_member_is_in_use(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    await kit.create_role(team, "ops", ["team:read"])
    person = await kit.person()
    await kit.add(team, person, "ops")
    response = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner))
    kit.error(response, 409, "role_in_use")
    assert "ops" in await roles_of(kit, team)
    # Once nobody holds it, it can go.
    changed = await kit.client.patch(
        f"/v1/teams/{team['id']}/members/{person.id}",
        json={"role": "viewer"},
        headers=kit.headers(owner),
    )
    assert changed.status_code == 200
    gone = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner))
    assert gone.status_code == 204, gone.text


async def test_a_role_of_a_pending_invitation_is_in_use(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    await kit.create_role(team, "ops", ["team:read"])
    invitation = await kit.invite(team, "ops-person@example.com", "ops")
    response = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner))
    kit.error(response, 409, "role_in_use")
    revoked = await kit.client.delete(
        f"/v1/teams/{team['id']}/invitations/{invitation['id']}", headers=kit.headers(owner)
    )
    assert revoked.status_code == 204
    gone = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner))
    assert gone.status_code == 204, gone.text


async def test_an_expired_invitation_does_not_hold_a_role(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "ops", ["team:read"])
    invitation = await kit.invite(team, "late@example.com", "ops")
    await kit.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = :id",
        id=uuid.UUID(invitation["id"]),
    )
    gone = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner_of(team)))
    assert gone.status_code == 204, gone.text


async def test_a_role_used_in_another_team_is_not_in_use_here(kit: Any) -> None:
    first, second = await kit.team(), await kit.team()
    for team in (first, second):
        await kit.create_role(team, "ops", ["team:read"])
    await kit.add(second, await kit.person(), "ops")
    gone = await kit.client.delete(roles_path(first, "ops"), headers=kit.headers(owner_of(first)))
    assert gone.status_code == 204, gone.text


@pytest.mark.parametrize("name", ["admin", "member", "viewer"])
async def test_built_in_roles_cannot_be_deleted(kit: Any, name: str) -> None:
    team = await kit.team()
    response = await kit.client.delete(roles_path(team, name), headers=kit.headers(owner_of(team)))
    kit.error(response, 409, "built_in_role")
    assert name in await roles_of(kit, team)


async def test_delete_unknown_role_is_404(kit: Any) -> None:
    team = await kit.team()
    response = await kit.client.delete(
        roles_path(team, "ghost"), headers=kit.headers(owner_of(team))
    )
    kit.error(response, 404, "role_not_found")


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_delete_roles(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    await kit.create_role(team, "ops", [])
    response = await kit.client.delete(roles_path(team, "ops"), headers=kit.headers(person))
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "role:delete"
    assert "ops" in await roles_of(kit, team)


# --- what a custom role allows ---------------------------------------------------------


async def test_a_member_read_only_role_can_list_but_not_invite(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "directory", ["member:read"])
    person = await kit.person()
    await kit.add(team, person, "directory")
    base = f"/v1/teams/{team['id']}"

    assert (await kit.get(f"{base}/members", person)).status_code == 200
    assert (await kit.get(f"{base}/invitations", person)).status_code == 200
    assert (await kit.get(f"{base}/roles", person)).status_code == 200
    assert (await kit.get(base, person)).status_code == 200  # any member sees the team
    invite = await kit.client.post(
        f"{base}/invitations", json={"email": "x@example.com"}, headers=kit.headers(person)
    )
    kit.error(invite, 403, "permission_denied")
    add = await kit.client.post(
        f"{base}/members", json={"user_id": str(uuid.uuid4())}, headers=kit.headers(person)
    )
    kit.error(add, 403, "permission_denied")
    rename = await kit.client.patch(base, json={"name": "x"}, headers=kit.headers(person))
    kit.error(rename, 403, "permission_denied")
    check = await kit.get(f"{base}/permissions/check", person, permission="member:create")
    assert check.json() == {"allowed": False, "role": "directory"}
    check = await kit.get(f"{base}/permissions/check", person, permission="member:read")
    assert check.json() == {"allowed": True, "role": "directory"}


async def test_a_role_without_member_read_cannot_list_members(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "billing-only", ["billing:update"])
    person = await kit.person()
    await kit.add(team, person, "billing-only")
    base = f"/v1/teams/{team['id']}"
    for path in (f"{base}/members", f"{base}/invitations", f"{base}/roles"):
        error = kit.error(await kit.get(path, person), 403, "permission_denied")
        assert error["details"]["permission"] == "member:read"
    # But it can change the plan, which a built-in member cannot.
    plan = await kit.client.put(f"{base}/plan", json={"plan": "pro"}, headers=kit.headers(person))
    assert plan.status_code == 200, plan.text


async def test_updating_a_role_changes_what_its_members_can_do_at_once(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    await kit.create_role(team, "recruiter", ["member:read"])
    await kit.create_role(team, "guest", [])  # grants nothing: anyone may hand it out
    person = await kit.person()
    await kit.add(team, person, "recruiter")
    path = f"/v1/teams/{team['id']}/invitations"

    denied = await kit.client.post(
        path, json={"email": "a@example.com", "role": "guest"}, headers=kit.headers(person)
    )
    kit.error(denied, 403, "permission_denied")
    updated = await kit.client.patch(
        roles_path(team, "recruiter"),
        json={"permissions": ["member:read", "member:create"]},
        headers=kit.headers(owner),
    )
    assert updated.status_code == 200
    allowed = await kit.client.post(
        path, json={"email": "a@example.com", "role": "guest"}, headers=kit.headers(person)
    )
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["invited_by"] == str(person.id)
    # And taking the permission away again takes effect at once too.
    await kit.client.patch(
        roles_path(team, "recruiter"), json={"permissions": []}, headers=kit.headers(owner)
    )
    kit.error(
        await kit.client.post(path, json={"email": "b@example.com"}, headers=kit.headers(person)),
        403,
        "permission_denied",
    )
    kit.error(await kit.get(path, person), 403, "permission_denied")


async def test_a_custom_role_with_role_permissions_manages_roles(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "role-admin", ["role:create", "role:update", "role:delete"])
    person = await kit.person()
    await kit.add(team, person, "role-admin")
    created = await kit.client.post(
        roles_path(team), json={"name": "temp", "permissions": []}, headers=kit.headers(person)
    )
    assert created.status_code == 201, created.text
    patched = await kit.client.patch(
        roles_path(team, "temp"), json={"permissions": ["role:create"]}, headers=kit.headers(person)
    )
    assert patched.status_code == 200, patched.text
    deleted = await kit.client.delete(roles_path(team, "temp"), headers=kit.headers(person))
    assert deleted.status_code == 204, deleted.text
    # Without member:read it cannot list them.
    kit.error(await kit.get(roles_path(team), person), 403, "permission_denied")


# --- races and the list convention -----------------------------------------------------


async def test_concurrent_creates_of_one_name_are_one_201_and_one_409(kit: Any) -> None:
    """Two admins create the same role at once: one wins, the other gets the
    same 409 ``role_exists`` as when they come one after the other (never a 500)."""
    for _ in range(3):
        team = await kit.team()
        headers = kit.headers(owner_of(team))
        responses = await asyncio.gather(
            *(
                kit.client.post(
                    roles_path(team), json={"name": "ops", "permissions": []}, headers=headers
                )
                for _ in range(2)
            )
        )
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        [loser] = [r for r in responses if r.status_code == 409]
        kit.error(loser, 409, "role_exists")
        assert len(await kit.events_of(team["id"], "role.created")) == 1


async def assign_ops(kit: Any, team: dict[str, Any], how: str) -> Any:
    owner = owner_of(team)
    if how == "add_member":
        person = await kit.person()
        return lambda: kit.client.post(
            f"/v1/teams/{team['id']}/members",
            json={"user_id": str(person.id), "role": "ops"},
            headers=kit.headers(owner),
        )
    if how == "invite":
        return lambda: kit.client.post(
            f"/v1/teams/{team['id']}/invitations",
            json={"email": f"ops-{uuid.uuid4().hex[:8]}@example.com", "role": "ops"},
            headers=kit.headers(owner),
        )
    person = await kit.person()
    await kit.add(team, person, "viewer")
    return lambda: kit.client.patch(
        f"/v1/teams/{team['id']}/members/{person.id}",
        json={"role": "ops"},
        headers=kit.headers(owner),
    )


@pytest.mark.parametrize("how", ["add_member", "invite", "change_role"])
async def test_a_role_deleted_while_being_assigned_never_leaves_it_dangling(
    kit: Any, how: str
) -> None:
    """Assigning a custom role and deleting it at the same time: either the
    assignment fails (422 ``unknown_role``) or the delete does (409
    ``role_in_use``); both succeeding leaves a member or invitation with a role
    that no longer exists (no permissions; and a later role of that name would
    silently grant its permissions to them)."""
    for _ in range(3):
        team = await kit.team()
        await kit.create_role(team, "ops", ["team:read", "member:read"])
        assign = await assign_ops(kit, team, how)
        assigned, deleted = await asyncio.gather(
            assign(),
            kit.client.delete(roles_path(team, "ops"), headers=kit.headers(owner_of(team))),
        )
        outcome = (assigned.status_code, deleted.status_code)
        assert outcome in {(201, 409), (200, 409), (422, 204)}, (assigned.text, deleted.text)
        # The invariant: every member and pending invitation holds an existing role.
        roles = set(await roles_of(kit, team))
        for member in (await kit.members(team)).values():
            assert member["role"] in roles, member
        invitations = kit.items(
            (await kit.get(f"/v1/teams/{team['id']}/invitations", owner_of(team))).json()
        )
        for invitation in invitations:
            if invitation["status"] == "pending":
                assert invitation["role"] in roles, invitation


async def test_roles_list_follows_the_list_convention(kit: Any) -> None:
    """API.md, Conventions/Lists: ``{"items": [...], "next_cursor": ...}`` with
    ``?limit=``/``?cursor=`` (as GET /v1/teams and the members list do)."""
    team = await kit.team()
    for i in range(3):
        await kit.create_role(team, f"custom-{i}", [])
    first = await kit.get(roles_path(team), owner_of(team), limit=4)
    assert first.status_code == 200, first.text
    page = first.json()
    assert isinstance(page, dict) and set(page) == {"items", "next_cursor"}, page
    assert len(page["items"]) == 4
    rest = await kit.get(roles_path(team), owner_of(team), limit=4, cursor=page["next_cursor"])
    assert [r["name"] for r in page["items"] + rest.json()["items"]] == [
        "admin",
        "member",
        "viewer",
        "custom-0",
        "custom-1",
        "custom-2",
    ]
    assert rest.json()["next_cursor"] is None
