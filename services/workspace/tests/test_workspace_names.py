"""Workspace names are unique per team, whatever their letter case, also
under concurrent creates and renames."""

from __future__ import annotations

import asyncio
import uuid

from .conftest import WorkspaceHarness, assert_error


async def test_name_taken_ignores_case(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    first = await h.create_ok(team_id, owner, "Docs")
    events_before = await h.outbox_count(team_id)

    for clash in ("docs", "DOCS", "Docs", "  dOcS  "):
        response = await h.create(team_id, owner, name=clash)
        error = assert_error(response, 409, "name_taken")
        assert "Traceback" not in response.text
        assert error["message"]

    rows = await h.workspace_rows(team_id)
    assert [str(r.id) for r in rows] == [first["id"]]
    assert await h.outbox_count(team_id) == events_before


async def test_same_name_in_another_team_is_fine(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_a = await h.create_team(owner)
    team_b = await h.create_team(owner)
    a = await h.create_ok(team_a, owner, "Shared Name")
    b = await h.create_ok(team_b, owner, "shared name")
    assert a["id"] != b["id"]
    assert a["team_id"] == str(team_a)
    assert b["team_id"] == str(team_b)


async def test_similar_but_different_names_are_fine(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    for name in ("Docs", "Docs 2", "Doc", "D ocs", "docs-archive"):
        await h.create_ok(team_id, owner, name)
    assert len(await h.workspace_rows(team_id)) == 5


async def test_an_archived_workspace_keeps_its_name(workspace_harness: WorkspaceHarness) -> None:
    """Archived is not deleted: its name still counts."""
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    created = await h.create_ok(team_id, owner, "Old Project")
    assert (await h.patch(team_id, owner, created["id"], {"archived": True})).status_code == 200
    assert_error(await h.create(team_id, owner, name="old project"), 409, "name_taken")


async def test_rename_to_a_taken_name_is_409(workspace_harness: WorkspaceHarness) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    await h.create_ok(team_id, owner, "Alpha")
    beta = await h.create_ok(team_id, owner, "Beta", description="b")
    events_before = await h.outbox_count(team_id)

    for taken in ("Alpha", "ALPHA", " alpha "):
        response = await h.patch(team_id, owner, beta["id"], {"name": taken})
        assert_error(response, 409, "name_taken")
    # A clash in a combined update changes none of it.
    response = await h.patch(
        team_id, owner, beta["id"], {"name": "alpha", "description": "changed", "archived": True}
    )
    assert_error(response, 409, "name_taken")

    assert (await h.get(team_id, owner, beta["id"])).json() == beta
    assert await h.outbox_count(team_id) == events_before
    # The request's transaction was not left broken: the next one works.
    renamed = await h.patch(team_id, owner, beta["id"], {"name": "Gamma"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Gamma"


async def test_concurrent_creates_of_one_name_make_exactly_one(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    names = ["Race", "race", "RACE", "Race", "rAce", "Race ", " race", "RACE"]

    responses = await asyncio.gather(*(h.create(team_id, owner, name=n) for n in names))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "name_taken")
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    rows = await h.workspace_rows(team_id)
    assert [str(r.id) for r in rows] == [winner["id"]]
    created = await h.outbox_events(event_type="workspace.created", team_id=team_id)
    assert [e.data["workspace_id"] for e in created] == [winner["id"]]


async def test_concurrent_creates_of_different_names_all_succeed(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    responses = await asyncio.gather(
        *(h.create(team_id, owner, name=f"Parallel {i}") for i in range(8))
    )
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len(await h.workspace_rows(team_id)) == 8


async def test_concurrent_renames_to_one_name_make_exactly_one(
    workspace_harness: WorkspaceHarness,
) -> None:
    h = workspace_harness
    owner = uuid.uuid4()
    team_id = await h.create_team(owner)
    spaces = [await h.create_ok(team_id, owner, f"Source {i}") for i in range(6)]

    responses = await asyncio.gather(
        *(h.patch(team_id, owner, s["id"], {"name": "Target"}) for s in spaces)
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 5, [(r.status_code, r.text) for r in responses]
    names = sorted(r.name for r in await h.workspace_rows(team_id))
    assert names.count("Target") == 1
    assert len(names) == 6
