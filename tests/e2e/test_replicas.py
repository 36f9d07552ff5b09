"""Two of every service behind HAProxy (``make run REPLICAS=2``): requests and
sockets are spread over the replicas, every event has one effect, and a
replica killed mid-way costs no request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from agenthq_common.testing.plugin import eventually
from agenthq_devctl.supervisor import Stack

from . import people


@pytest.fixture
def replicated(stack: Stack) -> Stack:
    """The session's stack, when `make test` runs the end-to-end tests again with
    every service twice (AGENTHQ_E2E_REPLICAS=2); one replicated stack beside
    the single one would not fit PostgreSQL's 100 connections."""
    if len(stack.replicas_of("gateway")) < 2:
        pytest.skip("runs in the replicated pass of `make test` (AGENTHQ_E2E_REPLICAS=2)")
    return stack


def established(port: int) -> int:
    """TCP connections established to a local port (from /proc/net/tcp{,6})."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                count += 1
    return count


def served(stack: Stack, name: str, path: str) -> int:
    """Requests to ``path`` that replica ``name`` logged."""
    lines = stack.processes[name].log_path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if '"request"' in line and path in line)


async def test_requests_spread_over_the_replicas_and_events_have_one_effect(
    replicated: Stack,
) -> None:
    assert len(replicated.replicas_of("gateway")) == 2
    async with httpx.AsyncClient(base_url=replicated.public_url("gateway"), timeout=15) as gateway:
        owner = await people.sign_up(gateway, "replicas")
        team_id = await people.create_team(gateway, owner, "Twins")
        for _ in range(10):
            response = await gateway.get(f"/v1/teams/{team_id}", headers=owner["headers"])
            assert response.status_code == 200, response.text
        created = await gateway.post(
            f"/v1/teams/{team_id}/workspaces", json={"name": "Once"}, headers=owner["headers"]
        )
        assert created.status_code == 201, created.text
        workspace_id = created.json()["id"]

        async def recorded() -> list[dict[str, Any]] | None:
            page = await gateway.get(
                f"/v1/teams/{team_id}/activity",
                params={"action": "workspace.created"},
                headers=owner["headers"],
            )
            items = page.json()["items"]
            return items or None

        records = await eventually(recorded, within=20.0)
        await asyncio.sleep(1.0)  # a second record, if any, would come now
        records = await recorded()
        assert records is not None
        assert [r["resource_id"] for r in records] == [workspace_id]  # one effect, two consumers
    path = f"/v1/teams/{team_id}"
    for service in ("gateway", "team"):
        counts = [served(replicated, p.name, path) for p in replicated.replicas_of(service)]
        assert all(n > 0 for n in counts), f"{service}: {counts}"


async def test_sockets_through_haproxy_land_on_both_replicas_and_hear_each_other(
    replicated: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=replicated.public_url("gateway"), timeout=15) as gateway:
        owner = await people.sign_up(gateway, "sockets")
        team_id = await people.create_team(gateway, owner, "Echo")
        token = owner["headers"]["Authorization"].split()[1]
        url = f"{replicated.public_ws_url}/ws/teams/{team_id}?token={token}"
        a = await websockets.connect(url)
        b = await websockets.connect(url)
        try:
            welcome_a = json.loads(await asyncio.wait_for(a.recv(), 10))
            welcome_b = json.loads(await asyncio.wait_for(b.recv(), 10))
            assert welcome_a["type"] == welcome_b["type"] == "welcome"
            await a.send(json.dumps({"type": "hello", "data": {"n": 1}}))
            heard = json.loads(await asyncio.wait_for(b.recv(), 10))
            assert heard["type"] == "hello" and heard["data"] == {"n": 1}
            created = await gateway.post(
                f"/v1/teams/{team_id}/workspaces", json={"name": "Live"}, headers=owner["headers"]
            )
            assert created.status_code == 201
            for ws in (a, b):
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "workspace.created":
                        assert frame["data"]["name"] == "Live"
                        break
            # leastconn: the two sockets went one to each realtime replica.
            ports = [p.ws_port for p in replicated.replicas_of("realtime")]
            assert [established(port) for port in ports if port] == [1, 1]
        finally:
            await a.close()
            await b.close()


async def test_a_replica_killed_costs_no_request(replicated: Stack) -> None:
    async with httpx.AsyncClient(base_url=replicated.public_url("gateway"), timeout=15) as gateway:
        owner = await people.sign_up(gateway, "survivor")
        team_id = await people.create_team(gateway, owner, "Hardy")
        failures = []
        await replicated.kill_service("gateway-2")
        await replicated.kill_service("team-2")
        for _ in range(30):
            response = await gateway.get(f"/v1/teams/{team_id}", headers=owner["headers"])
            if response.status_code != 200:
                failures.append(response.status_code)
        assert failures == []
    await replicated.start_service("gateway", name="gateway-2")
    await replicated.start_service("team", name="team-2")
    await replicated.wait_ready(only={"gateway-2", "team-2"}, timeout=60)
