"""The WebSocket server itself: what it answers besides a channel, how it
fails, and how it stops."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agenthq_common.testing.tokens import TestSigner
from agenthq_realtime.channels.frames import entry
from agenthq_realtime.channels.server import SocketEndpoint
from agenthq_realtime.channels.sockets import Channels
from agenthq_realtime.main import bootstrap
from agenthq_realtime.settings import RealtimeSettings

from .conftest import Harness, Instance, receive, receive_until, serve


@pytest.mark.parametrize(
    "path",
    ["/", "/ws", "/ws/teams/not-a-uuid", "/ws/teams/", "/ws/teams/{team}/more", "/v1/x"],
)
async def test_paths_without_a_channel_get_404_in_the_contract_shape(
    rt: Harness, path: str
) -> None:
    path = path.format(team=uuid.uuid4())
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(rt.a.ws + path)
    assert refused.value.response.status_code == 404
    async with httpx.AsyncClient() as client:
        response = await client.get(rt.a.ws.replace("ws://", "http://") + path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "server" not in response.headers


async def test_a_channel_without_the_upgrade_gets_426(rt: Harness) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            rt.a.ws.replace("ws://", "http://") + f"/ws/teams/{uuid.uuid4()}"
        )
    assert response.status_code == 426


async def test_no_compression_and_no_banner(rt: Harness) -> None:
    user = uuid.uuid4()
    team = await rt.team((user, "member"))
    ws = await rt.connect(rt.a, team, user)  # the client offers permessage-deflate
    assert (await receive(ws))["type"] == "welcome"
    assert ws.response is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    assert "Server" not in ws.response.headers
    await ws.close()


async def test_a_dependency_failing_after_the_handshake_closes_with_1011(
    rt: Harness,
) -> None:
    """Redis gone between the handshake and the welcome: the client learns of
    an internal error (1011), not an abnormal closure, and can retry."""
    user = uuid.uuid4()
    team = await rt.team((user, "member"))
    presence = rt.a.service.component(Channels).presence
    working = presence.redis
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    presence.redis = dead
    try:
        ws = await rt.connect(rt.a, team, user)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    finally:
        presence.redis = working
        await dead.aclose()
    ws = await rt.connect(rt.a, team, user)
    assert (await receive(ws))["type"] == "welcome"
    await ws.close()


async def test_stopping_closes_every_socket_with_1001_and_leaves_the_presence(
    rt: Harness, settings_for: Callable[..., Any], signer: TestSigner
) -> None:
    """A third instance stops while a member is connected to it: the socket
    gets 1001 (reconnect elsewhere), the member's presence is gone, and the
    team's other sockets hear presence.left."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((alice, "admin"), (bob, "member"))
    settings = settings_for(
        RealtimeSettings,
        database_url=rt.a.service.settings.database_url,
        instance_id="inst-c",
        ws_port=0,
    )
    service = bootstrap(settings, key_source=signer.keys)
    server, task, base = await serve(service)
    third = Instance(service, base, server)
    watcher = await rt.connect(rt.a, team, alice)
    await receive(watcher)
    leaving = await rt.connect(third, team, bob)
    assert (await receive(leaving))["type"] == "welcome"
    await receive_until(watcher, lambda f: f["type"] == "presence.joined")
    address = third.ws
    with pytest.raises(InvalidStatus):
        await websockets.connect(address + "/nowhere")  # listening until now

    await service.component(SocketEndpoint).stop()
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(leaving.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    left, _ = await receive_until(watcher, lambda f: f["type"] == "presence.left")
    assert left["data"] == {"user_id": str(bob)}
    with pytest.raises(OSError):
        await websockets.connect(address + f"/ws/teams/{team}")  # no longer taking sockets
    server.should_exit = True
    await task
    await watcher.close()


async def test_frames_of_every_length_class_arrive_whole(rt: Harness) -> None:
    """Frames are framed once for all sockets: the three length encodings of
    RFC 6455 (7-bit, 16-bit, 64-bit) reach every socket, on both instances."""
    alice = uuid.uuid4()
    team = await rt.team((alice, "admin"))
    sockets = [await rt.connect(i, team, alice) for i in (rt.a, rt.a, rt.b)]
    for ws in sockets:
        await receive(ws)
    hub = rt.a.service.component(Channels).hub
    sizes = [1, 100, 1_000, 70_000, 300_000]
    for size in sizes:
        await hub.append(team, entry("blob", team, alice, {"p": "x" * size}))
    for ws in sockets:
        got = []
        while len(got) < len(sizes):
            frame, _ = await receive_until(ws, lambda f: f["type"] == "blob")
            got.append(len(frame["data"]["p"]))
        assert got == sizes
        await ws.close()
