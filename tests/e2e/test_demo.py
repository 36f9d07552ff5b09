"""`make demo` against the running system: people, teams, roles, members,
invitations and workspaces through the API; agent work over past days on the
bus, which reaches the activity log and usage. Running it again changes nothing
it made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from agenthq_common.testing.infra import Infrastructure
from agenthq_common.testing.plugin import eventually
from agenthq_devctl.demo import PASSWORD, PEOPLE, TEAMS, WORKSPACES, build, email_of
from agenthq_devctl.supervisor import Stack


async def test_the_demo_fills_the_system_and_can_run_again(
    stack: Stack, gateway: httpx.AsyncClient, infra: Infrastructure, e2e_namespace: str
) -> None:
    url = stack.public_url("gateway")
    lines: list[str] = []
    first = await build(
        url, infra.broker_url, e2e_namespace, events_per_team=60, days=10, say=lines.append
    )
    assert set(first["teams"]) == set(TEAMS)
    assert first["published"] == 120
    assert any("agent events on the bus: 120 / 120" in line for line in lines)

    tokens = await gateway.post(
        "/v1/auth/login", json={"email": email_of("Ada"), "password": PASSWORD}
    )
    ada = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    team_id = first["teams"]["Analytical Engines"]
    members = (await gateway.get(f"/v1/teams/{team_id}/members", headers=ada)).json()["items"]
    expected_roles = {
        email_of(n): ("admin" if r == "owner" else r)
        for n, t, r in PEOPLE
        if t == "Analytical Engines"
    }
    assert {m["email"]: m["role"] for m in members} == expected_roles
    workspaces = (
        await gateway.get(
            f"/v1/teams/{team_id}/workspaces", params={"include_archived": "true"}, headers=ada
        )
    ).json()["items"]
    assert len(workspaces) == len(WORKSPACES["Analytical Engines"])
    assert sum(w["archived_at"] is not None for w in workspaces) == 1
    pending = (await gateway.get(f"/v1/teams/{team_id}/invitations", headers=ada)).json()
    assert [i["status"] for i in pending["items"]] == ["pending"]

    async def agent_history() -> list[dict[str, Any]] | None:
        page = await gateway.get(
            f"/v1/teams/{team_id}/activity",
            params={"action": "task.", "limit": 200},
            headers=ada,
        )
        items = page.json()["items"]
        return items if len(items) == 40 else None  # 20 tasks: created + completed

    history = await eventually(agent_history, within=30.0)
    assert history is not None
    oldest = min(datetime.fromisoformat(r["created_at"]) for r in history)
    assert oldest < datetime.now(UTC) - timedelta(days=1)  # spread over past days

    async def tasks_counted() -> int | None:
        today = datetime.now(UTC).date()
        usage = await gateway.get(
            f"/v1/teams/{team_id}/usage",
            params={"from": str(today - timedelta(days=11)), "to": str(today)},
            headers=ada,
        )
        total = sum(d["tasks_created"] for d in usage.json()["items"])
        return total if total == 20 else None

    assert await eventually(tasks_counted, within=30.0) == 20

    again = await build(url, infra.broker_url, e2e_namespace, events_per_team=0, say=lines.append)
    assert again["teams"] == first["teams"]
    assert again["people"] == first["people"]
    workspaces_again = (
        await gateway.get(
            f"/v1/teams/{team_id}/workspaces", params={"include_archived": "true"}, headers=ada
        )
    ).json()["items"]
    assert len(workspaces_again) == len(workspaces)
