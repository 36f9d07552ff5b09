"""Invitations: create, list, revoke, accept; tokens stored only as hashes; seats."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

INVITATION_FIELDS = {
    "id",
    "team_id",
    "email",
    "role",
    "invited_by",
    "created_at",
    "expires_at",
    "status",
}


def invitations_path(team: dict[str, Any], invitation_id: Any = None) -> str:
    base = f"/v1/teams/{team['id']}/invitations"
    return base if invitation_id is None else f"{base}/{invitation_id}"


async def accept(kit: Any, token: str, who: Any, **claims: Any) -> Any:
    return await kit.client.post(
        "/v1/invitations/accept", json={"token": token}, headers=kit.headers(who, **claims)
    )


async def revoke(kit: Any, team: dict[str, Any], invitation: dict[str, Any], who: Any) -> Any:
    return await kit.client.delete(
        invitations_path(team, invitation["id"]), headers=kit.headers(who)
    )


async def listed(kit: Any, team: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = await kit.get(invitations_path(team), uuid.UUID(team["owner_id"]))
    assert response.status_code == 200, response.text
    return {i["id"]: i for i in kit.items(response.json())}


def owner_of(team: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(team["owner_id"])


# --- create ---------------------------------------------------------------------


async def test_create_returns_the_token_once(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    response = await kit.client.post(
        invitations_path(team),
        json={"email": "New.Person@Example.COM", "role": "viewer"},
        headers=kit.headers(owner),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == INVITATION_FIELDS | {"token"}
    assert created["team_id"] == team["id"]
    assert created["email"] == "new.person@example.com"
    assert created["role"] == "viewer"
    assert created["invited_by"] == str(owner)
    assert created["status"] == "pending"
    token = created["token"]
    assert isinstance(token, str) and len(token) >= 32
    # Valid for a week by default.
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert timedelta(days=7) - timedelta(minutes=1) <= lifetime <= timedelta(days=7, minutes=1)

    # Listed without its token.
    invitations = await listed(kit, team)
    shown = invitations[created["id"]]
    assert set(shown) == INVITATION_FIELDS
    assert shown == {k: v for k, v in created.items() if k != "token"}
    assert token not in (await kit.get(invitations_path(team), owner)).text

    # Stored only as its SHA-256.
    [row] = await kit.rows("SELECT * FROM invitations WHERE id = :id", id=uuid.UUID(created["id"]))
    assert row.token_hash != token
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in [str(v) for v in row]

    [event] = await kit.events_of(team["id"], "invitation.created")
    assert event["data"] == {
        "invitation_id": created["id"],
        "team_id": team["id"],
        "email": "new.person@example.com",
        "role": "viewer",
        "expires_at": event["data"]["expires_at"],
    }
    assert datetime.fromisoformat(event["data"]["expires_at"]) == datetime.fromisoformat(
        created["expires_at"]
    )
    assert event["subject"] == f"invitation/{created['id']}"
    assert token not in str(event)


async def test_each_invitation_gets_its_own_token(kit: Any) -> None:
    team = await kit.team(plan="pro")
    tokens = {(await kit.invite(team, f"t{i}@example.com"))["token"] for i in range(4)}
    assert len(tokens) == 4


async def test_role_defaults_to_member_and_custom_roles_work(kit: Any) -> None:
    team = await kit.team()
    response = await kit.client.post(
        invitations_path(team), json={"email": "d@example.com"}, headers=kit.headers(owner_of(team))
    )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "member"
    await kit.create_role(team, "support", ["member:read"])
    assert (await kit.invite(team, "s@example.com", "support"))["role"] == "support"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "not-an-email"},
        {"email": None},
        {"email": "x@example.com", "role": ""},
        {"email": "x@example.com", "token": "mine"},
        {"email": "x@example.com", "expires_at": "2030-01-01T00:00:00Z"},
    ],
)
async def test_bad_create_body_is_422(kit: Any, body: dict[str, Any]) -> None:
    team = await kit.team()
    response = await kit.client.post(
        invitations_path(team), json=body, headers=kit.headers(owner_of(team))
    )
    kit.error(response, 422, "validation_error")
    assert await listed(kit, team) == {}


async def test_unknown_role_is_422_unknown_role(kit: Any) -> None:
    team = await kit.team()
    response = await kit.client.post(
        invitations_path(team),
        json={"email": "x@example.com", "role": "wizard"},
        headers=kit.headers(owner_of(team)),
    )
    kit.error(response, 422, "unknown_role")
    assert await listed(kit, team) == {}


async def test_pending_invitation_for_the_same_email_is_409_already_invited(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    first = await kit.invite(team, "twice@example.com")
    again = await kit.client.post(
        invitations_path(team),
        json={"email": "TWICE@example.com", "role": "viewer"},
        headers=kit.headers(owner),
    )
    kit.error(again, 409, "already_invited")
    assert len(await listed(kit, team)) == 1
    # After a revoke the email can be invited again.
    assert (await revoke(kit, team, first, owner)).status_code == 204
    second = await kit.invite(team, "twice@example.com")
    assert second["id"] != first["id"]
    # Other teams are not affected by this team's invitations.
    other = await kit.team()
    await kit.invite(other, "twice@example.com")


async def test_inviting_a_member_is_409_already_member(kit: Any) -> None:
    team, [person] = await kit.team_with("viewer")
    response = await kit.client.post(
        invitations_path(team),
        json={"email": person.email.upper()},
        headers=kit.headers(owner_of(team)),
    )
    kit.error(response, 409, "already_member")


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_member_and_viewer_cannot_invite_but_can_list(kit: Any, role: str) -> None:
    team, [person] = await kit.team_with(role)
    invitation = await kit.invite(team, "someone@example.com")
    response = await kit.client.post(
        invitations_path(team), json={"email": "other@example.com"}, headers=kit.headers(person)
    )
    error = kit.error(response, 403, "permission_denied")
    assert error["details"]["permission"] == "member:create"
    denied = await revoke(kit, team, invitation, person)
    kit.error(denied, 403, "permission_denied")
    shown = await kit.get(invitations_path(team), person)
    assert shown.status_code == 200, shown.text
    [only] = kit.items(shown.json())
    assert only["id"] == invitation["id"]
    assert "token" not in only
    assert only["status"] == "pending"


async def test_invitations_count_toward_the_member_limit(kit: Any) -> None:
    team, _ = await kit.team_with("member", "member")  # 3 members
    owner = owner_of(team)
    await kit.invite(team, "a@example.com")
    await kit.invite(team, "b@example.com")  # 5 seats
    full = await kit.client.post(
        invitations_path(team), json={"email": "c@example.com"}, headers=kit.headers(owner)
    )
    error = kit.error(full, 409, "member_limit_reached")
    assert error["details"] == {"max_members": 5, "taken": 5, "plan": "free"}
    person = await kit.person()
    add = await kit.client.post(
        f"/v1/teams/{team['id']}/members",
        json={"user_id": str(person.id)},
        headers=kit.headers(owner),
    )
    kit.error(add, 409, "member_limit_reached")
    assert len(await listed(kit, team)) == 2


async def test_accepting_when_the_team_is_full_uses_the_held_seat(kit: Any) -> None:
    team, _ = await kit.team_with("member", "member", "member")  # 4 members
    person = await kit.person()
    invitation = await kit.invite(team, person.email)  # 5 seats
    response = await accept(kit, invitation["token"], person)
    assert response.status_code == 200, response.text
    got = await kit.get(f"/v1/teams/{team['id']}", person)
    assert got.json()["member_count"] == 5


# --- list ---------------------------------------------------------------------------


async def test_list_shows_every_status_newest_first(kit: Any) -> None:
    team = await kit.team(plan="pro")
    owner = owner_of(team)
    person = await kit.person()
    accepted = await kit.invite(team, person.email)
    assert (await accept(kit, accepted["token"], person)).status_code == 200
    revoked = await kit.invite(team, "revoked@example.com")
    assert (await revoke(kit, team, revoked, owner)).status_code == 204
    expired = await kit.invite(team, "expired@example.com")
    await kit.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = :id",
        id=uuid.UUID(expired["id"]),
    )
    pending = await kit.invite(team, "pending@example.com")

    response = await kit.get(invitations_path(team), owner)
    assert response.status_code == 200, response.text
    items = kit.items(response.json())
    statuses = {i["id"]: i["status"] for i in items}
    assert statuses == {
        accepted["id"]: "accepted",
        revoked["id"]: "revoked",
        expired["id"]: "expired",
        pending["id"]: "pending",
    }
    assert [i["id"] for i in items] == [pending["id"], expired["id"], revoked["id"], accepted["id"]]
    for item in items:
        assert set(item) == INVITATION_FIELDS


# --- revoke ---------------------------------------------------------------------------


async def test_revoke_then_accept_is_410_invitation_revoked(kit: Any) -> None:
    team, [admin] = await kit.team_with("admin")
    person = await kit.person()
    invitation = await kit.invite(team, person.email)
    response = await revoke(kit, team, invitation, admin)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert (await listed(kit, team))[invitation["id"]]["status"] == "revoked"
    [event] = await kit.events_of(team["id"], "invitation.revoked")
    assert event["data"] == {"invitation_id": invitation["id"], "team_id": team["id"]}
    assert event["subject"] == f"invitation/{invitation['id']}"
    assert event["actorid"] == str(admin.id)

    kit.error(await accept(kit, invitation["token"], person), 410, "invitation_revoked")
    kit.error(await kit.get(f"/v1/teams/{team['id']}", person), 404, "team_not_found")
    # Revoking again is harmless and publishes nothing more.
    assert (await revoke(kit, team, invitation, admin)).status_code == 204
    assert len(await kit.events_of(team["id"], "invitation.revoked")) == 1


async def test_revoke_errors(kit: Any) -> None:
    team = await kit.team()
    owner = owner_of(team)
    missing = await kit.client.delete(
        invitations_path(team, uuid.uuid4()), headers=kit.headers(owner)
    )
    kit.error(missing, 404, "invitation_not_found")
    bad = await kit.client.delete(invitations_path(team, "nope"), headers=kit.headers(owner))
    kit.error(bad, 422, "validation_error")
    # Another team's invitation is not found through this team.
    other = await kit.team()
    theirs = await kit.invite(other, "theirs@example.com")
    response = await kit.client.delete(
        invitations_path(team, theirs["id"]), headers=kit.headers(owner)
    )
    kit.error(response, 404, "invitation_not_found")
    assert (await listed(kit, other))[theirs["id"]]["status"] == "pending"


async def test_revoking_an_accepted_invitation_is_409(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, person.email)
    assert (await accept(kit, invitation["token"], person)).status_code == 200
    kit.error(await revoke(kit, team, invitation, owner_of(team)), 409, "invitation_accepted")
    assert str(person.id) in await kit.members(team)


# --- expiry ---------------------------------------------------------------------------


async def test_expired_invitation_is_410_and_frees_its_seat(kit: Any) -> None:
    team, _ = await kit.team_with("member", "member", "member")  # 4 members
    person = await kit.person()
    invitation = await kit.invite(team, person.email)  # 5 seats
    await kit.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = :id",
        id=uuid.UUID(invitation["id"]),
    )
    kit.error(await accept(kit, invitation["token"], person), 410, "invitation_expired")
    assert str(person.id) not in await kit.members(team)
    assert (await listed(kit, team))[invitation["id"]]["status"] == "expired"
    # Its seat is free again, and the email can be invited anew.
    fresh = await kit.invite(team, person.email)
    assert (await accept(kit, fresh["token"], person)).status_code == 200
    assert len(await kit.members(team)) == 5


# --- accept -----------------------------------------------------------------------------


async def test_accept_with_the_email_from_user_events(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, person.email.upper(), "viewer")
    response = await accept(kit, invitation["token"], person)
    assert response.status_code == 200, response.text
    member = response.json()
    assert set(member) == {"team_id", "user_id", "email", "name", "role", "joined_at"}
    assert member["team_id"] == team["id"]
    assert member["user_id"] == str(person.id)
    assert (member["email"], member["name"], member["role"]) == (
        person.email,
        person.name,
        "viewer",
    )
    assert (await kit.members(team))[str(person.id)] == member
    shown = await kit.get(f"/v1/teams/{team['id']}", person)
    assert shown.status_code == 200
    assert shown.json()["member_count"] == 2
    stored = (await listed(kit, team))[invitation["id"]]
    assert stored["status"] == "accepted"
    [row] = await kit.rows(
        "SELECT accepted_by, accepted_at FROM invitations WHERE id = :id",
        id=uuid.UUID(invitation["id"]),
    )
    assert row.accepted_by == person.id
    assert row.accepted_at is not None

    types = await kit.event_types(team["id"])
    assert types[-2:] == ["invitation.accepted", "member.added"]
    [accepted] = await kit.events_of(team["id"], "invitation.accepted")
    assert accepted["data"] == {
        "invitation_id": invitation["id"],
        "team_id": team["id"],
        "user_id": str(person.id),
    }
    assert accepted["actorid"] == str(person.id)
    added = (await kit.events_of(team["id"], "member.added"))[-1]
    assert added["data"] == {"team_id": team["id"], "user_id": str(person.id), "role": "viewer"}
    assert added["subject"] == f"member/{person.id}"


async def test_accept_with_the_email_claim_before_user_events_arrive(kit: Any) -> None:
    team = await kit.team()
    newcomer = uuid.uuid4()  # the team service has not heard of this user
    invitation = await kit.invite(team, "just-signed-up@example.com", "member")
    response = await accept(kit, invitation["token"], newcomer, email="Just-Signed-Up@Example.com")
    assert response.status_code == 200, response.text
    member = response.json()
    assert member["user_id"] == str(newcomer)
    assert member["role"] == "member"
    assert (member["email"], member["name"]) == (None, None)
    assert (await kit.get(f"/v1/teams/{team['id']}", newcomer)).status_code == 200


async def test_known_email_wins_over_the_token_claim(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, "someone-else@example.com")
    response = await accept(kit, invitation["token"], person, email="someone-else@example.com")
    kit.error(response, 403, "email_mismatch")


async def test_wrong_email_is_403_email_mismatch(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, "intended@example.com")
    kit.error(await accept(kit, invitation["token"], person), 403, "email_mismatch")
    unknown = uuid.uuid4()
    kit.error(await accept(kit, invitation["token"], unknown), 403, "email_mismatch")  # no email
    kit.error(
        await accept(kit, invitation["token"], unknown, email="other@example.com"),
        403,
        "email_mismatch",
    )
    # Still pending; the right person can use it.
    assert (await listed(kit, team))[invitation["id"]]["status"] == "pending"
    ok = await accept(kit, invitation["token"], uuid.uuid4(), email="intended@example.com")
    assert ok.status_code == 200, ok.text


async def test_used_twice_is_410_invitation_used(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, person.email)
    assert (await accept(kit, invitation["token"], person)).status_code == 200
    kit.error(await accept(kit, invitation["token"], person), 410, "invitation_used")
    kit.error(
        await accept(kit, invitation["token"], uuid.uuid4(), email=person.email),
        410,
        "invitation_used",
    )
    assert len(await kit.events_of(team["id"], "invitation.accepted")) == 1
    assert len(await kit.members(team)) == 2


async def test_concurrent_accepts_of_one_token_add_one_member(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, person.email)
    responses = await asyncio.gather(*(accept(kit, invitation["token"], person) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 410, 410], [r.text for r in responses]
    assert len(await kit.members(team)) == 2
    assert len(await kit.events_of(team["id"], "invitation.accepted")) == 1


async def test_unknown_token_is_404(kit: Any) -> None:
    response = await accept(kit, "no-such-token-" + uuid.uuid4().hex, uuid.uuid4())
    kit.error(response, 404, "invitation_not_found")


@pytest.mark.parametrize(
    "body", [{}, {"token": ""}, {"token": None}, {"token": "x" * 513}, {"token": "t", "x": 1}]
)
async def test_bad_accept_body_is_422(kit: Any, body: dict[str, Any]) -> None:
    response = await kit.client.post(
        "/v1/invitations/accept", json=body, headers=kit.headers(uuid.uuid4())
    )
    kit.error(response, 422, "validation_error")


async def test_accept_without_token_is_401(kit: Any) -> None:
    team = await kit.team()
    invitation = await kit.invite(team, "anon@example.com")
    response = await kit.client.post("/v1/invitations/accept", json={"token": invitation["token"]})
    kit.error(response, 401, "unauthorized")
    assert (await listed(kit, team))[invitation["id"]]["status"] == "pending"


async def test_accept_by_someone_already_a_member_is_409(kit: Any) -> None:
    team = await kit.team(plan="pro")
    person = await kit.person()
    invitation = await kit.invite(team, person.email)
    await kit.add(team, person, "viewer")  # added directly meanwhile
    kit.error(await accept(kit, invitation["token"], person), 409, "already_member")
    assert (await kit.members(team))[str(person.id)]["role"] == "viewer"


async def test_accepting_a_custom_role_invitation(kit: Any) -> None:
    team = await kit.team()
    await kit.create_role(team, "reader", ["member:read", "team:read"])
    person = await kit.person()
    invitation = await kit.invite(team, person.email, "reader")
    response = await accept(kit, invitation["token"], person)
    assert response.json()["role"] == "reader"
    mine = await kit.get(f"/internal/v1/teams/{team['id']}/membership", person)
    assert mine.json()["permissions"] == ["member:read", "team:read"]


async def test_accepting_after_the_team_is_deleted_is_404(kit: Any) -> None:
    team = await kit.team()
    person = await kit.person()
    invitation = await kit.invite(team, person.email)
    deleted = await kit.client.delete(
        f"/v1/teams/{team['id']}", headers=kit.headers(owner_of(team))
    )
    assert deleted.status_code == 204
    kit.error(await accept(kit, invitation["token"], person), 404, "invitation_not_found")


async def test_accept_racing_the_teams_deletion_is_never_a_500(kit: Any) -> None:
    """Accept locks the invitation, then the team; deleting the team locks the
    team, then (ON DELETE CASCADE) the invitation. Run together they must still
    answer with the contract's statuses: the delete 204, the accept 200 (it came
    first) or 404 (the team, and its invitation, are gone) — not a deadlock's 500."""
    outcomes = []
    for _ in range(10):
        team = await kit.team()
        person = await kit.person()
        invitation = await kit.invite(team, person.email)
        accepted, deleted = await asyncio.gather(
            accept(kit, invitation["token"], person),
            kit.client.delete(f"/v1/teams/{team['id']}", headers=kit.headers(owner_of(team))),
        )
        outcomes.append((accepted.status_code, deleted.status_code))
    assert all(o in {(200, 204), (404, 204)} for o in outcomes), outcomes


async def test_invitations_list_follows_the_list_convention(kit: Any) -> None:
    """API.md, Conventions/Lists: ``{"items": [...], "next_cursor": ...}`` with
    ``?limit=``/``?cursor=``. Invitations pile up (accepted, revoked, expired
    ones stay listed), so this list needs paging like the members list has."""
    team = await kit.team(plan="pro")
    owner = owner_of(team)
    made = [await kit.invite(team, f"page-{i}@example.com") for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await kit.get(invitations_path(team), owner, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert isinstance(page, dict) and set(page) == {"items", "next_cursor"}, page
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(i["id"] for i in made)
