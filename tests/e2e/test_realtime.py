"""The realtime service as a real process behind real tokens: the seed's sync
test with a second client as the receiver, and a graceful restart."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agenthq_devctl.supervisor import Stack

from .people import create_team, sign_up

pytestmark = pytest.mark.e2e


def socket_url(stack: Stack, team_id: str, who: dict[str, Any]) -> str:
    token = who["headers"]["Authorization"].split()[1]
    base = stack.public_ws_url
    return f"{base}/ws/{team_id}?token={token}"


async def frames_until(ws: Any, kind: str, within: float = 10.0) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), within))
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


async def test_real_time_sync_and_a_graceful_restart(
    stack: Stack, gateway: httpx.AsyncClient
) -> None:
    instances = stack.replicas_of("realtime")
    owner = await sign_up(gateway, "live")
    team_id = await create_team(gateway, owner, "Live")
    async with (
        websockets.connect(socket_url(stack, team_id, owner)) as sender,
        websockets.connect(socket_url(stack, team_id, owner)) as receiver,
    ):
        await frames_until(sender, "welcome")
        await frames_until(receiver, "welcome")
        # The seed's test_real_time_sync, with a second client receiving.
        await sender.send(json.dumps({"type": "task_created", "data": {"task_id": "123"}}))
        data = await frames_until(receiver, "task_created")
        assert data["type"] == "task_created"
        assert data["data"] == {"task_id": "123"}
        assert data["user_id"] == owner["user"]["id"]

        # A domain event from a REST write reaches the sockets too.
        created = await gateway.post(
            f"/v1/teams/{team_id}/workspaces", json={"name": "Live one"}, headers=owner["headers"]
        )
        assert created.status_code == 201, created.text
        event = await frames_until(receiver, "workspace.created", within=20.0)
        assert event["data"]["name"] == "Live one"

        presence = await gateway.get(f"/v1/teams/{team_id}/presence", headers=owner["headers"])
        assert presence.status_code == 200, presence.text
        assert presence.json()[0]["connections"] == 2

        # SIGTERM (every instance, when replicated): every socket is told to go
        # elsewhere (1001), presence is cleaned.
        await asyncio.gather(*(stack.stop_service(p.name) for p in instances))
        for ws in (sender, receiver):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
    for instance in instances:
        await stack.start_service("realtime", name=instance.name)
    # Every process ready, and, when replicated, HAProxy routing to them again.
    await stack.wait_ready(timeout=60)
    presence = await gateway.get(f"/v1/teams/{team_id}/presence", headers=owner["headers"])
    assert presence.json() == []
