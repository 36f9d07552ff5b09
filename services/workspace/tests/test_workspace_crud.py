"""Create, read, update and delete workspaces through HTTP, with the contract's
shapes and its 422s for bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import WorkspaceHarness, assert_error, assert_workspace_shape, error_fields


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


async def test_create_returns_the_workspace(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    before = datetime.now(UTC) - timedelta(seconds=5)

    response = await h.create(team_id, owner, name="  Research  ", description="All the papers")

    assert response.status_code == 201, response.text
    assert response.headers.get("x-request-id")
    body = response.json()
    assert_workspace_shape(body)
    assert body["team_id"] == str(team_id)
    assert body["name"] == "Research"  # trimmed
    assert body["description"] == "All the papers"
    assert body["created_by"] == str(owner)
    assert body["archived_at"] is None
    created = _time(body["created_at"])
    updated = _time(body["updated_at"])
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=5)
    assert updated >= created

    # And it is what a later read returns.
    fetched = await h.get(team_id, owner, body["id"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == body


async def test_create_without_description(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    body = await h.create_ok(team_id, owner, "Bare")
    assert_workspace_shape(body)
    assert body["description"] is None


async def test_create_accepts_the_longest_name_and_description(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    name = "n" * 255
    description = "d" * 10_000
    body = await h.create_ok(team_id, owner, name, description=description)
    assert body["name"] == name
    assert body["description"] == description
    fetched = (await h.get(team_id, owner, body["id"])).json()
    assert fetched["name"] == name
    assert fetched["description"] == description


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "\t\n "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "ok", "description": "d" * 10_001}, "description"),
        ({"name": "ok", "color": "red"}, "color"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": "ok", "description": "bad\x00description"}, "description"),
        ({}, "name"),
        ({"description": "no name"}, "name"),
        ({"name": None}, "name"),
        ({"name": 123}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": "ok", "description": 5}, "description"),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "whitespace-name",
        "name-256",
        "description-10001",
        "unknown-field",
        "nul-in-name",
        "nul-in-description",
        "missing-name",
        "only-description",
        "null-name",
        "int-name",
        "list-name",
        "int-description",
    ],
)
async def test_create_rejects_bad_bodies_naming_the_field(
    workspace_harness: WorkspaceHarness, payload: dict[str, object], field: str
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)

    response = await h.create(team_id, owner, body=payload)

    error = assert_error(response, 422, "validation_error")
    assert field in error_fields(error), error
    assert all(d.get("in") == "body" for d in error["details"]), error
    # Nothing was created, nothing published.
    assert await h.workspace_rows(team_id) == []
    assert await h.outbox_count(team_id) == 0


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"name": "x"', b"", b"[]", b'"just a string"', b"null"],
    ids=["text", "truncated", "empty", "array", "string", "null"],
)
async def test_create_rejects_non_json_or_non_object_bodies(
    workspace_harness: WorkspaceHarness, raw: bytes
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)

    response = await h.client.post(
        h.path(team_id),
        content=raw,
        headers={**h.headers(owner), "Content-Type": "application/json"},
    )

    error = assert_error(response, 422, "validation_error")
    assert error.get("details"), error
    assert all(d.get("in") == "body" for d in error["details"]), error
    assert await h.workspace_rows(team_id) == []


async def test_get_a_workspace(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Gettable", description="yes")

    response = await h.get(team_id, owner, created["id"])

    assert response.status_code == 200, response.text
    assert response.json() == created


async def test_get_an_unknown_workspace_is_404(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    response = await h.get(team_id, owner, uuid.uuid4())
    assert_error(response, 404, "workspace_not_found")


async def test_another_teams_workspace_is_not_found(workspace_harness: WorkspaceHarness) -> None:
    """A member of both teams asks for team B's workspace under team A: 404, untouched."""
    h = workspace_harness
    user = uuid.uuid4()
    team_a = await h.create_team(user)
    team_b = await h.create_team(user)
    theirs = await h.create_ok(team_b, user, "Team B only")

    assert_error(await h.get(team_a, user, theirs["id"]), 404, "workspace_not_found")
    assert_error(
        await h.patch(team_a, user, theirs["id"], {"name": "Hijacked"}), 404, "workspace_not_found"
    )
    assert_error(await h.delete(team_a, user, theirs["id"]), 404, "workspace_not_found")

    # Also for a caller who is only a member of team A.
    outsider = uuid.uuid4()
    team_c = await h.create_team(outsider)
    assert_error(await h.get(team_c, outsider, theirs["id"]), 404, "workspace_not_found")
    assert_error(await h.delete(team_c, outsider, theirs["id"]), 404, "workspace_not_found")

    still = await h.get(team_b, user, theirs["id"])
    assert still.status_code == 200
    assert still.json() == theirs
    assert theirs["id"] not in {i["id"] for i in (await h.list(team_a, user)).json()["items"]}


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "0000"])
async def test_malformed_workspace_id_is_422(
    workspace_harness: WorkspaceHarness, bad_id: str
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    for response in (
        await h.get(team_id, owner, bad_id),
        await h.patch(team_id, owner, bad_id, {"name": "x"}),
        await h.delete(team_id, owner, bad_id),
    ):
        error = assert_error(response, 422, "validation_error")
        assert "workspace_id" in error_fields(error), error


async def test_malformed_team_id_is_422(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    user = uuid.uuid4()
    response = await h.list("not-a-team", user)
    error = assert_error(response, 422, "validation_error")
    assert "team_id" in error_fields(error), error


async def test_update_name_and_description(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Old name", description="old")

    response = await h.patch(
        team_id, owner, created["id"], {"name": "  New name  ", "description": "new"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert_workspace_shape(body)
    assert body["id"] == created["id"]
    assert body["name"] == "New name"
    assert body["description"] == "new"
    assert body["created_at"] == created["created_at"]
    assert body["created_by"] == created["created_by"]
    assert _time(body["updated_at"]) > _time(created["updated_at"])
    assert body["archived_at"] is None
    assert (await h.get(team_id, owner, created["id"])).json() == body


async def test_update_only_the_description_keeps_the_name(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Keep me", description="before")

    body = (await h.patch(team_id, owner, created["id"], {"description": "after"})).json()
    assert body["name"] == "Keep me"
    assert body["description"] == "after"

    cleared = await h.patch(team_id, owner, created["id"], {"description": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["description"] is None
    assert cleared.json()["name"] == "Keep me"


async def test_rename_changing_only_the_letter_case(workspace_harness: WorkspaceHarness) -> None:
    """A workspace does not clash with itself."""
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Docs")
    response = await h.patch(team_id, owner, created["id"], {"name": "DOCS"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "DOCS"


async def test_archive_and_unarchive(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Seasonal")

    archived = await h.patch(team_id, owner, created["id"], {"archived": True})
    assert archived.status_code == 200, archived.text
    a = archived.json()
    assert a["archived_at"] is not None
    archived_at = _time(a["archived_at"])
    assert abs(archived_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert _time(a["updated_at"]) > _time(created["updated_at"])
    assert (await h.get(team_id, owner, created["id"])).json()["archived_at"] == a["archived_at"]

    # Archiving again changes nothing (archived_at stays the first one).
    again = await h.patch(team_id, owner, created["id"], {"archived": True})
    assert again.status_code == 200
    assert again.json() == a

    unarchived = await h.patch(team_id, owner, created["id"], {"archived": False})
    assert unarchived.status_code == 200, unarchived.text
    u = unarchived.json()
    assert u["archived_at"] is None
    assert _time(u["updated_at"]) >= _time(a["updated_at"])
    assert (await h.get(team_id, owner, created["id"])).json()["archived_at"] is None


async def test_noop_patch_returns_the_workspace_unchanged_and_publishes_nothing(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Stable", description="same")
    events_before = await h.outbox_count(team_id)

    for body in (
        {},
        {"name": "Stable"},
        {"name": "  Stable "},
        {"description": "same"},
        {"archived": False},
        {"name": "Stable", "description": "same", "archived": False},
    ):
        response = await h.patch(team_id, owner, created["id"], body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == created, body

    assert (await h.get(team_id, owner, created["id"])).json() == created
    assert await h.outbox_count(team_id) == events_before
    assert await h.outbox_events(event_type="workspace.updated", team_id=team_id) == []


async def test_patch_with_null_name_does_not_rename(workspace_harness: WorkspaceHarness) -> None:
    """``{"name": null}``: either refused (422) or ignored; never a workspace named "None"."""
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Named")

    response = await h.patch(team_id, owner, created["id"], {"name": None})

    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json()["name"] == "Named", response.json()
    else:
        assert "name" in error_fields(assert_error(response, 422, "validation_error"))
    assert (await h.get(team_id, owner, created["id"])).json()["name"] == "Named"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"description": "d" * 10_001}, "description"),
        ({"archived": "maybe"}, "archived"),
        ({"archived": 7}, "archived"),
        # Found by the fuzzer: 0, 1, "true" and "yes" were read as booleans.
        ({"archived": 0}, "archived"),
        ({"archived": 1}, "archived"),
        ({"archived": "true"}, "archived"),
        ({"archived": "yes"}, "archived"),
        ({"archived": None}, "archived"),
        ({"name": "fine", "owner": "me"}, "owner"),
        ({"archived_at": None}, "archived_at"),
        ({"name": "nul\x00"}, "name"),
        ({"description": "nul\x00"}, "description"),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "name-256",
        "description-10001",
        "archived-string",
        "archived-int",
        "archived-zero",
        "archived-one",
        "archived-string-true",
        "archived-string-yes",
        "archived-null",
        "unknown-field",
        "read-only-field",
        "nul-in-name",
        "nul-in-description",
    ],
)
async def test_update_rejects_bad_bodies(
    workspace_harness: WorkspaceHarness, payload: dict[str, object], field: str
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Untouched", description="orig")
    events_before = await h.outbox_count(team_id)

    response = await h.patch(team_id, owner, created["id"], payload)

    error = assert_error(response, 422, "validation_error")
    assert field in error_fields(error), error
    assert (await h.get(team_id, owner, created["id"])).json() == created
    assert await h.outbox_count(team_id) == events_before


async def test_update_accepts_the_longest_name(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "short")
    response = await h.patch(
        team_id, owner, created["id"], {"name": "L" * 255, "description": "D" * 10_000}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "L" * 255
    assert response.json()["description"] == "D" * 10_000


async def test_update_an_unknown_workspace_is_404(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    response = await h.patch(team_id, owner, uuid.uuid4(), {"name": "ghost"})
    assert_error(response, 404, "workspace_not_found")


async def test_delete_then_get_is_404(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Doomed")
    kept = await h.create_ok(team_id, owner, "Kept")

    response = await h.delete(team_id, owner, created["id"])

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_error(await h.get(team_id, owner, created["id"]), 404, "workspace_not_found")
    assert_error(await h.delete(team_id, owner, created["id"]), 404, "workspace_not_found")
    assert_error(
        await h.patch(team_id, owner, created["id"], {"name": "Back"}), 404, "workspace_not_found"
    )
    listed = (await h.list(team_id, owner, include_archived="true")).json()["items"]
    assert [i["id"] for i in listed] == [kept["id"]]
    assert [r.id for r in await h.workspace_rows(team_id)] == [uuid.UUID(kept["id"])]

    # The name is free again.
    again = await h.create(team_id, owner, name="doomed")
    assert again.status_code == 201, again.text


async def test_request_id_is_echoed(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    response = await h.client.get(
        h.path(team_id), headers={**h.headers(owner), "X-Request-ID": "ws-test-123"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "ws-test-123"
