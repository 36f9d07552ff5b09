"""Two more realtime instances as separate processes beside the stack's own,
sharing its Redis, RabbitMQ and database: every behaviour of the channels
across processes, with real tokens, real REST writes and real membership
changes, and a crash (SIGKILL) drill.

The two instances run with a presence TTL of 3 s (so a crashed instance's
connections expire within seconds, not 30), a send buffer of 64 KiB and
DEBUG logs (so that the log check sees every line they could write).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from agenthq_common.testing.infra import Infrastructure
from agenthq_common.testing.plugin import eventually
from agenthq_devctl.supervisor import Stack
from agenthq_realtime.channels.frames import stream_key

from .conftest import free_port
from .people import add_member, create_team, sign_up

pytestmark = pytest.mark.e2e

A, B = "realtime-a", "realtime-b"
PRESENCE_TTL = 3


@dataclass
class Instances:
    stack: Stack
    gateway: httpx.AsyncClient

    def url(self, name: str, team_id: str, who: dict[str, Any], since: str | None = None) -> str:
        token = who["headers"]["Authorization"].split()[1]
        base = self.stack.processes[name].ws_url
        return f"{base}/ws/teams/{team_id}?token={token}" + (f"&since={since}" if since else "")

    async def connect(
        self, name: str, team_id: str, who: dict[str, Any], since: str | None = None
    ) -> tuple[ClientConnection, dict[str, Any]]:
        """A socket past its welcome (retried while the instance has not yet
        heard that ``who`` joined the team)."""

        async def welcomed() -> tuple[ClientConnection, dict[str, Any]] | None:
            ws = await websockets.connect(self.url(name, team_id, who, since), max_size=None)
            try:
                return ws, await receive(ws)
            except ConnectionClosed:
                return None

        return await eventually(welcomed, within=15.0, interval=0.2)

    async def presence(self, team_id: str, who: dict[str, Any]) -> dict[str, int]:
        response = await self.gateway.get(f"/v1/teams/{team_id}/presence", headers=who["headers"])
        assert response.status_code == 200, response.text
        return {p["user_id"]: p["connections"] for p in response.json()}


@pytest.fixture(scope="module")
async def instances(stack: Stack, gateway: httpx.AsyncClient) -> AsyncIterator[Instances]:
    env = {
        "AGENTHQ_REALTIME_PRESENCE_TTL_SECONDS": str(PRESENCE_TTL),
        "AGENTHQ_REALTIME_SEND_BUFFER_BYTES": str(64 * 1024),
        "AGENTHQ_LOG_LEVEL": "DEBUG",
    }
    for name in (A, B):
        await stack.start_service(
            "realtime",
            name=name,
            port=free_port(),
            ws_port=free_port(),
            extra_env={**env, "AGENTHQ_REALTIME_INSTANCE_ID": name},
        )
    await stack.wait_ready(only={A, B}, timeout=60)
    try:
        yield Instances(stack, gateway)
    finally:
        for name in (A, B):
            await stack.stop_service(name)
            del stack.processes[name]


@pytest.fixture(scope="module")
async def gateway(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.public_url("gateway"), timeout=10) as client:
        yield client


async def receive(ws: ClientConnection, within: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), within))  # type: ignore[no-any-return]


async def receive_until(
    ws: ClientConnection, kind: str, within: float = 10.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first frame of type ``kind``, and the frames before it."""
    before = []
    deadline = time.monotonic() + within
    while True:
        frame = await receive(ws, max(deadline - time.monotonic(), 0.01))
        if frame["type"] == kind:
            return frame, before
        before.append(frame)


async def closed_with(ws: ClientConnection, within: float = 10.0) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def team_of(
    gateway: httpx.AsyncClient, *roles: str
) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """A team, its owner, and one member per role."""
    owner = await sign_up(gateway, "rt-owner")
    team_id = await create_team(gateway, owner, "Realtime across processes")
    members = []
    for role in roles:
        who = await sign_up(gateway, f"rt-{role}")
        await add_member(gateway, team_id, owner, who, role)
        members.append(who)
    return team_id, owner, members


