"""Who may do what: the built-in roles, custom roles from role.* events,
changes of role and membership, non-members (404) and missing tokens (401)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from .conftest import WorkspaceHarness, assert_error, assert_workspace_shape

Route = Callable[[WorkspaceHarness, uuid.UUID | str, uuid.UUID | None, str], Awaitable[Any]]


def _denied(response: httpx.Response, permission: str, role: str) -> None:
    error = assert_error(response, 403, "permission_denied")
    details = error.get("details")
    if isinstance(details, dict):
        assert details.get("permission") == permission
        assert details.get("role") == role


async def _team(
    h: WorkspaceHarness,
    members: dict[str, str],
    roles: dict[str, list[str]] | None = None,
) -> tuple[uuid.UUID, uuid.UUID, dict[str, uuid.UUID], dict[str, Any]]:
    """A team with an owner, one user per entry of ``members`` (label -> role)
    and one workspace created by the owner."""
    owner = uuid.uuid4()
    users = {label: uuid.uuid4() for label in members}
    team_id = await h.create_team(
        owner, {users[label]: role for label, role in members.items()}, roles=roles
    )
    workspace = await h.create_ok(team_id, owner, "Existing", description="by the owner")
    return team_id, owner, users, workspace


async def test_viewer_reads_but_cannot_write(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    team_id, _, users, ws = await _team(h, {"viewer": "viewer"})
    viewer = users["viewer"]

    listed = await h.list(team_id, viewer)
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()["items"]] == [ws["id"]]
    got = await h.get(team_id, viewer, ws["id"])
    assert got.status_code == 200
    assert got.json() == ws
    assert (await h.list(team_id, viewer, include_archived="true")).status_code == 200

    events_before = await h.outbox_count(team_id)
    _denied(await h.create(team_id, viewer, name="Mine"), "workspace:create", "viewer")
    _denied(
        await h.patch(team_id, viewer, ws["id"], {"name": "Renamed"}), "workspace:update", "viewer"
    )
    _denied(
        await h.patch(team_id, viewer, ws["id"], {"archived": True}), "workspace:update", "viewer"
    )
    _denied(await h.patch(team_id, viewer, ws["id"], {}), "workspace:update", "viewer")
    _denied(await h.delete(team_id, viewer, ws["id"]), "workspace:delete", "viewer")
    # Even for a workspace that does not exist: the permission comes first.
    _denied(await h.delete(team_id, viewer, uuid.uuid4()), "workspace:delete", "viewer")

    assert (await h.get(team_id, viewer, ws["id"])).json() == ws
    assert len(await h.workspace_rows(team_id)) == 1
    assert await h.outbox_count(team_id) == events_before


async def test_member_creates_and_updates_but_cannot_delete(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    team_id, _, users, ws = await _team(h, {"member": "member"})
    member = users["member"]

    created = await h.create(team_id, member, name="Member made", description="mine")
    assert created.status_code == 201, created.text
    mine = created.json()
    assert_workspace_shape(mine)
    assert mine["created_by"] == str(member)

    for target in (mine, ws):
        response = await h.patch(team_id, member, target["id"], {"description": "edited"})
        assert response.status_code == 200, response.text
        assert response.json()["description"] == "edited"
    assert (await h.patch(team_id, member, ws["id"], {"archived": True})).status_code == 200

    listed = await h.list(team_id, member, include_archived="true")
    assert {i["id"] for i in listed.json()["items"]} == {ws["id"], mine["id"]}
    assert (await h.get(team_id, member, ws["id"])).status_code == 200

    # Not even the workspace they created themselves.
    _denied(await h.delete(team_id, member, mine["id"]), "workspace:delete", "member")
    _denied(await h.delete(team_id, member, ws["id"]), "workspace:delete", "member")
    assert len(await h.workspace_rows(team_id)) == 2


async def test_admin_can_do_everything(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    team_id, owner, users, ws = await _team(h, {"admin": "admin"})
    admin = users["admin"]

    created = await h.create(team_id, admin, name="Admin made")
    assert created.status_code == 201, created.text
    assert (await h.list(team_id, admin)).status_code == 200
    assert (await h.get(team_id, admin, ws["id"])).status_code == 200
    patched = await h.patch(team_id, admin, ws["id"], {"name": "Admin renamed", "archived": True})
    assert patched.status_code == 200, patched.text
    assert (await h.delete(team_id, admin, ws["id"])).status_code == 204
    assert (await h.delete(team_id, admin, created.json()["id"])).status_code == 204
    assert await h.workspace_rows(team_id) == []

    # The owner (admin by its member.added) too.
    again = await h.create_ok(team_id, owner, "Owner made")
    assert (await h.delete(team_id, owner, again["id"])).status_code == 204


async def test_custom_read_only_role(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    team_id, _, users, ws = await _team(
        h, {"reader": "reader"}, roles={"reader": ["workspace:read"]}
    )
    reader = users["reader"]

    assert (await h.list(team_id, reader)).status_code == 200
    got = await h.get(team_id, reader, ws["id"])
    assert got.status_code == 200
    assert got.json() == ws
    _denied(await h.create(team_id, reader, name="Nope"), "workspace:create", "reader")
    _denied(
        await h.patch(team_id, reader, ws["id"], {"name": "Nope"}), "workspace:update", "reader"
    )
    _denied(await h.delete(team_id, reader, ws["id"]), "workspace:delete", "reader")


async def test_custom_role_that_cannot_read(workspace_harness: WorkspaceHarness) -> None:
    """A role with only workspace:create can create but neither list nor get."""
    h = workspace_harness
    team_id, _, users, ws = await _team(
        h, {"maker": "maker"}, roles={"maker": ["workspace:create"]}
    )
    maker = users["maker"]
    assert (await h.create(team_id, maker, name="Made blind")).status_code == 201
    _denied(await h.list(team_id, maker), "workspace:read", "maker")
    _denied(await h.get(team_id, maker, ws["id"]), "workspace:read", "maker")


async def test_custom_role_updated_and_deleted(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    team_id, owner, users, ws = await _team(
        h, {"editor": "editor"}, roles={"editor": ["workspace:read"]}
    )
    editor = users["editor"]
    _denied(
        await h.patch(team_id, editor, ws["id"], {"description": "x"}), "workspace:update", "editor"
    )

    await h.role_event(
        "role.updated", team_id, owner, "editor", ["workspace:read", "workspace:update"]
    )
    response = await h.patch(team_id, editor, ws["id"], {"description": "x"})
    assert response.status_code == 200, response.text

    await h.role_event("role.deleted", team_id, owner, "editor", [])
    _denied(await h.list(team_id, editor), "workspace:read", "editor")


async def test_role_changes_take_effect(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    team_id, owner, users, ws = await _team(h, {"user": "viewer"})
    user = users["user"]
    _denied(await h.delete(team_id, user, ws["id"]), "workspace:delete", "viewer")

    await h.change_role(team_id, owner, user, "viewer", "admin")
    assert (await h.delete(team_id, user, ws["id"])).status_code == 204

    await h.change_role(team_id, owner, user, "admin", "viewer")
    _denied(await h.create(team_id, user, name="Later"), "workspace:create", "viewer")


async def test_a_removed_member_is_a_non_member(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    team_id, owner, users, ws = await _team(h, {"leaver": "admin"})
    leaver = users["leaver"]
    assert (await h.get(team_id, leaver, ws["id"])).status_code == 200

    await h.remove_member(team_id, owner, leaver, "admin")

    assert_error(await h.list(team_id, leaver), 404, "team_not_found")
    assert_error(await h.get(team_id, leaver, ws["id"]), 404, "team_not_found")
    assert_error(await h.create(team_id, leaver, name="After"), 404, "team_not_found")
    assert (await h.list(team_id, owner)).status_code == 200


async def _list(h: WorkspaceHarness, team: uuid.UUID | str, user: uuid.UUID | None, ws: str) -> Any:
    return await h.list(team, user)


async def _get(h: WorkspaceHarness, team: uuid.UUID | str, user: uuid.UUID | None, ws: str) -> Any:
    return await h.get(team, user, ws)


async def _create(
    h: WorkspaceHarness, team: uuid.UUID | str, user: uuid.UUID | None, ws: str
) -> Any:
    return await h.create(team, user, name="Intruder")


async def _create_invalid(
    h: WorkspaceHarness, team: uuid.UUID | str, user: uuid.UUID | None, ws: str
) -> Any:
    return await h.create(team, user, body={"name": "", "unknown": 1})


async def _patch(
    h: WorkspaceHarness, team: uuid.UUID | str, user: uuid.UUID | None, ws: str
) -> Any:
    return await h.patch(team, user, ws, {"name": "Intruded"})


async def _delete(
    h: WorkspaceHarness, team: uuid.UUID | str, user: uuid.UUID | None, ws: str
) -> Any:
    return await h.delete(team, user, ws)


ROUTES: dict[str, Route] = {
    "list": _list,
    "get": _get,
    "create": _create,
    "create-invalid-body": _create_invalid,
    "patch": _patch,
    "delete": _delete,
}


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
async def test_non_member_gets_404_team_not_found(
    workspace_harness: WorkspaceHarness, route: str
) -> None:
    h = workspace_harness
    team_id, _, _, ws = await _team(h, {})
    stranger = uuid.uuid4()
    # The stranger has a team of its own: being a member elsewhere does not help.
    await h.create_team(stranger)

    response = await ROUTES[route](h, team_id, stranger, ws["id"])
    error = assert_error(response, 404, "team_not_found")
    assert str(team_id) not in error["message"]

    # The same answer for a team that does not exist at all.
    response = await ROUTES[route](h, uuid.uuid4(), stranger, ws["id"])
    assert_error(response, 404, "team_not_found")
    assert (await h.workspace_rows(team_id))[0].name == "Existing"


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
async def test_no_token_is_401(workspace_harness: WorkspaceHarness, route: str) -> None:
    h = workspace_harness
    team_id, _, _, ws = await _team(h, {})
    response = await ROUTES[route](h, team_id, None, ws["id"])
    assert_error(response, 401, None)
    assert (await h.workspace_rows(team_id))[0].name == "Existing"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "bearer ", "Token abc"],
    ids=["empty-bearer", "garbage", "basic", "blank", "wrong-scheme"],
)
async def test_malformed_authorization_is_401(
    workspace_harness: WorkspaceHarness, authorization: str
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    response = await h.client.get(h.path(team_id), headers={"Authorization": authorization})
    assert_error(response, 401, None)


async def test_bad_tokens_are_401(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    from agenthq_common.testing.tokens import TestSigner

    stranger_key = TestSigner(kid=h.signer.kid)
    tokens = {
        "expired": h.signer.token(owner, ttl=-120),
        "wrong-audience": h.signer.token(owner, aud="someone-else"),
        "wrong-issuer": h.signer.token(owner, iss="evil"),
        "foreign-key": stranger_key.token(owner),
        "unknown-kid": TestSigner(kid="other-kid").token(owner),
        "not-a-uuid-sub": h.signer.token(owner, sub="not-a-uuid"),
    }
    for label, token in tokens.items():
        response = await h.client.get(h.path(team_id), headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (label, response.text)
        assert_error(response, 401, None)
    ok = await h.client.get(h.path(team_id), headers=h.signer.headers(owner))
    assert ok.status_code == 200
