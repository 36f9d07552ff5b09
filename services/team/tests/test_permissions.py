"""GET /v1/permissions, the permission check, and the internal membership route."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

RESOURCES = ["team", "member", "role", "workspace", "activity", "usage", "billing"]
ACTIONS = ["create", "read", "update", "delete"]
EVERYTHING = sorted(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
READS = sorted(f"{r}:read" for r in RESOURCES)
MATRIX = {
    "admin": set(EVERYTHING),
    "member": {*READS, "workspace:create", "workspace:update"},
    "viewer": set(READS),
}


def check_path(team: dict[str, Any]) -> str:
    return f"/v1/teams/{team['id']}/permissions/check"


def membership_path(team: dict[str, Any]) -> str:
    return f"/internal/v1/teams/{team['id']}/membership"


# --- GET /v1/permissions ------------------------------------------------------------


async def test_permissions_catalogue(kit: Any) -> None:
    response = await kit.get("/v1/permissions", uuid.uuid4())  # any user, no team needed
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"resources"}
    assert body["resources"] == {r: ACTIONS for r in RESOURCES}
    assert list(body["resources"]) == RESOURCES


async def test_permissions_catalogue_needs_a_token(kit: Any) -> None:
    kit.error(await kit.client.get("/v1/permissions"), 401, "unauthorized")


# --- permission check -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_check_for_oneself_follows_the_matrix(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    for permission in EVERYTHING:
        response = await kit.get(check_path(team), person, permission=permission)
        assert response.status_code == 200, response.text
        assert response.json() == {"allowed": permission in MATRIX[role], "role": role}, permission


async def test_check_for_oneself_by_id_needs_no_member_read(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "blind", ["workspace:create"])
    person = await kit.person()
    await kit.add(team, person, "blind")
    for params in (
        {"permission": "workspace:create"},
        {"permission": "workspace:create", "user_id": str(person.id)},
    ):
        response = await kit.get(check_path(team), person, **params)
        assert response.status_code == 200, response.text
        assert response.json() == {"allowed": True, "role": "blind"}


async def test_check_for_another_member(kit: Any) -> None:
    team, [viewer, member] = await kit.team_with("viewer", "member")
    owner = uuid.UUID(team["owner_id"])
    cases = [
        (viewer, owner, "billing:delete", True, "admin"),
        (viewer, member.id, "workspace:create", True, "member"),
        (viewer, member.id, "workspace:delete", False, "member"),
        (member, viewer.id, "team:read", True, "viewer"),
        (member, viewer.id, "team:update", False, "viewer"),
    ]
    for caller, subject, permission, allowed, role in cases:
        response = await kit.get(
            check_path(team), caller, permission=permission, user_id=str(subject)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"allowed": allowed, "role": role}


async def test_check_for_a_custom_role_member(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "ops", ["usage:read", "billing:read"])
    person = await kit.person()
    await kit.add(team, person, "ops")
    owner = uuid.UUID(team["owner_id"])
    for permission, allowed in (("usage:read", True), ("billing:read", True), ("team:read", False)):
        response = await kit.get(
            check_path(team), owner, permission=permission, user_id=str(person.id)
        )
        assert response.json() == {"allowed": allowed, "role": "ops"}


async def test_checking_another_user_without_member_read_is_403(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "blind", ["workspace:create"])
    person = await kit.person()
    await kit.add(team, person, "blind")
    for target in (uuid.UUID(team["owner_id"]), uuid.uuid4()):
        response = await kit.get(
            check_path(team), person, permission="team:read", user_id=str(target)
        )
        kit.error(response, 403, "permission_denied")


async def test_check_for_a_non_member_is_not_allowed_with_no_role(kit: Any) -> None:
    team = await kit.team()
    stranger = await kit.person()
    for target in (stranger.id, uuid.uuid4()):
        response = await kit.get(
            check_path(team),
            uuid.UUID(team["owner_id"]),
            permission="team:read",
            user_id=str(target),
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"allowed": False, "role": None}


@pytest.mark.parametrize(
    "permission", ["team:fly", "spaceship:read", "team", "", "TEAM:READ", "team:read ", "*"]
)
async def test_unknown_permission_is_422(kit: Any, permission: str) -> None:
    team = await kit.team()
    response = await kit.get(check_path(team), uuid.UUID(team["owner_id"]), permission=permission)
    error = kit.error(response, 422, None)
    assert "permission" in {d["field"] for d in error.get("details") or []}


async def test_check_parameter_errors(kit: Any) -> None:
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    missing = await kit.client.get(check_path(team), headers=kit.headers(owner))
    error = kit.error(missing, 422, "validation_error")
    assert "permission" in {d["field"] for d in error["details"]}
    bad_user = await kit.get(check_path(team), owner, permission="team:read", user_id="nope")
    error = kit.error(bad_user, 422, "validation_error")
    assert "user_id" in {d["field"] for d in error["details"]}


async def test_check_by_a_non_member_is_404(kit: Any) -> None:
    team = await kit.team()
    response = await kit.get(check_path(team), uuid.uuid4(), permission="team:read")
    kit.error(response, 404, "team_not_found")
    kit.error(await kit.client.get(check_path(team), params={"permission": "team:read"}), 401)


# --- internal membership --------------------------------------------------------------------


async def test_internal_membership_of_the_owner(kit: Any) -> None:
    team = await kit.team()
    response = await kit.get(membership_path(team), uuid.UUID(team["owner_id"]))
    assert response.status_code == 200, response.text
    assert response.json() == {"role": "admin", "is_owner": True, "permissions": EVERYTHING}


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_internal_membership_of_each_role(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.get(membership_path(team), person)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "role": role,
        "is_owner": False,
        "permissions": sorted(MATRIX[role]),
    }


async def test_internal_membership_of_a_custom_role(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "ops", ["usage:read", "activity:read"])
    person = await kit.person()
    await kit.add(team, person, "ops")
    response = await kit.get(membership_path(team), person)
    assert response.json() == {
        "role": "ops",
        "is_owner": False,
        "permissions": ["activity:read", "usage:read"],
    }


async def test_internal_membership_is_404_for_non_members_and_401_without_token(
    kit: Any,
) -> None:
    team, [person] = await kit.team_with("viewer")
    kit.error(await kit.get(membership_path(team), uuid.uuid4()), 404, "team_not_found")
    kit.error(
        await kit.get(f"/internal/v1/teams/{uuid.uuid4()}/membership", person),
        404,
        "team_not_found",
    )
    kit.error(await kit.client.get(membership_path(team)), 401, "unauthorized")
    # A member who leaves is a non-member at once.
    left = await kit.client.delete(
        f"/v1/teams/{team['id']}/members/{person.id}", headers=kit.headers(person)
    )
    assert left.status_code == 204
    kit.error(await kit.get(membership_path(team), person), 404, "team_not_found")


async def test_internal_route_is_not_in_the_public_openapi(kit: Any) -> None:
    response = await kit.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert not [p for p in paths if p.startswith("/internal")]
    for path in (
        "/v1/teams/{team_id}/members",
        "/v1/teams/{team_id}/members/{user_id}",
        "/v1/teams/{team_id}/invitations",
        "/v1/teams/{team_id}/invitations/{invitation_id}",
        "/v1/invitations/accept",
        "/v1/permissions",
        "/v1/teams/{team_id}/roles",
        "/v1/teams/{team_id}/roles/{name}",
        "/v1/teams/{team_id}/permissions/check",
        "/v1/teams/{team_id}/transfer-ownership",
        "/v1/teams/{team_id}/plan",
    ):
        assert path in paths, path
