"""Authorization across real processes: the team service decides who may do
what; the activity service learns it from events (its read model) and, until
the events arrive, from the team service itself (read-your-writes)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agenthq_common.testing.plugin import eventually

from .people import add_member, create_team, sign_up

pytestmark = pytest.mark.e2e


async def activity(gateway: httpx.AsyncClient, team_id: str, who: dict[str, Any]) -> httpx.Response:
    return await gateway.get(f"/v1/teams/{team_id}/activity", headers=who["headers"])


async def activity_actions(
    gateway: httpx.AsyncClient, team_id: str, who: dict[str, Any]
) -> list[tuple[str, str | None]]:
    response = await activity(gateway, team_id, who)
    assert response.status_code == 200, response.text
    return [(a["action"], a["resource_id"]) for a in response.json()["items"]]


async def test_activity_is_readable_right_after_creating_a_team(
    gateway: httpx.AsyncClient,
) -> None:
    """Read-your-writes: no waiting for the events. The activity service has
    never heard of the team; it asks the team service."""
    owner = await sign_up(gateway, "ryw")
    team_id = await create_team(gateway, owner, "Read your writes")
    response = await activity(gateway, team_id, owner)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}
    # ...and someone else still gets 404 at once.
    stranger = await sign_up(gateway, "ryw-stranger")
    denied = await activity(gateway, team_id, stranger)
    assert denied.status_code == 404, denied.text
    assert denied.json()["error"]["code"] == "team_not_found"


async def test_custom_role_change_and_removal_reach_the_activity_service(
    gateway: httpx.AsyncClient,
) -> None:
    admin = await sign_up(gateway, "admin")
    b = await sign_up(gateway, "auditor")
    team_id = await create_team(gateway, admin, "Custom roles")

    role = await gateway.post(
        f"/v1/teams/{team_id}/roles",
        json={"name": "auditor", "permissions": ["workspace:read"]},
        headers=admin["headers"],
    )
    assert role.status_code == 201, role.text
    assert role.json() == {"name": "auditor", "built_in": False, "permissions": ["workspace:read"]}
    await add_member(gateway, team_id, admin, b, "auditor")

    # (b) Once the activity service has the events, B is a member whose role
    # does not allow activity:read: 403, not 404.
    async def events_seen() -> bool:
        actions = await activity_actions(gateway, team_id, admin)
        return ("member.added", b["user"]["id"]) in actions and any(
            a == "role.created" for a, _ in actions
        )

    await eventually(events_seen, within=20.0, interval=0.2)

    async def b_is_forbidden() -> dict[str, Any] | None:
        response = await activity(gateway, team_id, b)
        return response.json() if response.status_code == 403 else None

    body = await eventually(b_is_forbidden, within=10.0, interval=0.2)
    assert body["error"]["code"] == "permission_denied"
    assert body["error"]["details"] == {"permission": "activity:read", "role": "auditor"}
    assert (await activity(gateway, team_id, admin)).status_code == 200
    # The same answer in the team service, which owns the role.
    members = await gateway.get(f"/v1/teams/{team_id}/members", headers=b["headers"])
    assert members.status_code == 403, members.text
    assert members.json()["error"]["code"] == "permission_denied"

    # The role gains activity:read: B's next reads succeed (once role.updated arrives).
    patched = await gateway.patch(
        f"/v1/teams/{team_id}/roles/auditor",
        json={"permissions": ["workspace:read", "activity:read"]},
        headers=admin["headers"],
    )
    assert patched.status_code == 200, patched.text
    assert sorted(patched.json()["permissions"]) == ["activity:read", "workspace:read"]

    async def b_can_read() -> bool:
        return (await activity(gateway, team_id, b)).status_code == 200

    await eventually(b_can_read, within=20.0, interval=0.2)

    # (c) Removal: within a second or two, B's activity reads are 404.
    removed = await gateway.delete(
        f"/v1/teams/{team_id}/members/{b['user']['id']}", headers=admin["headers"]
    )
    assert removed.status_code == 204, removed.text

    async def b_is_gone() -> dict[str, Any] | None:
        response = await activity(gateway, team_id, b)
        return response.json() if response.status_code == 404 else None

    gone = await eventually(b_is_gone, within=3.0, interval=0.1)
    assert gone["error"]["code"] == "team_not_found"
    assert (await activity(gateway, team_id, admin)).status_code == 200
    members = await gateway.get(f"/v1/teams/{team_id}/members", headers=b["headers"])
    assert members.status_code == 404, members.text


async def test_viewer_reads_members_but_cannot_add_any(gateway: httpx.AsyncClient) -> None:
    admin = await sign_up(gateway, "admin")
    viewer = await sign_up(gateway, "viewer")
    other = await sign_up(gateway, "other")
    team_id = await create_team(gateway, admin, "Viewers")
    await add_member(gateway, team_id, admin, viewer, "viewer")

    listed = await gateway.get(f"/v1/teams/{team_id}/members", headers=viewer["headers"])
    assert listed.status_code == 200, listed.text
    assert {m["user_id"] for m in listed.json()["items"]} == {
        admin["user"]["id"],
        viewer["user"]["id"],
    }

    for body in (
        {"email": other["email"], "role": "viewer"},
        {"user_id": other["user"]["id"], "role": "admin"},
    ):
        denied = await gateway.post(
            f"/v1/teams/{team_id}/members", json=body, headers=viewer["headers"]
        )
        assert denied.status_code == 403, denied.text
        error = denied.json()["error"]
        assert error["code"] == "permission_denied"
        assert error["details"] == {"permission": "member:create", "role": "viewer"}

    # Nothing was added.
    listed = await gateway.get(f"/v1/teams/{team_id}/members", headers=admin["headers"])
    assert other["user"]["id"] not in {m["user_id"] for m in listed.json()["items"]}

    # A viewer reads activity (all :read), once the activity service knows them.
    async def viewer_reads_activity() -> bool:
        return (await activity(gateway, team_id, viewer)).status_code == 200

    await eventually(viewer_reads_activity, within=20.0, interval=0.2)


async def test_a_member_of_one_team_sees_nothing_of_another(gateway: httpx.AsyncClient) -> None:
    alice = await sign_up(gateway, "alice")
    bob = await sign_up(gateway, "bob")
    team_a = await create_team(gateway, alice, "Team A")
    team_b = await create_team(gateway, bob, "Team B")

    paths = (
        f"/v1/teams/{team_b}/activity",
        f"/v1/teams/{team_b}/members",
        f"/v1/teams/{team_b}/roles",
        f"/v1/teams/{team_b}",
    )

    async def assert_hidden() -> None:
        for path in paths:
            response = await gateway.get(path, headers=alice["headers"])
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "team_not_found", path
        added = await gateway.post(
            f"/v1/teams/{team_b}/members",
            json={"email": alice["email"], "role": "admin"},
            headers=alice["headers"],
        )
        assert added.status_code == 404, added.text
        assert added.json()["error"]["code"] == "team_not_found"

    # Right away (the activity service asks the team service)...
    await assert_hidden()

    # ...and once every service has both teams' events.
    async def both_known() -> bool:
        a = await activity_actions(gateway, team_a, alice)
        b = await activity_actions(gateway, team_b, bob)
        return ("team.created", team_a) in a and ("team.created", team_b) in b

    await eventually(both_known, within=20.0, interval=0.2)
    await assert_hidden()

    # Alice's own team is fine, and its log holds nothing of team B.
    for action, resource_id in await activity_actions(gateway, team_a, alice):
        assert resource_id != team_b, action
    own = await gateway.get(f"/v1/teams/{team_a}/members", headers=alice["headers"])
    assert own.status_code == 200
    assert [m["user_id"] for m in own.json()["items"]] == [alice["user"]["id"]]