async def test_frames_and_domain_events_reach_every_process_once(
    instances: Instances, gateway: httpx.AsyncClient
) -> None:
    team_id, owner, (member, viewer) = await team_of(gateway, "member", "viewer")
    on_a, _ = await instances.connect(A, team_id, owner)
    on_b, _ = await instances.connect(B, team_id, member)
    on_main, _ = await instances.connect("realtime", team_id, viewer)
    # No permessage-deflate (the client offers it): its zlib state would cost
    # each socket ~100 KiB of the instance's memory.
    for ws in (on_a, on_b, on_main):
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers

    # A client frame sent on A reaches B and the stack's instance, stamped
    # with the sender by the server; and the other way round.
    await on_a.send(json.dumps({"type": "cursor.moved", "data": {"x": 1}}))
    for ws in (on_b, on_main):
        frame, _ = await receive_until(ws, "cursor.moved")
        assert frame["data"] == {"x": 1}
        assert frame["user_id"] == owner["user"]["id"]
        assert frame["id"]
    await on_b.send(json.dumps({"type": "typing", "data": {"on": True}}))
    frame, skipped = await receive_until(on_a, "typing")
    assert frame["user_id"] == member["user"]["id"]
    assert "cursor.moved" not in [f["type"] for f in skipped], "the sender got its own frame"

    # Refused whichever instance holds the socket: a reserved type, a viewer.
    await on_a.send(json.dumps({"type": "workspace.created", "data": {}}))
    assert (await receive_until(on_a, "error"))[0]["code"] == "reserved_type"
    await on_main.send(json.dumps({"type": "typing", "data": {}}))
    assert (await receive_until(on_main, "error"))[0]["code"] == "forbidden"

    # Domain events from REST writes: consumed from the bus by one of the
    # three instances, delivered to the sockets of all three, once each.
    names = [f"Across {i}" for i in range(5)]
    for name in names:
        created = await gateway.post(
            f"/v1/teams/{team_id}/workspaces", json={"name": name}, headers=owner["headers"]
        )
        assert created.status_code == 201, created.text
    await asyncio.sleep(1.0)  # a duplicate, if there were one, would be in the stream by now
    await on_a.send(json.dumps({"type": "marker", "data": {}}))
    for ws in (on_b, on_main):
        _, before = await receive_until(ws, "marker", within=20.0)
        seen = [f["data"]["name"] for f in before if f["type"] == "workspace.created"]
        assert seen == names
    for ws in (on_a, on_b, on_main):
        await ws.close()


async def test_presence_counts_connections_of_every_process(
    instances: Instances, gateway: httpx.AsyncClient
) -> None:
    team_id, owner, (member,) = await team_of(gateway, "member")
    watcher, _ = await instances.connect(A, team_id, owner)
    first, _ = await instances.connect(B, team_id, member)
    second, welcome = await instances.connect(A, team_id, member)
    assert {p["user_id"]: p["connections"] for p in welcome["presence"]} == {
        owner["user"]["id"]: 1,
        member["user"]["id"]: 2,
    }
    assert await instances.presence(team_id, owner) == {
        owner["user"]["id"]: 1,
        member["user"]["id"]: 2,
    }
    await first.close()
    await eventually(
        lambda: _presence_is(instances, team_id, owner, {member["user"]["id"]: 1}), within=5
    )
    await second.close()
    left, before = await receive_until(watcher, "presence.left")
    assert left["data"] == {"user_id": member["user"]["id"]}
    joins = [f for f in before if f["type"] == "presence.joined"]
    assert [f["data"]["user_id"] for f in joins] == [member["user"]["id"]]
    assert not [f for f in before if f["type"] == "presence.left"]
    assert await instances.presence(team_id, owner) == {owner["user"]["id"]: 1}
    await watcher.close()


async def _presence_is(
    instances: Instances, team_id: str, who: dict[str, Any], expected: dict[str, int]
) -> bool:
    present = await instances.presence(team_id, who)
    return all(present.get(user) == count for user, count in expected.items())


