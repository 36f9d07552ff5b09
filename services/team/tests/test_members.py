"""Members of a team: list, add, change role, remove, leave; seats and their races."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from agenthq_common.events import registry
from agenthq_common.testing.plugin import eventually

MEMBER_FIELDS = {"team_id", "user_id", "email", "name", "role", "joined_at"}


def members_path(team: dict[str, Any], user_id: Any = None) -> str:
    base = f"/v1/teams/{team['id']}/members"
    return base if user_id is None else f"{base}/{user_id}"


# --- list ---------------------------------------------------------------------


async def test_list_shows_email_and_name_from_user_events(kit: Any) -> None:
    owner = await kit.person("owner")
    team, [member, viewer] = await kit.team_with("member", "viewer", owner=owner)
    response = await kit.get(members_path(team), owner)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    items = page["items"]
    assert [m["user_id"] for m in items] == sorted(str(p.id) for p in (owner, member, viewer))
    by_id = {m["user_id"]: m for m in items}
    for person, role in ((owner, "admin"), (member, "member"), (viewer, "viewer")):
        got = by_id[str(person.id)]
        assert set(got) == MEMBER_FIELDS
        assert got["team_id"] == team["id"]
        assert (got["email"], got["name"], got["role"]) == (person.email, person.name, role)
        assert got["joined_at"].endswith("Z") or got["joined_at"].endswith("+00:00")


async def test_unknown_user_is_listed_with_null_email_and_name(kit: Any) -> None:
    team = await kit.team()  # the owner never registered with the gateway's events
    [only] = (await kit.get(members_path(team), uuid.UUID(team["owner_id"]))).json()["items"]
    assert only["user_id"] == team["owner_id"]
    assert (only["email"], only["name"], only["role"]) == (None, None, "admin")


async def test_user_updated_event_renames_the_member(kit: Any) -> None:
    team, [person] = await kit.team_with("member")
    new_email = f"renamed-{uuid.uuid4().hex[:8]}@Example.com"
    await kit.bus.publish(
        registry.create(
            "user.updated",
            {"user_id": person.id, "email": new_email, "name": "Renamed"},
            source="agenthq/gateway",
            subject=f"user/{person.id}",
        )
    )

    async def renamed() -> bool:
        member = (await kit.members(team))[str(person.id)]
        return member["name"] == "Renamed" and member["email"] == new_email.lower()

    await eventually(renamed, within=15.0)


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
async def test_every_built_in_role_can_list_members(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.get(members_path(team), person)
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 2


async def test_list_pagination(kit: Any) -> None:
    team, people = await kit.team_with(*["viewer"] * 6, plan="pro")  # 7 members
    owner = uuid.UUID(team["owner_id"])
    expected = sorted([team["owner_id"], *(str(p.id) for p in people)])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await kit.get(members_path(team), owner, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        seen.extend(m["user_id"] for m in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert pages < 10
    assert pages == 3
    assert seen == expected

    exact = await kit.get(members_path(team), owner, limit=7)
    assert exact.json()["next_cursor"] is None
    assert [m["user_id"] for m in exact.json()["items"]] == expected
    one = await kit.get(members_path(team), owner, limit=1)
    assert [m["user_id"] for m in one.json()["items"]] == expected[:1]
    assert one.json()["next_cursor"]


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"limit": 0}, "validation_error", "limit"),
        ({"limit": 201}, "validation_error", "limit"),
        ({"limit": "x"}, "validation_error", "limit"),
        ({"cursor": "garbage!!"}, "invalid_cursor", "cursor"),
        ({"cursor": "eyJ0IjoxfQ"}, "invalid_cursor", "cursor"),  # {"t":1}
        ({"cursor": "eyJpZCI6Im5vcGUifQ"}, "invalid_cursor", "cursor"),  # {"id":"nope"}
    ],
)
async def test_bad_list_parameters_are_422(
    kit: Any, params: dict[str, Any], code: str, field: str
) -> None:
    team = await kit.team()
    response = await kit.get(members_path(team), uuid.UUID(team["owner_id"]), **params)
    error = kit.error(response, 422, code)
    assert field in {d["field"] for d in error["details"]}


# --- add ----------------------------------------------------------------------


async def test_add_by_user_id(kit: Any) -> None:
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    person = await kit.person()
    response = await kit.client.post(
        members_path(team),
        json={"user_id": str(person.id), "role": "viewer"},
        headers=kit.headers(owner),
    )
    assert response.status_code == 201, response.text
    added = response.json()
    assert set(added) == MEMBER_FIELDS
    assert added["team_id"] == team["id"]
    assert added["user_id"] == str(person.id)
    assert (added["email"], added["name"], added["role"]) == (person.email, person.name, "viewer")
    assert (await kit.members(team))[str(person.id)] == added
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["member_count"] == 2
    # The new member sees the team.
    assert (await kit.get(f"/v1/teams/{team['id']}", person)).status_code == 200

    events = await kit.events_of(team["id"], "member.added")
    assert events[-1]["data"] == {
        "team_id": team["id"],
        "user_id": str(person.id),
        "role": "viewer",
    }
    assert events[-1]["subject"] == f"member/{person.id}"
    assert events[-1]["actorid"] == str(owner)


async def test_add_by_email_is_case_insensitive_and_role_defaults_to_member(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    local, domain = person.email.split("@")
    response = await kit.client.post(
        members_path(team),
        json={"email": f"{local.upper()}@{domain.upper()}"},
        headers=kit.headers(uuid.UUID(team["owner_id"])),
    )
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == str(person.id)
    assert response.json()["role"] == "member"


async def test_admin_who_is_not_owner_can_add(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    person = await kit.person()
    added = await kit.add(team, person, "admin", by=admin)
    assert added["role"] == "admin"


async def test_add_with_a_custom_role(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "auditor", ["activity:read"])
    person = await kit.person()
    assert (await kit.add(team, person, "auditor"))["role"] == "auditor"


async def test_add_unknown_user_is_404_user_not_found(kit: Any) -> None:
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    for body in ({"user_id": str(uuid.uuid4())}, {"email": "nobody-at-all@example.com"}):
        response = await kit.client.post(members_path(team), json=body, headers=kit.headers(owner))
        kit.error(response, 404, "user_not_found")
    assert len(await kit.members(team)) == 1
    assert await kit.events_of(team["id"], "member.added") != []  # only the owner's
    assert len(await kit.events_of(team["id"], "member.added")) == 1


async def test_add_twice_is_409_already_member(kit: Any) -> None:
    owner = await kit.person("owner")
    team, [person] = await kit.team_with("viewer", owner=owner)
    for body in (
        {"user_id": str(person.id), "role": "admin"},
        {"email": person.email},
        {"user_id": str(owner.id)},
    ):
        response = await kit.client.post(members_path(team), json=body, headers=kit.headers(owner))
        kit.error(response, 409, "already_member")
    members = await kit.members(team)
    assert members[str(person.id)]["role"] == "viewer"
    assert len(members) == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"role": "member"},
        {"user_id": str(uuid.uuid4()), "email": "both@example.com"},
        {"user_id": None, "email": None},
        {"user_id": "not-a-uuid"},
        {"email": "not-an-email"},
        {"email": "x@example.com", "role": ""},
        {"email": "x@example.com", "role": None},
        {"email": "x@example.com", "colour": "blue"},
    ],
)
async def test_bad_add_body_is_422(kit: Any, body: dict[str, Any]) -> None:
    team = await kit.team()
    response = await kit.client.post(
        members_path(team), json=body, headers=kit.headers(uuid.UUID(team["owner_id"]))
    )
    kit.error(response, 422, "validation_error")


async def test_add_with_unknown_role_is_422_unknown_role(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    for role in ("superuser", "Admin", "ADMIN"):
        response = await kit.client.post(
            members_path(team),
            json={"user_id": str(person.id), "role": role},
            headers=kit.headers(uuid.UUID(team["owner_id"])),
        )
        error = kit.error(response, 422, "unknown_role")
        assert "role" in {d["field"] for d in error["details"]}
    assert str(person.id) not in await kit.members(team)


async def test_custom_role_of_another_team_is_unknown_here(kit: Any) -> None:
    other = await kit.team()
    await kit.create_role(other, "elsewhere", ["team:read"])
    team = await kit.team()
    person = await kit.person()
    response = await kit.client.post(
        members_path(team),
        json={"user_id": str(person.id), "role": "elsewhere"},
        headers=kit.headers(uuid.UUID(team["owner_id"])),
    )
    kit.error(response, 422, "unknown_role")


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_add(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    newcomer = await kit.person()
    response = await kit.client.post(
        members_path(team), json={"user_id": str(newcomer.id)}, headers=kit.headers(person)
    )
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "member:create"
    assert str(newcomer.id) not in await kit.members(team)


async def test_free_plan_stops_at_five_members(kit: Any) -> None:
    team, _ = await kit.team_with("member", "member", "member", "viewer")  # 5 members
    sixth = await kit.person()
    response = await kit.client.post(
        members_path(team),
        json={"user_id": str(sixth.id)},
        headers=kit.headers(uuid.UUID(team["owner_id"])),
    )
    error = kit.error(response, 409, "member_limit_reached")
    assert error["details"] == {"max_members": 5, "taken": 5, "plan": "free"}
    assert len(await kit.members(team)) == 5
    # Upgrading makes room.
    await kit.client.put(
        f"/v1/teams/{team['id']}/plan",
        json={"plan": "pro"},
        headers=kit.headers(uuid.UUID(team["owner_id"])),
    )
    assert (await kit.add(team, sixth))["user_id"] == str(sixth.id)


async def test_pending_invitations_hold_seats(kit: Any) -> None:
    team, _ = await kit.team_with("member", "member", "member")  # 4 members
    owner = uuid.UUID(team["owner_id"])
    invitation = await kit.invite(team, "holds-a-seat@example.com")  # 5 seats
    fifth = await kit.person()
    response = await kit.client.post(
        members_path(team), json={"user_id": str(fifth.id)}, headers=kit.headers(owner)
    )
    error = kit.error(response, 409, "member_limit_reached")
    assert error["details"]["taken"] == 5
    revoked = await kit.client.delete(
        f"/v1/teams/{team['id']}/invitations/{invitation['id']}", headers=kit.headers(owner)
    )
    assert revoked.status_code == 204
    await kit.add(team, fifth)
    assert len(await kit.members(team)) == 5


async def test_a_removed_member_frees_the_seat(kit: Any) -> None:
    team, people = await kit.team_with("member", "member", "member", "member")
    owner = uuid.UUID(team["owner_id"])
    newcomer = await kit.person()
    body = {"user_id": str(newcomer.id)}
    full = await kit.client.post(members_path(team), json=body, headers=kit.headers(owner))
    kit.error(full, 409, "member_limit_reached")
    gone = await kit.client.delete(members_path(team, people[0].id), headers=kit.headers(owner))
    assert gone.status_code == 204
    assert (await kit.add(team, newcomer))["user_id"] == str(newcomer.id)


async def test_enterprise_has_no_member_limit(kit: Any) -> None:
    team, _ = await kit.team_with(*["viewer"] * 6, plan="enterprise")
    assert (await kit.get(f"/v1/teams/{team['id']}", uuid.UUID(team["owner_id"]))).json()[
        "member_count"
    ] == 7


# --- concurrency ----------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
async def test_concurrent_adds_for_the_last_seat(kit: Any, round_: int) -> None:
    team, _ = await kit.team_with("member", "member", "member")  # 4 members, 1 seat left
    owner = uuid.UUID(team["owner_id"])
    first, second = await kit.people(2)
    responses = await asyncio.gather(
        *(
            kit.client.post(
                members_path(team), json={"user_id": str(p.id)}, headers=kit.headers(owner)
            )
            for p in (first, second)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409], [r.text for r in responses]
    [loser] = [r for r in responses if r.status_code == 409]
    kit.error(loser, 409, "member_limit_reached")
    [winner] = [r for r in responses if r.status_code == 201]
    members = await kit.members(team)
    assert len(members) == 5
    assert winner.json()["user_id"] in members
    assert (await kit.get(f"/v1/teams/{team['id']}", owner)).json()["member_count"] == 5
    # Exactly one member.added beyond the four of the setup.
    assert len(await kit.events_of(team["id"], "member.added")) == 5


@pytest.mark.parametrize("round_", range(3))
async def test_concurrent_add_and_invitation_for_the_last_seat(kit: Any, round_: int) -> None:
    team, _ = await kit.team_with("member", "member", "member")
    owner = uuid.UUID(team["owner_id"])
    person = await kit.person()
    add, invite = await asyncio.gather(
        kit.client.post(
            members_path(team), json={"user_id": str(person.id)}, headers=kit.headers(owner)
        ),
        kit.client.post(
            f"/v1/teams/{team['id']}/invitations",
            json={"email": f"race-{uuid.uuid4().hex[:8]}@example.com"},
            headers=kit.headers(owner),
        ),
    )
    assert sorted([add.status_code, invite.status_code]) == [201, 409], (add.text, invite.text)
    loser = add if add.status_code == 409 else invite
    kit.error(loser, 409, "member_limit_reached")
    members = len(await kit.members(team))
    invitations = kit.items((await kit.get(f"/v1/teams/{team['id']}/invitations", owner)).json())
    pending = [i for i in invitations if i["status"] == "pending"]
    assert members + len(pending) == 5


async def test_many_concurrent_adds_never_overfill(kit: Any) -> None:
    team, _ = await kit.team_with("member")  # 2 members, 3 seats left
    owner = uuid.UUID(team["owner_id"])
    people = await kit.people(8)
    responses = await asyncio.gather(
        *(
            kit.client.post(
                members_path(team), json={"user_id": str(p.id)}, headers=kit.headers(owner)
            )
            for p in people
        )
    )
    assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 5
    for r in responses:
        if r.status_code == 409:
            kit.error(r, 409, "member_limit_reached")
    assert len(await kit.members(team)) == 5


# --- change role ------------------------------------------------------------------


async def change_role(kit: Any, team: dict[str, Any], who: Any, target: Any, role: Any) -> Any:
    return await kit.client.patch(
        members_path(team, target), json={"role": role}, headers=kit.headers(who)
    )


async def test_admin_changes_a_members_role(kit: Any) -> None:
    team, [admin, person] = await kit.team_with("admin", "member")
    response = await change_role(kit, team, admin, person.id, "viewer")
    assert response.status_code == 200, response.text
    changed = response.json()
    assert set(changed) == MEMBER_FIELDS
    assert (changed["user_id"], changed["role"], changed["email"]) == (
        str(person.id),
        "viewer",
        person.email,
    )
    assert (await kit.members(team))[str(person.id)]["role"] == "viewer"
    [event] = await kit.events_of(team["id"], "member.role_changed")
    assert event["data"] == {
        "team_id": team["id"],
        "user_id": str(person.id),
        "old_role": "member",
        "new_role": "viewer",
    }
    assert event["subject"] == f"member/{person.id}"
    assert event["actorid"] == str(admin.id)
    # The new role takes effect at once.
    viewer_try = await kit.client.post(
        f"/v1/teams/{team['id']}/invitations",
        json={"email": "x@example.com"},
        headers=kit.headers(person),
    )
    kit.error(viewer_try, 403, "permission_denied")
    promoted = await change_role(kit, team, admin, person.id, "admin")
    assert promoted.json()["role"] == "admin"
    assert (await kit.get(f"/internal/v1/teams/{team['id']}/membership", person)).json()[
        "role"
    ] == "admin"


async def test_same_role_changes_nothing(kit: Any) -> None:
    team, [person] = await kit.team_with("viewer")
    response = await change_role(kit, team, uuid.UUID(team["owner_id"]), person.id, "viewer")
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "viewer"
    assert await kit.events_of(team["id"], "member.role_changed") == []


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_change_roles(kit: Any, role: str) -> None:
    team, [person, other] = await kit.team_with(role, "viewer")
    for target, new in ((other.id, "admin"), (person.id, "admin")):  # not even their own
        error = kit.error(
            await change_role(kit, team, person, target, new), 403, "permission_denied"
        )
        assert error["details"]["permission"] == "member:update"
    members = await kit.members(team)
    assert (members[str(person.id)]["role"], members[str(other.id)]["role"]) == (role, "viewer")


async def test_change_role_errors(kit: Any) -> None:
    team, [person] = await kit.team_with("member")
    owner = uuid.UUID(team["owner_id"])
    kit.error(await change_role(kit, team, owner, person.id, "overlord"), 422, "unknown_role")
    kit.error(await change_role(kit, team, owner, uuid.uuid4(), "viewer"), 404, "member_not_found")
    stranger = await kit.person()
    kit.error(await change_role(kit, team, owner, stranger.id, "viewer"), 404, "member_not_found")
    for body in ({}, {"role": ""}, {"role": None}, {"role": "viewer", "extra": 1}):
        response = await kit.client.patch(
            members_path(team, person.id), json=body, headers=kit.headers(owner)
        )
        kit.error(response, 422, "validation_error")
    bad_path = await kit.client.patch(
        members_path(team, "not-a-uuid"), json={"role": "viewer"}, headers=kit.headers(owner)
    )
    kit.error(bad_path, 422, "validation_error")
    assert (await kit.members(team))[str(person.id)]["role"] == "member"


async def test_owner_cannot_drop_below_admin(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    owner = uuid.UUID(team["owner_id"])
    await kit.create_role(team, "everything", ["member:update", "team:read"])
    for who in (owner, admin.id):
        for role in ("member", "viewer", "everything"):
            response = await change_role(kit, team, who, owner, role)
            kit.error(response, 409, "owner_must_be_admin")
    # Setting the owner to admin again is fine (no change).
    same = await change_role(kit, team, admin, owner, "admin")
    assert same.status_code == 200
    assert (await kit.members(team))[str(owner)]["role"] == "admin"
    assert await kit.events_of(team["id"], "member.role_changed") == []


async def test_last_admin_cannot_be_reached_through_the_api(kit: Any) -> None:
    """The owner is always an admin (it cannot be demoted or removed), so every
    team always has an admin and ``last_admin`` never shows through the API:
    demoting or removing any non-owner admin leaves the owner."""
    team, [admin] = await kit.team_with("admin")
    owner = uuid.UUID(team["owner_id"])
    demoted = await change_role(kit, team, admin, admin.id, "member")  # self-demotion
    assert demoted.status_code == 200, demoted.text
    kit.error(await change_role(kit, team, owner, owner, "member"), 409, "owner_must_be_admin")
    left_alone = await kit.client.delete(members_path(team, owner), headers=kit.headers(owner))
    kit.error(left_alone, 409, "owner_cannot_leave")
    admins = [m for m in (await kit.members(team)).values() if m["role"] == "admin"]
    assert [m["user_id"] for m in admins] == [str(owner)]


async def test_last_admin_guard_in_a_state_only_the_database_can_make(kit: Any) -> None:
    """``last_admin`` guards a state the API cannot reach: an owner that is not
    an admin (written straight to the database here). Then the only admin can
    neither demote themselves nor leave."""
    team, [admin] = await kit.team_with("admin")
    owner = uuid.UUID(team["owner_id"])
    await kit.execute(
        "UPDATE team_members SET role = 'viewer' WHERE team_id = :t AND user_id = :u",
        t=uuid.UUID(team["id"]),
        u=owner,
    )
    kit.error(await change_role(kit, team, admin, admin.id, "member"), 409, "last_admin")
    leave = await kit.client.delete(members_path(team, admin.id), headers=kit.headers(admin))
    kit.error(leave, 409, "last_admin")
    assert (await kit.members(team))[str(admin.id)]["role"] == "admin"


# --- remove and leave ---------------------------------------------------------------


async def test_admin_removes_a_member(kit: Any) -> None:
    team, [admin, person] = await kit.team_with("admin", "member")
    response = await kit.client.delete(members_path(team, person.id), headers=kit.headers(admin))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert str(person.id) not in await kit.members(team)
    kit.error(await kit.get(f"/v1/teams/{team['id']}", person), 404, "team_not_found")
    [event] = await kit.events_of(team["id"], "member.removed")
    assert event["data"] == {"team_id": team["id"], "user_id": str(person.id), "role": "member"}
    assert event["subject"] == f"member/{person.id}"
    assert event["actorid"] == str(admin.id)
    # A second removal finds nobody.
    again = await kit.client.delete(members_path(team, person.id), headers=kit.headers(admin))
    kit.error(again, 404, "member_not_found")


async def test_admin_removes_another_admin(kit: Any) -> None:
    team, [first, second] = await kit.team_with("admin", "admin")
    response = await kit.client.delete(members_path(team, second.id), headers=kit.headers(first))
    assert response.status_code == 204, response.text
    [event] = await kit.events_of(team["id"], "member.removed")
    assert event["data"]["role"] == "admin"


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_remove_others(kit: Any, role: str) -> None:
    team, [person, other] = await kit.team_with(role, "viewer")
    response = await kit.client.delete(members_path(team, other.id), headers=kit.headers(person))
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "member:delete"
    assert str(other.id) in await kit.members(team)
    assert await kit.events_of(team["id"], "member.removed") == []


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
async def test_a_member_leaves(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    response = await kit.client.delete(members_path(team, person.id), headers=kit.headers(person))
    assert response.status_code == 204, response.text
    assert str(person.id) not in await kit.members(team)
    kit.error(await kit.get(f"/v1/teams/{team['id']}", person), 404, "team_not_found")
    listed = await kit.get("/v1/teams", person)
    assert team["id"] not in {t["id"] for t in listed.json()["items"]}
    [event] = await kit.events_of(team["id"], "member.removed")
    assert event["data"] == {"team_id": team["id"], "user_id": str(person.id), "role": role}
    assert event["actorid"] == str(person.id)


async def test_owner_cannot_leave_or_be_removed(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    owner = uuid.UUID(team["owner_id"])
    for who in (owner, admin.id):
        response = await kit.client.delete(members_path(team, owner), headers=kit.headers(who))
        kit.error(response, 409, "owner_cannot_leave")
    assert str(owner) in await kit.members(team)
    assert await kit.events_of(team["id"], "member.removed") == []


async def test_remove_unknown_member_is_404(kit: Any) -> None:
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    stranger = await kit.person()
    for target in (uuid.uuid4(), stranger.id):
        response = await kit.client.delete(members_path(team, target), headers=kit.headers(owner))
        kit.error(response, 404, "member_not_found")


async def test_two_known_users_with_one_email_is_not_a_500(kit: Any) -> None:
    """The users table is a read model fed by events that may arrive out of
    order (EVENTS.md): user 1 moves from address A to B and user 2 signs up
    with A, but user 2's event is seen first. Until user 1's update arrives
    two users share A; adding, or inviting, by A must still answer in the
    contract (a 4xx, or the right user), never a 500."""
    first, second = await kit.people(2)
    shared = first.email
    await kit.announce("user.registered", second.id, email=shared, name="Second")

    async def both_share_it() -> bool:
        rows = await kit.rows("SELECT id FROM users WHERE email = :e", e=shared)
        return len(rows) == 2

    await eventually(both_share_it, within=15.0)
    team = await kit.team()
    owner = uuid.UUID(team["owner_id"])
    added = await kit.client.post(
        members_path(team), json={"email": shared}, headers=kit.headers(owner)
    )
    assert added.status_code < 500, added.text
    invited = await kit.client.post(
        f"/v1/teams/{team['id']}/invitations", json={"email": shared}, headers=kit.headers(owner)
    )
    assert invited.status_code < 500, invited.text
