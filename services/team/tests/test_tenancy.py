"""Tenancy: a caller who is not a member of a team gets 404 on every route of
it (never 403, never a hint that it exists), and nothing in it changes. That
holds for an admin of another team too, even when they know real ids of B."""

from __future__ import annotations

import uuid
from typing import Any

import pytest


def routes(
    team_id: str, *, member_id: Any, invitation_id: Any, role: str, caller: Any
) -> list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(method, path, json, params) of every team-scoped route."""
    base = f"/v1/teams/{team_id}"
    return [
        ("GET", base, None, None),
        ("PATCH", base, {"name": "Hijacked"}, None),
        ("DELETE", base, None, None),
        ("POST", f"{base}/transfer-ownership", {"user_id": str(caller)}, None),
        ("PUT", f"{base}/plan", {"plan": "enterprise"}, None),
        ("GET", f"{base}/members", None, None),
        ("GET", f"{base}/members", None, {"limit": 1}),
        ("POST", f"{base}/members", {"user_id": str(caller), "role": "admin"}, None),
        ("POST", f"{base}/members", {"email": "intruder@example.com", "role": "admin"}, None),
        ("PATCH", f"{base}/members/{member_id}", {"role": "viewer"}, None),
        ("PATCH", f"{base}/members/{caller}", {"role": "admin"}, None),
        ("DELETE", f"{base}/members/{member_id}", None, None),
        ("DELETE", f"{base}/members/{caller}", None, None),
        ("GET", f"{base}/invitations", None, None),
        ("POST", f"{base}/invitations", {"email": "intruder@example.com"}, None),
        ("DELETE", f"{base}/invitations/{invitation_id}", None, None),
        ("GET", f"{base}/roles", None, None),
        ("POST", f"{base}/roles", {"name": "backdoor", "permissions": ["team:delete"]}, None),
        ("PATCH", f"{base}/roles/{role}", {"permissions": ["billing:delete"]}, None),
        ("DELETE", f"{base}/roles/{role}", None, None),
        ("GET", f"{base}/permissions/check", None, {"permission": "team:read"}),
        (
            "GET",
            f"{base}/permissions/check",
            None,
            {"permission": "team:read", "user_id": str(member_id)},
        ),
        ("GET", f"/internal/v1/teams/{team_id}/membership", None, None),
    ]


def _route_id(route: tuple[str, str, Any, Any]) -> str:
    method, path, body, params = route
    where = path.removeprefix("/v1/teams/T").removeprefix("/internal/v1/teams/T") or "/"
    if path.startswith("/internal"):
        where = "/internal" + where
    query = f"?{'&'.join(params)}" if params else ""
    fields = f" {{{','.join(body)}}}" if body else ""
    return f"{method} {where}{query}{fields}"


ROUTE_IDS = [
    _route_id(r) for r in routes("T", member_id="M", invitation_id="I", role="R", caller="C")
]


async def populated_team(kit: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Team B: an owner, an admin, a viewer, a pending invitation, a custom role in use."""
    team, [_admin, viewer] = await kit.team_with("admin", "viewer", plan="pro")
    await kit.create_role(team, "ops", ["team:read", "member:read"])
    await kit.create_role(team, "spare", ["usage:read"])
    ops = await kit.person()
    await kit.add(team, ops, "ops")
    invitation = await kit.invite(team, f"b-{uuid.uuid4().hex[:8]}@example.com", "ops")
    return team, viewer, invitation


async def call(kit: Any, who: Any, route: tuple[str, str, Any, Any]) -> Any:
    method, path, body, params = route
    return await kit.client.request(
        method, path, json=body, params=params, headers=kit.headers(who)
    )


@pytest.mark.parametrize("index", range(len(ROUTE_IDS)), ids=ROUTE_IDS)
async def test_a_stranger_gets_404_on_every_route(kit: Any, index: int) -> None:
    team, viewer, invitation = await populated_team(kit)
    stranger = await kit.person()  # a known user, in no team
    route = routes(
        team["id"],
        member_id=viewer.id,
        invitation_id=invitation["id"],
        role="spare",
        caller=stranger.id,
    )[index]
    before = await kit.snapshot(team)
    response = await call(kit, stranger, route)
    error = kit.error(response, 404, "team_not_found")
    assert team["name"] not in response.text
    # Same answer as for a team that does not exist at all.
    missing = routes(
        str(uuid.uuid4()),
        member_id=viewer.id,
        invitation_id=invitation["id"],
        role="spare",
        caller=stranger.id,
    )[index]
    assert (await call(kit, stranger, missing)).json()["error"] == error
    assert await kit.snapshot(team) == before