async def test_a_removed_member_is_disconnected_on_every_process_within_a_second(
    instances: Instances, gateway: httpx.AsyncClient
) -> None:
    team_id, owner, (member,) = await team_of(gateway, "member")
    sockets = [(await instances.connect(name, team_id, member))[0] for name in (A, B)]
    removed = await gateway.delete(
        f"/v1/teams/{team_id}/members/{member['user']['id']}", headers=owner["headers"]
    )
    assert removed.status_code == 204, removed.text
    started = time.monotonic()
    closes = await asyncio.gather(*(closed_with(ws) for ws in sockets))
    took = time.monotonic() - started
    assert closes == [(1008, "Not a team member")] * 2
    assert took < 1.0, f"closed after {took:.2f} s"
    # ...and cannot come back.
    ws = await websockets.connect(instances.url(B, team_id, member))
    assert await closed_with(ws) == (1008, "Not a team member")


async def test_resume_on_the_other_process_without_gap_or_duplicate(
    instances: Instances, gateway: httpx.AsyncClient, infra: Infrastructure, e2e_namespace: str
) -> None:
    team_id, owner, (member,) = await team_of(gateway, "member")
    sender, _ = await instances.connect(B, team_id, owner)
    reader, _ = await instances.connect(A, team_id, member)
    await sender.send(json.dumps({"type": "n", "data": 0}))
    last = (await receive_until(reader, "n"))[0]["id"]
    await reader.close()

    # Missed while away, then more while the new socket replays.
    for n in range(1, 6):
        await sender.send(json.dumps({"type": "n", "data": n}))
    await asyncio.sleep(0.3)

    async def keep_sending() -> None:
        for n in range(6, 16):
            await sender.send(json.dumps({"type": "n", "data": n}))
            await asyncio.sleep(0.06)  # the contract's 20 frames/s

    sending = asyncio.create_task(keep_sending())
    resumed, welcome = await instances.connect(B, team_id, member, since=last)
    assert welcome["type"] == "welcome"
    await sending
    seen = []
    while len(seen) < 15:
        frame = await receive(resumed)
        if frame["type"] == "n":
            seen.append(frame["data"])
    assert seen == list(range(1, 16))
    await resumed.close()

    # Too old to resume: the history was trimmed past it.
    redis = aioredis.from_url(infra.redis_url)
    try:
        await redis.xtrim(stream_key(e2e_namespace, uuid.UUID(team_id)), maxlen=1)
    finally:
        await redis.aclose()
    failed, _ = await instances.connect(A, team_id, member, since="1-0")
    assert (await receive(failed))["type"] == "resume.failed"
    await failed.close()
    await sender.close()


def stalled_client(url: str) -> socket.socket:
    """A client that completes the handshake, then never reads again (a raw
    socket with a small receive buffer: loopback autotuning would otherwise
    absorb tens of MB on its behalf). Blocking: run it in a thread."""
    base, _, path = url.removeprefix("ws://").partition("/")
    host, port = base.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /{path} HTTP/1.1\r\nHost: {base}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    sock.settimeout(10)
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def read_to_the_end(sock: socket.socket) -> bytes:
    tail = b""
    while chunk := sock.recv(1 << 20):
        tail = (tail + chunk)[-64:]
    return tail


