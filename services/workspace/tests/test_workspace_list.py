"""Listing workspaces: keyset pagination, archived ones, name search, bounds."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from typing import Any

import pytest

from .conftest import WorkspaceHarness, assert_error, assert_workspace_shape, error_fields


def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


async def _team_with(
    h: WorkspaceHarness, count: int, prefix: str = "WS"
) -> tuple[uuid.UUID, uuid.UUID, list[dict[str, Any]]]:
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = [await h.create_ok(team_id, owner, f"{prefix} {i:02d}") for i in range(count)]
    return owner, team_id, created


async def test_list_shape_and_default(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner, team_id, created = await _team_with(h, 3)

    response = await h.list(team_id, owner)

    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    for item in page["items"]:
        assert_workspace_shape(item)
    assert {i["id"] for i in page["items"]} == {c["id"] for c in created}
    by_id = {i["id"]: i for i in page["items"]}
    for c in created:
        assert by_id[c["id"]] == c


async def test_empty_team_lists_nothing(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    response = await h.list(team_id, owner)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_keyset_pagination_with_limit_2(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner, team_id, created = await _team_with(h, 7)

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await h.list(team_id, owner, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10

    assert [len(p) for p in pages] == [2, 2, 2, 1]
    ids = [i["id"] for p in pages for i in p]
    assert len(ids) == len(set(ids)) == 7
    assert set(ids) == {c["id"] for c in created}
    # Oldest first (docs/workspaces.md): the order they were created in.
    assert ids == [c["id"] for c in created]

    # A cursor is stable: replaying it gives the same page.
    first = (await h.list(team_id, owner, limit=2)).json()
    second = (await h.list(team_id, owner, limit=2, cursor=first["next_cursor"])).json()
    replay = (await h.list(team_id, owner, limit=2, cursor=first["next_cursor"])).json()
    assert second == replay
    assert {i["id"] for i in second["items"]}.isdisjoint({i["id"] for i in first["items"]})


async def test_exact_multiple_of_the_limit_ends_cleanly(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner, team_id, created = await _team_with(h, 4)
    items, pages = await h.all_pages(team_id, owner, limit=2)
    assert pages in (2, 3)  # an empty last page is allowed, a missing item is not
    assert sorted(i["id"] for i in items) == sorted(c["id"] for c in created)


async def test_pagination_while_workspaces_are_being_created(
    workspace_harness: WorkspaceHarness,
) -> None:
    """Every workspace that existed at the start comes back exactly once, and no
    item twice, although new ones are created between the page fetches."""
    h = workspace_harness
    owner, team_id, initial = await _team_with(h, 9, prefix="Initial")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    added = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await h.list(team_id, owner, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen.extend(i["id"] for i in page["items"])
        for item in page["items"]:
            assert item["team_id"] == str(team_id)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 50, "pagination does not end"
        if added < 6:
            await h.create_ok(team_id, owner, f"Added meanwhile {added}")
            added += 1

    assert pages > 3
    duplicates = [i for i, n in Counter(seen).items() if n > 1]
    assert duplicates == []
    counts = Counter(seen)
    for workspace in initial:
        assert counts[workspace["id"]] == 1, workspace["name"]


async def test_archived_are_hidden_unless_asked_for(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner, team_id, created = await _team_with(h, 4)
    archived_ids = {created[1]["id"], created[3]["id"]}
    for workspace_id in archived_ids:
        response = await h.patch(team_id, owner, workspace_id, {"archived": True})
        assert response.status_code == 200

    default = (await h.list(team_id, owner)).json()["items"]
    assert {i["id"] for i in default} == {created[0]["id"], created[2]["id"]}
    assert all(i["archived_at"] is None for i in default)

    explicit_false = (await h.list(team_id, owner, include_archived="false")).json()["items"]
    assert {i["id"] for i in explicit_false} == {i["id"] for i in default}

    everything = (await h.list(team_id, owner, include_archived="true")).json()["items"]
    assert {i["id"] for i in everything} == {c["id"] for c in created}
    for item in everything:
        assert (item["archived_at"] is not None) == (item["id"] in archived_ids)

    # Paginated with archived ones mixed in.
    items, _ = await h.all_pages(team_id, owner, limit=1, include_archived="true")
    assert sorted(i["id"] for i in items) == sorted(c["id"] for c in created)
    items, _ = await h.all_pages(team_id, owner, limit=1)
    assert sorted(i["id"] for i in items) == sorted([created[0]["id"], created[2]["id"]])

    # Unarchived: listed again by default.
    await h.patch(team_id, owner, created[1]["id"], {"archived": False})
    default = (await h.list(team_id, owner)).json()["items"]
    assert created[1]["id"] in {i["id"] for i in default}


async def test_include_archived_must_be_a_boolean(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    error = assert_error(
        await h.list(team_id, owner, include_archived="sometimes"), 422, "validation_error"
    )
    assert "include_archived" in error_fields(error)


async def test_name_search(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    names = [
        "Marketing Plan",
        "marketing ops",
        "Sales",
        "100% done",
        "100 percent",
        "a_b",
        "axb",
        "path/to",
        "pathXto",
        "back\\slash",
    ]
    ids = {n: (await h.create_ok(team_id, owner, n))["id"] for n in names}

    async def search(q: str, **params: Any) -> set[str]:
        response = await h.list(team_id, owner, q=q, **params)
        assert response.status_code == 200, response.text
        return {i["name"] for i in response.json()["items"]}

    assert await search("market") == {"Marketing Plan", "marketing ops"}
    assert await search("MARKETING") == {"Marketing Plan", "marketing ops"}
    assert await search("ing p") == {"Marketing Plan"}
    assert await search("sales") == {"Sales"}
    assert await search("nothing like it") == set()
    # LIKE's wildcards are literal characters here.
    assert await search("%") == {"100% done"}
    assert await search("100%") == {"100% done"}
    assert await search("_") == {"a_b"}
    assert await search("A_B") == {"a_b"}
    assert await search("/") == {"path/to"}
    assert await search("\\") == {"back\\slash"}
    assert await search("%%") == set()

    # Combined with archived and pagination.
    await h.patch(team_id, owner, ids["marketing ops"], {"archived": True})
    assert await search("market") == {"Marketing Plan"}
    assert await search("market", include_archived="true") == {"Marketing Plan", "marketing ops"}
    items, pages = await h.all_pages(team_id, owner, q="100", limit=1)
    assert sorted(i["name"] for i in items) == ["100 percent", "100% done"]
    assert pages >= 2


async def test_name_search_too_long_is_422(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    error = assert_error(await h.list(team_id, owner, q="q" * 256), 422, "validation_error")
    assert "q" in error_fields(error)


async def test_nul_in_query_is_422(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    assert_error(await h.list(team_id, owner, q="a\x00b"), 422, "validation_error")


@pytest.mark.parametrize("limit", ["0", "-1", "201", "1000", "abc", "1.5", ""])
async def test_limit_out_of_bounds_is_422(workspace_harness: WorkspaceHarness, limit: str) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    error = assert_error(await h.list(team_id, owner, limit=limit), 422, "validation_error")
    assert "limit" in error_fields(error), error


async def test_limit_bounds_are_inclusive(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner, team_id, _ = await _team_with(h, 3)
    one = (await h.list(team_id, owner, limit=1)).json()
    assert len(one["items"]) == 1
    assert one["next_cursor"] is not None
    most = await h.list(team_id, owner, limit=200)
    assert most.status_code == 200
    assert len(most.json()["items"]) == 3
    assert most.json()["next_cursor"] is None


async def test_default_limit_is_50(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner, team_id, _ = await _team_with(h, 51, prefix="Many")
    page = (await h.list(team_id, owner)).json()
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None
    rest = (await h.list(team_id, owner, cursor=page["next_cursor"])).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "not-base64-at-all-$$$",
        _cursor(["t", "id"]),
        _cursor({"id": str(uuid.uuid4())}),
        _cursor({"t": "2026-01-01T00:00:00+00:00"}),
        _cursor({"t": "yesterday", "id": str(uuid.uuid4())}),
        _cursor({"t": "2026-01-01T00:00:00+00:00", "id": "not-a-uuid"}),
        _cursor({"t": 12345, "id": str(uuid.uuid4())}),
        _cursor({"t": None, "id": None}),
        _cursor({"t": "2026-01-01T00:00:00+00:00", "id": str(uuid.uuid4()), "x": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    ],
    ids=[
        "junk",
        "not-base64",
        "list",
        "no-time",
        "no-id",
        "bad-time",
        "bad-id",
        "int-time",
        "nulls",
        "extra-key",
        "not-utf8",
    ],
)
async def test_bad_cursor_is_422_invalid_cursor(
    workspace_harness: WorkspaceHarness, cursor: str
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    error = assert_error(await h.list(team_id, owner, cursor=cursor), 422, "invalid_cursor")
    assert "cursor" in error_fields(error)


async def test_overlong_cursor_is_422(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    error = assert_error(await h.list(team_id, owner, cursor="a" * 600), 422, None)
    assert "cursor" in error_fields(error)


@pytest.mark.parametrize(
    "time_value",
    ["2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"],
    ids=["naive", "before-year-1-in-utc", "after-year-9999-in-utc"],
)
async def test_forged_cursor_times_never_500(
    workspace_harness: WorkspaceHarness, time_value: str
) -> None:
    """A forged cursor with an odd but parseable time: a page or a 422, never a 500."""
    h = workspace_harness
    owner, team_id, _ = await _team_with(h, 1)
    cursor = _cursor({"t": time_value, "id": str(uuid.uuid4())})
    response = await h.list(team_id, owner, cursor=cursor)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_error(response, 422, "invalid_cursor")


async def test_a_cursor_does_not_cross_teams(workspace_harness: WorkspaceHarness) -> None:
    """Another team's cursor only positions; it never shows the other team's items."""
    h = workspace_harness
    owner, team_a, a_spaces = await _team_with(h, 3, prefix="A")
    team_b = await h.create_team(owner)
    b_spaces = [await h.create_ok(team_b, owner, f"B {i}") for i in range(3)]
    cursor = (await h.list(team_a, owner, limit=1)).json()["next_cursor"]
    response = await h.list(team_b, owner, limit=50, cursor=cursor)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        ids = {i["id"] for i in response.json()["items"]}
        assert ids <= {b["id"] for b in b_spaces}
        assert ids.isdisjoint({a["id"] for a in a_spaces})
