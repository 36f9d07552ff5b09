"""PATCH/DELETE a team, transfer its ownership and change its plan (API.md, Teams)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

# --- rename -----------------------------------------------------------------


async def test_owner_renames_the_team(kit: Any) -> None:
    team = await kit.team(name="Old name")
    owner = uuid.UUID(team["owner_id"])
    response = await kit.client.patch(
        f"/v1/teams/{team['id']}", json={"name": "  New name  "}, headers=kit.headers(owner)
    )
    assert response.status_code == 200, response.text
    renamed = response.json()
    assert renamed["name"] == "New name"
    assert renamed["id"] == team["id"]
    assert renamed["owner_id"] == team["owner_id"]
    assert renamed["plan"] == team["plan"]
    assert renamed["member_count"] == 1
    assert renamed["created_at"] == team["created_at"]
    assert datetime.fromisoformat(renamed["updated_at"]) > datetime.fromisoformat(
        team["updated_at"]
    )
    fetched = await kit.get(f"/v1/teams/{team['id']}", owner)
    assert fetched.json() == renamed

    [event] = await kit.events_of(team["id"], "team.updated")
    assert event["data"] == {"team_id": team["id"], "name": "New name"}
    assert event["subject"] == f"team/{team['id']}"
    assert event["actorid"] == str(owner)


async def test_admin_who_is_not_owner_can_rename(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    response = await kit.client.patch(
        f"/v1/teams/{team['id']}", json={"name": "By admin"}, headers=kit.headers(admin)
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "By admin"
    assert response.json()["member_count"] == 2


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_rename(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.client.patch(
        f"/v1/teams/{team['id']}", json={"name": "Nope"}, headers=kit.headers(person)
    )
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "team:update"
    fetched = await kit.get(f"/v1/teams/{team['id']}", person)
    assert fetched.json()["name"] == team["name"]
    assert "team.updated" not in await kit.event_types(team["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": None}, "name"),
        ({"name": 7}, "name"),
        ({"name": "Ok", "plan": "pro"}, "plan"),
        ({"name": "Ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"name": "bad\u0000name"}, "name"),
    ],
)
async def test_bad_rename_is_422_naming_the_field(
    kit: Any, body: dict[str, Any], field: str
) -> None:
    team = await kit.team(name="Keep")
    owner = uuid.UUID(team["owner_id"])
    response = await kit.client.patch(
        f"/v1/teams/{team['id']}", json=body, headers=kit.headers(owner)
    )
    error = kit.error(response, 422, "validation_error")
    assert field in {d["field"] for d in error["details"]}, error
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["name"] == "Keep"
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["plan"] == "free"


async def test_patch_without_name_changes_nothing(kit: Any) -> None:
    """API.md: ``PATCH /v1/teams/{team_id}`` takes ``{name?}``: the name is
    optional, so an empty patch is a valid request that changes nothing."""
    team = await kit.team(name="Unchanged")
    owner = uuid.UUID(team["owner_id"])
    response = await kit.client.patch(
        f"/v1/teams/{team['id']}", json={}, headers=kit.headers(owner)
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Unchanged"
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["name"] == "Unchanged"


@pytest.mark.parametrize("name", ["x" * 255 + " ", "4ö." + "\x85" * 300], ids=["space", "nel"])
async def test_rename_to_a_padded_name_longer_than_documented_is_422(kit: Any, name: str) -> None:
    """Found by the fuzzer: the name was trimmed before its length was checked,
    so a name past the documented maxLength (255) was accepted."""
    team = await kit.team(name="Unchanged")
    owner = uuid.UUID(team["owner_id"])
    response = await kit.client.patch(
        f"/v1/teams/{team['id']}", json={"name": name}, headers=kit.headers(owner)
    )
    error = kit.error(response, 422, "validation_error")
    assert "name" in {d["field"] for d in error["details"]}
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["name"] == "Unchanged"


async def test_rename_without_token_is_401(kit: Any) -> None:
    team = await kit.team()
    response = await kit.client.patch(f"/v1/teams/{team['id']}", json={"name": "x"})
    kit.error(response, 401, "unauthorized")


# --- delete -----------------------------------------------------------------


async def test_owner_deletes_the_team(kit: Any) -> None:
    team, [admin, viewer] = await kit.team_with("admin", "viewer")
    owner = uuid.UUID(team["owner_id"])
    await kit.invite(team, "pending@example.com")
    await kit.create_role(team, "ops", ["team:read"])

    response = await kit.client.delete(f"/v1/teams/{team['id']}", headers=kit.headers(owner))
    assert response.status_code == 204, response.text
    assert response.content == b""

    for who in (owner, admin.id, viewer.id):
        kit.error(await kit.get(f"/v1/teams/{team['id']}", who), 404, "team_not_found")
        kit.error(await kit.get(f"/v1/teams/{team['id']}/members", who), 404, "team_not_found")
        listed = await kit.get("/v1/teams", who)
        assert team["id"] not in {t["id"] for t in listed.json()["items"]}

    [event] = await kit.events_of(team["id"], "team.deleted")
    assert event["data"] == {"team_id": team["id"]}
    assert event["subject"] == f"team/{team['id']}"
    assert event["actorid"] == str(owner)
    # Its members, invitations and roles went with it.
    for table in ("team_members", "invitations", "roles"):
        rows = await kit.rows(f"SELECT 1 FROM {table} WHERE team_id = :t", t=uuid.UUID(team["id"]))
        assert rows == [], table

    # A second delete finds nothing.
    again = await kit.client.delete(f"/v1/teams/{team['id']}", headers=kit.headers(owner))
    kit.error(again, 404, "team_not_found")


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_only_the_owner_can_delete(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.client.delete(f"/v1/teams/{team['id']}", headers=kit.headers(person))
    kit.error(response, 403, "owner_only")
    assert (await kit.get(f"/v1/teams/{team['id']}", person)).status_code == 200
    assert "team.deleted" not in await kit.event_types(team["id"])


# --- transfer ownership -------------------------------------------------------


async def test_transfer_ownership_to_a_member(kit: Any) -> None:
    owner = await kit.person("owner")
    team, [member] = await kit.team_with("member", owner=owner)
    response = await kit.client.post(
        f"/v1/teams/{team['id']}/transfer-ownership",
        json={"user_id": str(member.id)},
        headers=kit.headers(owner),
    )
    assert response.status_code == 200, response.text
    transferred = response.json()
    assert transferred["owner_id"] == str(member.id)
    assert transferred["member_count"] == 2
    assert transferred["id"] == team["id"]

    members = await kit.members(transferred)
    assert members[str(member.id)]["role"] == "admin"  # the new owner is an admin
    assert members[str(owner.id)]["role"] == "admin"  # the old one stays admin

    [changed] = await kit.events_of(team["id"], "member.role_changed")
    assert changed["data"] == {
        "team_id": team["id"],
        "user_id": str(member.id),
        "old_role": "member",
        "new_role": "admin",
    }
    [moved] = await kit.events_of(team["id"], "team.ownership_transferred")
    assert moved["data"] == {
        "team_id": team["id"],
        "old_owner_id": str(owner.id),
        "new_owner_id": str(member.id),
    }
    assert moved["subject"] == f"team/{team['id']}"
    types = await kit.event_types(team["id"])
    assert types.index("member.role_changed") < types.index("team.ownership_transferred")

    # The internal membership view agrees.
    mine = await kit.get(f"/internal/v1/teams/{team['id']}/membership", member)
    assert mine.json()["is_owner"] is True
    theirs = await kit.get(f"/internal/v1/teams/{team['id']}/membership", owner)
    assert (theirs.json()["is_owner"], theirs.json()["role"]) == (False, "admin")

    # The new owner cannot leave; the old owner (now a plain admin) can.
    stuck = await kit.client.delete(
        f"/v1/teams/{team['id']}/members/{member.id}", headers=kit.headers(member)
    )
    kit.error(stuck, 409, "owner_cannot_leave")
    left = await kit.client.delete(
        f"/v1/teams/{team['id']}/members/{owner.id}", headers=kit.headers(owner)
    )
    assert left.status_code == 204, left.text
    kit.error(await kit.get(f"/v1/teams/{team['id']}", owner), 404, "team_not_found")
    assert (await kit.get(f"/v1/teams/{team['id']}", member)).json()["member_count"] == 1


async def test_old_owner_loses_ownership_powers(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    owner = uuid.UUID(team["owner_id"])
    response = await kit.client.post(
        f"/v1/teams/{team['id']}/transfer-ownership",
        json={"user_id": str(admin.id)},
        headers=kit.headers(owner),
    )
    assert response.status_code == 200, response.text
    # Already an admin: no role change, just the transfer.
    assert await kit.events_of(team["id"], "member.role_changed") == []
    assert len(await kit.events_of(team["id"], "team.ownership_transferred")) == 1

    denied = await kit.client.delete(f"/v1/teams/{team['id']}", headers=kit.headers(owner))
    kit.error(denied, 403, "owner_only")
    back = await kit.client.post(
        f"/v1/teams/{team['id']}/transfer-ownership",
        json={"user_id": str(owner)},
        headers=kit.headers(owner),
    )
    kit.error(back, 403, "owner_only")
    # The old owner can now be demoted; the new owner cannot.
    demote_old = await kit.client.patch(
        f"/v1/teams/{team['id']}/members/{owner}",
        json={"role": "viewer"},
        headers=kit.headers(admin),
    )
    assert demote_old.status_code == 200, demote_old.text
    assert demote_old.json()["role"] == "viewer"
    demote_new = await kit.client.patch(
        f"/v1/teams/{team['id']}/members/{admin.id}",
        json={"role": "member"},
        headers=kit.headers(admin),
    )
    kit.error(demote_new, 409, "owner_must_be_admin")
    # The new owner has the powers.
    deleted = await kit.client.delete(f"/v1/teams/{team['id']}", headers=kit.headers(admin))
    assert deleted.status_code == 204, deleted.text


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_only_the_owner_can_transfer(kit: Any, role: str) -> None:
    team, [person, other] = await kit.team_with(role, "member")
    response = await kit.client.post(
        f"/v1/teams/{team['id']}/transfer-ownership",
        json={"user_id": str(other.id)},
        headers=kit.headers(person),
    )
    kit.error(response, 403, "owner_only")
    assert (await kit.get(f"/v1/teams/{team['id']}", person)).json()["owner_id"] == team["owner_id"]
    assert (await kit.members(team))[str(other.id)]["role"] == "member"
    assert await kit.events_of(team["id"], "team.ownership_transferred") == []


async def test_transfer_to_a_non_member_is_404_member_not_found(kit: Any) -> None:
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    stranger = await kit.person()  # a known user, but not in the team
    for target in (stranger.id, uuid.uuid4()):
        response = await kit.client.post(
            f"/v1/teams/{team['id']}/transfer-ownership",
            json={"user_id": str(target)},
            headers=kit.headers(owner),
        )
        kit.error(response, 404, "member_not_found")
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["owner_id"] == str(owner)
    assert await kit.events_of(team["id"], "team.ownership_transferred") == []


async def test_transfer_to_oneself_changes_nothing(kit: Any) -> None:
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    response = await kit.client.post(
        f"/v1/teams/{team['id']}/transfer-ownership",
        json={"user_id": str(owner)},
        headers=kit.headers(owner),
    )
    assert response.status_code == 200, response.text
    assert response.json()["owner_id"] == str(owner)
    assert await kit.events_of(team["id"], "team.ownership_transferred") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "user_id"),
        ({"user_id": "nope"}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": str(uuid.uuid4()), "role": "admin"}, "role"),
    ],
)
async def test_bad_transfer_body_is_422(kit: Any, body: dict[str, Any], field: str) -> None:
    team = await kit.team()
    response = await kit.client.post(
        f"/v1/teams/{team['id']}/transfer-ownership",
        json=body,
        headers=kit.headers(uuid.UUID(team["owner_id"])),
    )
    error = kit.error(response, 422, "validation_error")
    assert field in {d["field"] for d in error["details"]}


# --- plan -------------------------------------------------------------------


async def put_plan(kit: Any, team: dict[str, Any], who: Any, plan: Any) -> Any:
    return await kit.client.put(
        f"/v1/teams/{team['id']}/plan", json={"plan": plan}, headers=kit.headers(who)
    )


@pytest.mark.parametrize(
    ("old", "new", "max_members"),
    [
        ("free", "pro", 50),
        ("free", "enterprise", None),
        ("pro", "enterprise", None),
        ("enterprise", "pro", 50),
        ("enterprise", "free", 5),
        ("pro", "free", 5),
    ],
)
async def test_owner_changes_the_plan(
    kit: Any, old: str, new: str, max_members: int | None
) -> None:
    team = await kit.team(plan=old)
    owner = uuid.UUID(team["owner_id"])
    response = await put_plan(kit, team, owner, new)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["plan"] == new
    assert changed["max_members"] == max_members
    assert changed["member_count"] == 1
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json() == changed
    [event] = await kit.events_of(team["id"], "team.plan_changed")
    assert event["data"] == {
        "team_id": team["id"],
        "old_plan": old,
        "new_plan": new,
        "max_members": max_members,
    }


async def test_same_plan_is_a_no_op(kit: Any) -> None:
    team = await kit.team(plan="pro")
    response = await put_plan(kit, team, uuid.UUID(team["owner_id"]), "pro")
    assert response.status_code == 200, response.text
    assert response.json()["plan"] == "pro"
    assert await kit.events_of(team["id"], "team.plan_changed") == []


async def test_admin_who_is_not_owner_can_change_the_plan(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    response = await put_plan(kit, team, admin, "pro")
    assert response.status_code == 200, response.text
    assert response.json()["max_members"] == 50


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_change_the_plan(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    error = kit.error(await put_plan(kit, team, person, "pro"), 403, "permission_denied")
    assert error["details"]["permission"] == "billing:update"
    assert (await kit.get(f"/v1/teams/{team['id']}", person)).json()["plan"] == "free"


async def test_downgrade_below_the_members_is_409(kit: Any) -> None:
    team, _ = await kit.team_with(*["viewer"] * 5, plan="pro")  # 6 members
    owner = uuid.UUID(team["owner_id"])
    error = kit.error(await put_plan(kit, team, owner, "free"), 409, "member_limit_exceeded")
    assert error["details"] == {"plan": "free", "max_members": 5, "taken": 6}
    fetched = (await kit.get(f"/v1/teams/{team['id']}", owner)).json()
    assert (fetched["plan"], fetched["max_members"], fetched["member_count"]) == ("pro", 50, 6)
    assert await kit.events_of(team["id"], "team.plan_changed") == []


async def test_pending_invitations_count_when_downgrading(kit: Any) -> None:
    team, _ = await kit.team_with("member", "member", "member", plan="pro")  # 4 members
    owner = uuid.UUID(team["owner_id"])
    await kit.invite(team, "one@example.com")
    second = await kit.invite(team, "two@example.com")  # 6 seats taken
    error = kit.error(await put_plan(kit, team, owner, "free"), 409, "member_limit_exceeded")
    assert error["details"]["taken"] == 6
    # Revoking one frees its seat: exactly 5 fit on free.
    revoked = await kit.client.delete(
        f"/v1/teams/{team['id']}/invitations/{second['id']}", headers=kit.headers(owner)
    )
    assert revoked.status_code == 204
    response = await put_plan(kit, team, owner, "free")
    assert response.status_code == 200, response.text
    assert response.json()["max_members"] == 5


async def test_downgrade_from_enterprise_with_many_members(kit: Any) -> None:
    team, _ = await kit.team_with(*["viewer"] * 6, plan="enterprise")
    assert team["max_members"] is None
    owner = uuid.UUID(team["owner_id"])
    kit.error(await put_plan(kit, team, owner, "free"), 409, "member_limit_exceeded")
    response = await put_plan(kit, team, owner, "pro")
    assert response.status_code == 200, response.text
    assert response.json()["member_count"] == 7


@pytest.mark.parametrize(
    "body", [{"plan": "platinum"}, {"plan": "FREE"}, {"plan": None}, {}, {"plan": "pro", "x": 1}]
)
async def test_bad_plan_is_422(kit: Any, body: dict[str, Any]) -> None:
    team = await kit.team()
    response = await kit.client.put(
        f"/v1/teams/{team['id']}/plan", json=body, headers=kit.headers(uuid.UUID(team["owner_id"]))
    )
    kit.error(response, 422, "validation_error")