async def test_a_client_that_stops_reading_is_closed_and_slows_nobody(
    instances: Instances, gateway: httpx.AsyncClient
) -> None:
    """About 25 MB of frames, sent on B, for a team with a stalled socket and a
    reading one on A: the stalled one is closed with 1013 once its 64 KiB
    buffer (and the kernel's) is full; the reading one gets every frame, in
    time (median latency under the seed's 100 ms)."""
    team_id, owner, (slow, fast) = await team_of(gateway, "member", "member")
    stalled = await asyncio.to_thread(stalled_client, instances.url(A, team_id, slow))
    reader, _ = await instances.connect(A, team_id, fast)
    senders = [(await instances.connect(B, team_id, owner))[0] for _ in range(12)]
    per_sender, payload = 35, "y" * 60_000

    async def drain(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass

    draining = [asyncio.create_task(drain(ws)) for ws in senders]

    async def send(ws: ClientConnection, k: int) -> None:
        for i in range(per_sender):
            data = {"k": k, "i": i, "t": time.monotonic(), "p": payload}
            await ws.send(json.dumps({"type": "bulk", "data": data}))
            await asyncio.sleep(0.06)

    latencies: list[float] = []

    async def read() -> None:
        while len(latencies) < per_sender * len(senders):
            frame = await receive(reader, within=15.0)
            if frame["type"] == "bulk":
                latencies.append(time.monotonic() - frame["data"]["t"])

    try:
        reading = asyncio.create_task(read())
        await asyncio.gather(*(send(ws, k) for k, ws in enumerate(senders)))
        await asyncio.wait_for(reading, 60)
        tail = await asyncio.to_thread(read_to_the_end, stalled)
    finally:
        stalled.close()
        for task in draining:
            task.cancel()
    # The stalled client's stream ends with a close frame carrying 1013.
    assert b"\x88" in tail and (1013).to_bytes(2, "big") in tail
    assert len(latencies) == per_sender * len(senders)
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1, f"median {latencies[len(latencies) // 2]:.3f} s"
    for ws in (reader, *senders):
        await ws.close()


async def test_a_crashed_process_leaves_no_ghosts_and_its_clients_resume_elsewhere(
    instances: Instances, gateway: httpx.AsyncClient
) -> None:
    team_id, owner, (member,) = await team_of(gateway, "member")
    watcher, _ = await instances.connect(A, team_id, owner)
    doomed = [(await instances.connect(B, team_id, member))[0] for _ in range(2)]
    await watcher.send(json.dumps({"type": "n", "data": 0}))
    last = (await receive_until(doomed[0], "n"))[0]["id"]
    assert (await instances.presence(team_id, owner))[member["user"]["id"]] == 2

    await instances.stack.kill_service(B)  # SIGKILL: no goodbye, presence left behind
    for ws in doomed:
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    await watcher.send(json.dumps({"type": "n", "data": 1}))  # missed by the member

    # Within the TTL (3 s here, 30 s by default) plus a janitor round.
    left, _ = await receive_until(watcher, "presence.left", within=30.0)
    assert left["data"] == {"user_id": member["user"]["id"]}
    assert await instances.presence(team_id, owner) == {owner["user"]["id"]: 1}

    # The client reconnects to a live instance and gets what it missed.
    back, _ = await instances.connect(A, team_id, member, since=last)
    assert (await receive_until(back, "n"))[0]["data"] == 1
    await back.close()
    await watcher.close()
    await instances.stack.start_service("realtime", name=B)
    await instances.stack.wait_ready(only={B}, timeout=60)


async def test_tokens_never_reach_the_logs_of_any_process(
    instances: Instances, gateway: httpx.AsyncClient
) -> None:
    team_id, owner, _ = await team_of(gateway)
    token = owner["headers"]["Authorization"].split()[1]
    for name in (A, B, "realtime"):
        ws, _ = await instances.connect(name, team_id, owner)
        await ws.close()
        base = instances.stack.processes[name].ws_url
        async with websockets.connect(
            f"{base}/ws/teams/{team_id}", additional_headers=owner["headers"]
        ) as ws:
            await receive(ws)
        async with websockets.connect(f"{base}/ws/teams/{team_id}") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await receive(ws)
        bad = await websockets.connect(f"{base}/ws/teams/{team_id}?token={token}x")
        assert (await closed_with(bad))[0] == 4401
    await asyncio.sleep(0.5)
    logged = "\n".join(
        instances.stack.processes[name].log_path.read_text() for name in (A, B, "realtime")
    )
    assert "/ws/teams/" in logged  # the connections were logged...
    signature = token.rsplit(".", 1)[1]
    assert signature not in logged  # ...without their tokens
    assert "token=ey" not in logged
