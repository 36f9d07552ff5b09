"""The activity log of real API writes, read through the gateway: search,
export and verification."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from agenthq_common.testing.plugin import eventually
from agenthq_devctl.supervisor import Stack

from .people import add_member, create_team, sign_up

pytestmark = pytest.mark.e2e


async def test_writes_through_the_gateway_are_searchable_exportable_and_verifiable(
    stack: Stack, gateway: httpx.AsyncClient
) -> None:
    owner = await sign_up(gateway, "auditor")
    colleague = await sign_up(gateway, "colleague")
    team_id = await create_team(gateway, owner, "Audited")
    await add_member(gateway, team_id, owner, colleague, "member")
    created = await gateway.post(
        f"/v1/teams/{team_id}/workspaces",
        json={"name": "Quarterly report", "description": "numbers"},
        headers=owner["headers"],
    )
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    base = f"/v1/teams/{team_id}/activity"

    async def actions() -> list[str] | None:
        response = await gateway.get(base, headers=owner["headers"])
        assert response.status_code == 200, response.text
        found = [item["action"] for item in response.json()["items"]]
        return found if "workspace.created" in found else None

    found = await eventually(actions, within=20.0)
    assert {"team.created", "member.added", "workspace.created"} <= set(found)

    # Filters, through the gateway.
    members = (
        await gateway.get(base, params={"action": "member."}, headers=owner["headers"])
    ).json()["items"]
    assert {m["action"] for m in members} == {"member.added"}
    assert {m["metadata"]["user_id"] for m in members} == {
        owner["user"]["id"],
        colleague["user"]["id"],
    }
    searched = (
        await gateway.get(base, params={"q": '"Quarterly report"'}, headers=owner["headers"])
    ).json()["items"]
    assert [(s["action"], s["resource_id"]) for s in searched] == [
        ("workspace.created", workspace_id)
    ]
    assert searched[0]["user_id"] == owner["user"]["id"]
    assert searched[0]["user_agent"] == gateway.headers["User-Agent"]
    assert searched[0]["ip_address"] == "127.0.0.1"

    # Exports stream through the gateway with their headers intact.
    listing = (await gateway.get(base, headers=owner["headers"])).json()["items"]
    exported = await gateway.get(
        f"{base}/export", params={"format": "ndjson"}, headers=owner["headers"]
    )
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert exported.headers["content-disposition"].startswith("attachment; filename=")
    assert [json.loads(line) for line in exported.text.splitlines()] == listing
    as_csv = await gateway.get(f"{base}/export", params={"format": "csv"}, headers=owner["headers"])
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["id"] for r in rows] == [item["id"] for item in listing]

    verified = await gateway.get(f"{base}/verify", headers=colleague["headers"])
    assert verified.status_code == 200, verified.text
    assert verified.json()["valid"] is True
    assert verified.json()["checked"] == len(listing)