@pytest.mark.parametrize("index", range(len(ROUTE_IDS)), ids=ROUTE_IDS)
async def test_an_admin_of_team_a_gets_404_on_every_route_of_team_b(kit: Any, index: int) -> None:
    team_b, viewer_b, invitation_b = await populated_team(kit)
    team_a, [admin_a] = await kit.team_with("admin", plan="enterprise")
    owner_a = uuid.UUID(team_a["owner_id"])
    before_b = await kit.snapshot(team_b)
    before_a = await kit.snapshot(team_a)
    for who in (owner_a, admin_a.id):
        route = routes(
            team_b["id"],
            member_id=viewer_b.id,
            invitation_id=invitation_b["id"],
            role="spare",
            caller=who,
        )[index]
        kit.error(await call(kit, who, route), 404, "team_not_found")
    assert await kit.snapshot(team_b) == before_b
    assert await kit.snapshot(team_a) == before_a


async def test_team_a_routes_do_not_reach_team_b_resources(kit: Any) -> None:
    """Real ids of B used under A's path: not found in A, untouched in B."""
    team_b, viewer_b, invitation_b = await populated_team(kit)
    team_a = await kit.team()
    owner_a = uuid.UUID(team_a["owner_id"])
    before_b = await kit.snapshot(team_b)
    base = f"/v1/teams/{team_a['id']}"
    h = kit.headers(owner_a)

    kit.error(
        await kit.client.patch(f"{base}/members/{viewer_b.id}", json={"role": "admin"}, headers=h),
        404,
        "member_not_found",
    )
    kit.error(
        await kit.client.delete(f"{base}/members/{viewer_b.id}", headers=h),
        404,
        "member_not_found",
    )
    kit.error(
        await kit.client.delete(f"{base}/invitations/{invitation_b['id']}", headers=h),
        404,
        "invitation_not_found",
    )
    kit.error(
        await kit.client.patch(f"{base}/roles/spare", json={"permissions": []}, headers=h),
        404,
        "role_not_found",
    )
    kit.error(await kit.client.delete(f"{base}/roles/ops", headers=h), 404, "role_not_found")
    kit.error(
        await kit.client.post(
            f"{base}/transfer-ownership", json={"user_id": str(viewer_b.id)}, headers=h
        ),
        404,
        "member_not_found",
    )
    # B's custom role does not exist in A.
    kit.error(
        await kit.client.post(
            f"{base}/invitations", json={"email": "x@example.com", "role": "ops"}, headers=h
        ),
        422,
        "unknown_role",
    )
    check = await kit.client.get(
        f"{base}/permissions/check",
        params={"permission": "team:read", "user_id": str(viewer_b.id)},
        headers=h,
    )
    assert check.json() == {"allowed": False, "role": None}
    # A's lists show nothing of B.
    members_a = (await kit.get(f"{base}/members", owner_a)).json()["items"]
    assert [m["user_id"] for m in members_a] == [str(owner_a)]
    assert kit.items((await kit.get(f"{base}/invitations", owner_a)).json()) == []
    roles_a = kit.items((await kit.get(f"{base}/roles", owner_a)).json())
    assert [r["name"] for r in roles_a] == [
        "admin",
        "member",
        "viewer",
    ]
    assert await kit.snapshot(team_b) == before_b


async def test_list_of_teams_shows_only_the_callers(kit: Any) -> None:
    team_b, viewer_b, _ = await populated_team(kit)
    team_a = await kit.team()
    listed = (await kit.get("/v1/teams", uuid.UUID(team_a["owner_id"]))).json()["items"]
    assert [t["id"] for t in listed] == [team_a["id"]]
    listed_b = (await kit.get("/v1/teams", viewer_b)).json()["items"]
    assert [t["id"] for t in listed_b] == [team_b["id"]]


async def test_a_removed_member_becomes_a_stranger(kit: Any) -> None:
    team, viewer, invitation = await populated_team(kit)
    owner = uuid.UUID(team["owner_id"])
    gone = await kit.client.delete(
        f"/v1/teams/{team['id']}/members/{viewer.id}", headers=kit.headers(owner)
    )
    assert gone.status_code == 204
    for route in routes(
        team["id"],
        member_id=owner,
        invitation_id=invitation["id"],
        role="spare",
        caller=viewer.id,
    ):
        if route[0] == "GET":
            kit.error(await call(kit, viewer, route), 404, "team_not_found")


async def test_every_team_route_needs_a_token(kit: Any) -> None:
    team, viewer, invitation = await populated_team(kit)
    before = await kit.snapshot(team)
    for method, path, body, params in routes(
        team["id"],
        member_id=viewer.id,
        invitation_id=invitation["id"],
        role="spare",
        caller=viewer.id,
    ):
        response = await kit.client.request(method, path, json=body, params=params)
        kit.error(response, 401, "unauthorized")
    assert await kit.snapshot(team) == before
