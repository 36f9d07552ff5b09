"""The realtime protocol across two instances, against real Redis and RabbitMQ."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from agenthq_common.testing.plugin import eventually
from agenthq_realtime.channels.frames import entry
from agenthq_realtime.channels.hub import READ_BLOCK_MS
from agenthq_realtime.channels.sockets import Channels

from .conftest import Harness, receive, receive_until


async def closed_with(ws, within: float = 5.0) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    try:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, exc.rcvd.reason


@pytest.mark.parametrize("how", ["header", "query", "frame"])
async def test_welcome_after_each_way_of_presenting_the_token(rt: Harness, how: str) -> None:
    user = uuid.uuid4()
    team = await rt.team((user, "admin"))
    ws = await rt.connect(rt.a, team, user, how=how)
    welcome = await receive(ws)
    assert welcome["type"] == "welcome"
    assert welcome["user_id"] == str(user) and welcome["team_id"] == str(team)
    assert uuid.UUID(welcome["connection_id"])
    assert {"user_id": str(user), "connections": 1} in welcome["presence"]
    assert isinstance(welcome["last_id"], str)
    await ws.close()


async def test_the_seed_path_works_too(rt: Harness) -> None:
    user = uuid.uuid4()
    team = await rt.team((user, "member"))
    ws = await rt.connect(rt.b, team, user, how="query", path="/ws/{team}")
    assert (await receive(ws))["type"] == "welcome"
    await ws.close()


async def test_bad_token_and_non_member_are_closed(rt: Harness) -> None:
    user, outsider = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((user, "admin"))
    ws = await rt.connect(rt.a, team, None)
    await ws.send(json.dumps({"type": "auth", "token": "not-a-token"}))
    assert (await closed_with(ws))[0] == 4401
    ws = await rt.connect(rt.a, team, outsider)
    assert await closed_with(ws) == (1008, "Not a team member")


async def test_frames_reach_the_other_instance_stamped_and_not_echoed(rt: Harness) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((alice, "admin"), (bob, "member"))
    a = await rt.connect(rt.a, team, alice)
    b = await rt.connect(rt.b, team, bob)
    await receive(a)
    await receive(b)
    await a.send(json.dumps({"type": "cursor.moved", "data": {"x": 1}, "user_id": str(bob)}))
    frame, _ = await receive_until(b, lambda f: f["type"] == "cursor.moved")
    assert frame["user_id"] == str(alice)  # stamped by the server, not the client
    assert frame["data"] == {"x": 1} and frame["team_id"] == str(team)
    assert "-" in frame["id"]
    await a.send(json.dumps({"type": "ping"}))
    _, skipped = await receive_until(a, lambda f: f["type"] == "pong")
    assert not [f for f in skipped if f["type"] == "cursor.moved"]  # not back to the sender
    await a.close()
    await b.close()


async def test_domain_events_reach_every_instance(rt: Harness) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((alice, "admin"), (bob, "viewer"))
    a = await rt.connect(rt.a, team, alice)
    b = await rt.connect(rt.b, team, bob)
    await receive(a)
    await receive(b)
    workspace = uuid.uuid4()
    await rt.publish(
        "workspace.created",
        {
            "workspace_id": workspace,
            "team_id": team,
            "name": "W",
            "description": "",
            "archived": False,
        },
        team_id=team,
        actor=alice,
    )
    for ws in (a, b):
        frame, _ = await receive_until(ws, lambda f: f["type"] == "workspace.created")
        assert frame["data"]["workspace_id"] == str(workspace)
        assert frame["user_id"] == str(alice)
    await a.close()
    await b.close()


async def test_reserved_types_viewers_and_bad_frames_get_errors(rt: Harness) -> None:
    admin, viewer = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((admin, "admin"), (viewer, "viewer"))
    a = await rt.connect(rt.a, team, admin)
    v = await rt.connect(rt.a, team, viewer)
    await receive(a)
    await receive(v)
    for kind in ("presence.joined", "welcome", "member.removed", "workspace.created", "auth"):
        await a.send(json.dumps({"type": kind, "data": {}}))
        error, _ = await receive_until(a, lambda f: f["type"] == "error")
        assert error["code"] == "reserved_type", kind
    await v.send(json.dumps({"type": "note", "data": {}}))
    error, _ = await receive_until(v, lambda f: f["type"] == "error")
    assert error["code"] == "forbidden"
    await a.send("not json")
    assert (await receive_until(a, lambda f: f["type"] == "error"))[0]["code"] == "invalid_json"
    await a.send(json.dumps({"type": "big", "data": "x" * 70_000}))
    assert (await receive_until(a, lambda f: f["type"] == "error"))[0]["code"] == "frame_too_large"
    await a.close()
    await v.close()


async def test_repeated_abuse_closes_the_socket(rt: Harness) -> None:
    admin = uuid.uuid4()
    team = await rt.team((admin, "admin"))
    a = await rt.connect(rt.a, team, admin)
    await receive(a)
    for _ in range(12):
        await a.send("{")
    assert (await closed_with(a))[0] == 1008


async def test_resume_replays_what_was_missed_then_goes_live(rt: Harness) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((alice, "admin"), (bob, "member"))
    a = await rt.connect(rt.a, team, alice)
    b = await rt.connect(rt.b, team, bob)
    await receive(a)
    await receive(b)
    await a.send(json.dumps({"type": "n", "data": 0}))
    first, _ = await receive_until(b, lambda f: f["type"] == "n")
    await b.close()
    for i in range(1, 6):
        await a.send(json.dumps({"type": "n", "data": i}))
    await asyncio.sleep(0.2)
    b = await rt.connect(rt.a, team, bob, since=first["id"])
    assert (await receive(b))["type"] == "welcome"
    await a.send(json.dumps({"type": "n", "data": 6}))
    seen = []
    while len(seen) < 6:
        frame = await receive(b)
        if frame["type"] == "n":
            seen.append(frame["data"])
    assert seen == [1, 2, 3, 4, 5, 6]
    await a.close()
    await b.close()


async def test_a_long_replay_waits_for_a_slow_client_instead_of_cutting_it_off(
    rt: Harness,
) -> None:
    """10 MB of missed frames (150 times the fixture's 64 KiB send buffer) to a
    client with a small receive buffer that reads late: the replay waits for
    it (flow control), and it gets every frame, in order, then live ones."""
    alice = uuid.uuid4()
    team = await rt.team((alice, "admin"))
    hub = rt.a.service.component(Channels).hub
    since = await hub.append(team, entry("n", team, alice, {"i": -1}))
    payload = "z" * 10_000
    for start in range(0, 1000, 100):
        async with hub.redis.pipeline(transaction=False) as pipe:
            for i in range(start, start + 100):
                pipe.xadd(hub.key(team), entry("n", team, alice, {"i": i, "p": payload}))
            await pipe.execute()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    host, port = rt.a.ws.removeprefix("ws://").split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await rt.connect(rt.a, team, alice, since=since, sock=sock, max_queue=4)
    await asyncio.sleep(1.0)  # not reading: the replay must wait, not overflow
    await hub.append(team, entry("n", team, alice, {"i": 1000}))
    seen = []
    while len(seen) < 1001:
        frame = await receive(ws, within=10.0)
        if frame["type"] == "n":
            seen.append(frame["data"]["i"])
    assert seen == list(range(1001))
    await ws.close()


async def test_resume_from_a_trimmed_id_fails_cleanly(rt: Harness) -> None:
    alice = uuid.uuid4()
    team = await rt.team((alice, "admin"))
    hub = rt.a.service.component(Channels).hub
    for i in range(3):
        await hub.append(team, {"f": json.dumps({"type": "n", "data": i})})
    await hub.redis.xtrim(hub.key(team), maxlen=1, approximate=False)
    ws = await rt.connect(rt.b, team, alice, since="1-0")
    assert (await receive(ws))["type"] == "welcome"
    assert (await receive(ws))["type"] == "resume.failed"
    await ws.close()


async def not_presence(ws) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The next frame that is not a presence announcement (their place among the
    others depends on timing)."""
    while True:
        frame = await receive(ws)
        if not frame["type"].startswith("presence."):
            return frame  # type: ignore[no-any-return]


async def test_a_quiet_teams_history_expires_and_an_older_resume_fails(rt: Harness) -> None:
    alice = uuid.uuid4()
    team = await rt.team((alice, "admin"))
    hub = rt.a.service.component(Channels).hub
    frame_id = await hub.append(team, {"f": json.dumps({"type": "n", "data": 1})})
    # Every append pushes the expiry back by the history's lifetime.
    ttl = await hub.redis.ttl(hub.key(team))
    assert hub.history_ttl - 5 <= ttl <= hub.history_ttl
    # The history expired: a resume from before the expiry cannot be served...
    await hub.redis.delete(hub.key(team))
    expired_ms = (int(time.time()) - hub.history_ttl - 60) * 1000
    ws = await rt.connect(rt.b, team, alice, since=f"{expired_ms}-0")
    assert (await receive(ws))["type"] == "welcome"
    assert (await not_presence(ws))["type"] == "resume.failed"
    await ws.close()
    # ...but one from after it (or from a Redis that lost its data) saw
    # everything there was, and goes on with what comes next.
    ws = await rt.connect(rt.b, team, alice, since=frame_id)
    assert (await receive(ws))["type"] == "welcome"
    await hub.append(team, {"f": json.dumps({"type": "n", "data": 2})})
    frame = await not_presence(ws)
    assert frame["type"] == "n" and frame["data"] == 2
    await ws.close()


async def test_a_removed_member_is_disconnected_on_every_instance(rt: Harness) -> None:
    admin, gone = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((admin, "admin"), (gone, "member"))
    on_a = await rt.connect(rt.a, team, gone)
    on_b = await rt.connect(rt.b, team, gone)
    await receive(on_a)
    await receive(on_b)
    await rt.publish(
        "member.removed",
        {"team_id": team, "user_id": gone, "role": "member"},
        team_id=team,
        actor=admin,
    )
    results = await asyncio.gather(closed_with(on_a, 3), closed_with(on_b, 3))
    assert results == [(1008, "Not a team member")] * 2


async def test_presence_across_instances(rt: Harness) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    team = await rt.team((alice, "admin"), (bob, "member"))
    a = await rt.connect(rt.a, team, alice)
    await receive(a)
    b1 = await rt.connect(rt.b, team, bob)
    b2 = await rt.connect(rt.a, team, bob)
    joined, _ = await receive_until(a, lambda f: f["type"] == "presence.joined")
    assert joined["data"] == {"user_id": str(bob)}
    async with httpx.AsyncClient() as client:
        present = (
            await client.get(
                f"{rt.b.url}/v1/teams/{team}/presence", headers=rt.signer.headers(alice)
            )
        ).json()
    by_user = {p["user_id"]: p["connections"] for p in present}
    assert by_user == {str(alice): 1, str(bob): 2}
    await b1.close()
    await asyncio.sleep(0.3)
    await b2.close()
    left, skipped = await receive_until(a, lambda f: f["type"] == "presence.left")
    assert left["data"] == {"user_id": str(bob)}
    assert not [f for f in skipped if f["type"] == "presence.left"]
    await a.close()


def stalled_client(rt: Harness, team: uuid.UUID, user: uuid.UUID) -> socket.socket:
    """A WebSocket client that completes the handshake, then never reads again
    (a raw socket with a small receive buffer, so the kernel does not absorb
    megabytes on its behalf: loopback autotuning goes up to tens of MB).
    Blocking calls: run it in a thread, the servers share this event loop."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    host, port = rt.a.ws.removeprefix("ws://").split(":")
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/teams/{team} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {rt.signer.token(user)}\r\n\r\n"
        ).encode()
    )
    sock.settimeout(5)
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


async def test_a_client_that_does_not_read_is_closed_and_slows_nobody(rt: Harness) -> None:
    """The instance holds 64 KiB per socket (the fixture's send buffer); a
    socket that stops reading is closed with 1013 once its buffers are full,
    while a reading socket of the same team on the same instance gets every
    frame."""
    alice, slow, fast = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    team = await rt.team((alice, "admin"), (slow, "member"), (fast, "member"))
    stalled = await asyncio.to_thread(stalled_client, rt, team, slow)
    try:
        await lagging_client_is_cut_off(rt, team, alice, slow, fast, stalled)
    finally:
        stalled.close()


async def lagging_client_is_cut_off(  # type: ignore[no-untyped-def]
    rt: Harness, team: uuid.UUID, alice: uuid.UUID, slow: uuid.UUID, fast: uuid.UUID, stalled
) -> None:
    reader = await rt.connect(rt.a, team, fast)
    await receive(reader)
    hub = rt.b.service.component(Channels).hub
    payload = "y" * 60_000
    frames = 400  # 24 MB: far more than the stalled socket's buffers hold
    received = 0

    async def read_all() -> None:
        nonlocal received
        while received < frames:
            frame = await receive(reader, within=10.0)
            if frame["type"] == "bulk":
                received += 1

    reading = asyncio.create_task(read_all())
    for i in range(frames):
        await hub.append(team, entry("bulk", team, alice, {"i": i, "p": payload}))
    await asyncio.wait_for(reading, 60.0)
    assert received == frames

    channels = rt.a.service.component(Channels)

    async def closed_for_lag() -> bool:
        return not any(c.user_id == slow for c in channels.hub.teams.get(team, ()))

    await eventually(closed_for_lag, within=10.0)
    # What reaches the client, once it reads again, ends with a 1013 close frame.
    stalled.settimeout(10)
    tail = b""
    while chunk := await asyncio.to_thread(stalled.recv, 1 << 20):
        tail = (tail + chunk)[-64:]
    assert b"\x88" in tail and (1013).to_bytes(2, "big") in tail


async def test_tokens_never_reach_a_log_line(
    rt: Harness, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    user = uuid.uuid4()
    team = await rt.team((user, "admin"))
    caplog.set_level("DEBUG")
    for how in ("query", "header", "frame"):
        ws = await rt.connect(rt.a, team, user, how=how)
        await receive(ws)
        await ws.close()
    bad = await rt.connect(rt.b, team, None, how="query")
    await bad.close()
    await asyncio.sleep(0.2)
    token = rt.signer.token(user)
    signature = token.rsplit(".", 1)[1]
    # The server's lines (the test's own websockets client logs its requests).
    server_lines = [
        r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client")
    ]
    logged = capsys.readouterr().out + "\n".join(server_lines)
    assert "/ws/teams/" in logged  # the connection lines were there
    assert signature not in logged
    assert "token=ey" not in logged


async def test_an_idle_stream_read_outlives_its_block(rt: Harness) -> None:
    """The reader's socket timeout must exceed XREAD's block, else every idle
    read fails and the next waits a retry pause."""
    hub = rt.a.service.component(Channels).hub
    assert hub._reader is not None
    timeout = hub._reader.connection_pool.connection_kwargs["socket_timeout"]
    assert timeout > READ_BLOCK_MS / 1000


async def test_presence_is_heart_beaten_from_the_join_on(rt: Harness) -> None:
    """A socket's entry is kept alive from its join, not only once it is
    attached (a welcome slower than the TTL must not lose it), and is gone
    with the socket."""
    alice = uuid.uuid4()
    team = await rt.team((alice, "admin"))
    channels = rt.a.service.component(Channels)
    ws = await rt.connect(rt.a, team, alice)
    welcome = await receive(ws)
    assert welcome["presence"] == [{"user_id": str(alice), "connections": 1}]
    entries = [e for e in channels.joined.values() if e[0] == team]
    assert [(t, u) for t, u, _ in entries] == [(team, alice)]
    # Expire the entry in Redis, as a late heartbeat would let it; the next
    # heartbeat (XX) cannot bring back what the janitor removed, but one in
    # time renews it.
    key = f"{channels.presence.prefix}:{team}:{alice}"
    await channels.presence.redis.zadd(key, {entries[0][2]: time.time() + 0.5}, xx=True)
    await channels.presence.heartbeat(list(channels.joined.values()))
    score = await channels.presence.redis.zscore(key, entries[0][2])
    assert score is not None and score > time.time() + channels.presence.ttl - 5
    await ws.close()

    async def left() -> bool:
        return not [e for e in channels.joined.values() if e[0] == team]

    await eventually(left, within=5.0)
