"""One instance's sockets and the team streams they listen to.

Fan-out goes through Redis streams, one per team: every frame (a domain event
consumed from the bus by any instance, a client's broadcast, presence) is
appended once to its team's stream, and every instance with sockets of that
team reads the stream and pushes each frame to its own sockets: each socket
gets each frame once, whichever instance appended it. Streams rather than
pub/sub because a stream keeps the history that resuming needs, gives every
frame the monotonic id the protocol exposes, and lets a reader that was busy
for a moment catch up instead of losing what was published meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from agenthq_common.logging import get_logger
from agenthq_realtime.channels.frames import KEY_PREFIX, parse_id, stream_key, wire

log = get_logger(__name__)

# How long a blocking read waits before looking again (it is woken early when
# this instance starts listening to another team).
READ_BLOCK_MS = 5000
READ_COUNT = 1000


# How long a closing socket may take to take its close frame (a stalled client
# may never read it); then the TCP connection is dropped.
CLOSE_FRAME_SECONDS = 10.0
SEND_BUFFER_FULL = 1013
# A resuming client's replay waits for it, up to this long per frame.
REPLAY_STALL_SECONDS = 10.0
# Live frames kept back during one replay (the history is ~5,000 frames).
MAX_HELD_FRAMES = 5000

# Close handshakes in flight, referenced so that they are not collected.
_closing: set[asyncio.Task[None]] = set()


def framed(text: str) -> bytes:
    """A text frame's bytes as this server sends them to any socket.

    ``websockets.broadcast`` frames a message again for every socket, as each
    may have negotiated other extensions (compression). This server negotiates
    none (``server.py`` refuses permessage-deflate) and a server's frames are
    not masked, so a frame's bytes are the same for every socket: frame once,
    then one transport write per socket (``write``), about a fifth of
    broadcast's cost per socket.
    """
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def write(websocket: ServerConnection, data: bytes) -> None:
    """Write a frame made by ``framed`` to an open socket (a closing one is
    skipped, as broadcast does). The protocol object writes its own frames
    (pings, pongs, the close) to the transport as it makes them, never holding
    any back, so writing beside it keeps every frame whole and in order."""
    if websocket.protocol.state is State.OPEN:
        websocket.transport.write(data)


@dataclass(eq=False, slots=True)
class Connection:
    """One socket of this instance: who it is, and where its stream stands.

    Frames are written straight to the socket's transport, never queued in a
    task of its own: a fan-out to thousands of sockets is one loop of
    synchronous writes (``framed`` once, ``write`` each), and a socket costs
    no task beyond its handler.
    """

    id: str
    team_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    can_broadcast: bool
    websocket: ServerConnection
    send_buffer: int  # bytes waiting in user space before a slow client is cut off
    connected_at: float = field(default_factory=time.time)
    cursor: tuple[int, int] = (0, 0)
    replaying: bool = False
    held: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    role_stale: bool = False
    hub: Hub | None = None  # set while attached

    def writable(self) -> bool:
        """Whether a frame may be written now; a client too slow to keep its
        buffer short is closed instead (it resumes with ``since``)."""
        if self.close_code is not None:
            return False
        if self.websocket.transport.get_write_buffer_size() > self.send_buffer:
            self.close(SEND_BUFFER_FULL, "Send buffer full: reconnect and resume")
            return False
        return True

    def push(self, text: str) -> None:
        if self.writable():
            write(self.websocket, framed(text))

    async def send(self, text: str) -> bool:
        """Write a frame with flow control: wait while the client is behind,
        instead of cutting it off. For a resume's replay only (thousands of
        frames at once, to a client that may be on a slow link; its live frames
        wait meanwhile), never for a fan-out. A client that takes no frame for
        REPLAY_STALL_SECONDS is cut off (1013), as in a fan-out. False once the
        socket is closed."""
        if self.close_code is not None:
            return False
        try:
            await asyncio.wait_for(self.websocket.send(text), REPLAY_STALL_SECONDS)
        except ConnectionClosed:
            return False
        except TimeoutError:
            self.close(SEND_BUFFER_FULL, "Too slow to take the missed frames: reconnect and resume")
            return False
        return True

    def hold(self, frame_id: tuple[int, int], text: str) -> None:
        """A live frame that arrived during the replay, for after it; bounded,
        so that a stalled replay cannot hold a busy team's frames for ever."""
        if self.close_code is not None:
            return
        if len(self.held) >= MAX_HELD_FRAMES:
            self.close(SEND_BUFFER_FULL, "Too far behind: reconnect and resume")
            return
        self.held.append((frame_id, text))

    def close(self, code: int, reason: str = "") -> None:
        """End this connection: it is detached at once, and its close frame
        goes after whatever the socket still holds (a stalled client may take
        it, or not, for CLOSE_FRAME_SECONDS). Its handler sees the socket close
        and leaves the presence."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        if self.hub is not None:
            self.hub.detach(self)
        task = asyncio.get_running_loop().create_task(self._close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def _close(self) -> None:
        websocket = self.websocket
        try:
            await asyncio.wait_for(
                websocket.close(self.close_code or 1000, self.close_reason), CLOSE_FRAME_SECONDS
            )
        except Exception:  # timed out (the client never read) or the socket is gone
            websocket.transport.abort()


class Hub:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        instance_id: str,
        history: int,
        history_ttl: int,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.history = history
        self.history_ttl = history_ttl
        self.teams: dict[uuid.UUID, set[Connection]] = {}
        self._cursors: dict[uuid.UUID, bytes] = {}
        self._wake_key = f"{prefix}{KEY_PREFIX}:instance:{instance_id}:wake"
        self._wake_cursor = b"$"
        self._reader: aioredis.Redis | None = None

    def key(self, team_id: uuid.UUID) -> str:
        return stream_key(self.prefix, team_id)

    async def append(self, team_id: uuid.UUID, fields: dict[str, str]) -> str:
        key = self.key(team_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=self.history, approximate=True)
            pipe.expire(key, self.history_ttl)
            frame_id, _ = await pipe.execute()
        return str(frame_id.decode())

    async def last_id(self, team_id: uuid.UUID) -> str:
        newest = await self.redis.xrevrange(self.key(team_id), count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def resumable(self, team_id: uuid.UUID, since: str) -> bool:
        """Whether every frame after ``since`` is still in the stream.

        Frames leave a stream two ways. Trimming forgets which ids it removed;
        what is known is that all of them came before the first entry kept, so
        a resume point before that entry fails once anything was trimmed (in
        the one case where ``since`` was the very last frame trimmed,
        conservatively: the client reloads over HTTP). And a quiet team's
        whole stream expires ``history_ttl`` after its last frame (then the
        next frame starts a new one): frame ids are the server's clock in ms,
        so a point newer than that has seen every frame that expired since.
        "0-0" (the welcome of a team without frames) saw none.
        """
        point = parse_id(since)
        if point == (0, 0):
            return True
        try:
            info = await self.redis.xinfo_stream(self.key(team_id))
        except aioredis.ResponseError:  # no stream (expired, or Redis lost it)
            return await self._newer_than_expiry(point)
        first = parse_id(info.get("recorded-first-entry-id") or b"0-0")
        if point >= first:
            return True
        trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
        return not trimmed and await self._newer_than_expiry(point)

    async def _newer_than_expiry(self, point: tuple[int, int]) -> bool:
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        return point[0] >= now_ms - self.history_ttl * 1000

    async def prepare(self, team_id: uuid.UUID, since: str | None) -> tuple[str, bool]:
        """The stream's last id now, and whether ``since`` can still be resumed."""
        last = await self.last_id(team_id)
        return last, since is None or await self.resumable(team_id, since)

    async def attach(self, conn: Connection, since: str | None, last: str) -> None:
        """Start delivering to ``conn``: the frames after ``since`` when resuming,
        else those after ``last`` (the id its welcome announced)."""
        if conn.close_code is not None:  # closed meanwhile (a member removed)
            return
        if conn.team_id not in self._cursors:
            self._cursors[conn.team_id] = last.encode()
            try:
                await self.redis.xadd(self._wake_key, {"w": "1"}, maxlen=10, approximate=True)
            except Exception:
                if not self.teams.get(conn.team_id):
                    self._cursors.pop(conn.team_id, None)
                raise
        # Always through the replay: when this instance already reads the
        # team, a frame appended after ``last`` was read but before the socket
        # joined went to the others only; the replay brings it.
        start = since if since is not None else last
        conn.hub = self
        conn.replaying = True
        conn.cursor = parse_id(start)
        self.teams.setdefault(conn.team_id, set()).add(conn)
        await self._replay(conn, start)

    async def _replay(self, conn: Connection, since: str) -> None:
        # Frames delivered live meanwhile wait in conn.held, so that they come
        # after the replay, without gap or duplicate.
        start = "(" + since
        try:
            while True:
                page = await self.redis.xrange(self.key(conn.team_id), min=start, count=500)
                for raw_id, fields in page:
                    frame_id = raw_id.decode()
                    if fields.get(b"s", b"").decode() != conn.id:
                        if not await conn.send(wire(frame_id, fields)):
                            return
                    conn.cursor = parse_id(frame_id)
                if len(page) < 500:
                    break
                start = "(" + page[-1][0].decode()
        finally:
            for frame_id, text in conn.held:
                if frame_id > conn.cursor:
                    conn.push(text)
                    conn.cursor = frame_id
            conn.held.clear()
            conn.replaying = False

    def detach(self, conn: Connection) -> None:
        conn.hub = None
        team = self.teams.get(conn.team_id)
        if team is not None:
            team.discard(conn)
            if not team:
                del self.teams[conn.team_id]
                self._cursors.pop(conn.team_id, None)

    def deliver(self, team_id: uuid.UUID, raw_id: bytes, fields: dict[bytes, bytes]) -> None:
        conns = self.teams.get(team_id)
        if not conns:
            return
        frame_id = parse_id(raw_id)
        sender = fields.get(b"s", b"").decode()
        text = wire(raw_id.decode(), fields)
        data = framed(text)
        # One pass, writing as it goes: the first socket need not wait for a
        # pass over thousands.
        for conn in list(conns):
            if frame_id <= conn.cursor:
                continue
            if conn.replaying:
                conn.hold(frame_id, text)
                continue
            conn.cursor = frame_id
            if conn.id != sender and conn.writable():
                write(conn.websocket, data)
        self._enforce_membership(team_id, fields)

    def _enforce_membership(self, team_id: uuid.UUID, fields: dict[bytes, bytes]) -> None:
        """Domain events that take a member out act on every instance at once."""
        frame: dict[str, Any] = json.loads(fields[b"f"])
        kind = frame.get("type")
        if kind not in ("member.removed", "team.deleted", "member.role_changed"):
            return
        data = frame.get("data") or {}
        for conn in list(self.teams.get(team_id, ())):
            if kind == "team.deleted" or (
                kind == "member.removed" and str(conn.user_id) == str(data.get("user_id"))
            ):
                conn.close(1008, "Not a team member")
            elif kind == "member.role_changed" and str(conn.user_id) == str(data.get("user_id")):
                conn.role_stale = True

    async def run(self, redis_url: str) -> None:
        """Read every stream this instance listens to, for ever."""
        # A socket timeout beyond the blocking read's (redis-py's default, 5 s,
        # would cut every idle XREAD short, with a pause before the next).
        self._reader = aioredis.from_url(redis_url, socket_timeout=READ_BLOCK_MS / 1000 + 10)
        try:
            while True:
                streams: dict[Any, Any] = {self._wake_key: self._wake_cursor}
                keys = {self.key(t): t for t in self._cursors}
                streams.update({k: self._cursors[t] for k, t in keys.items()})
                try:
                    result = await self._reader.xread(
                        streams, count=READ_COUNT, block=READ_BLOCK_MS
                    )
                except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                    log.warning("stream read failed; retrying", error=repr(exc))
                    await asyncio.sleep(0.5)
                    continue
                for raw_key, entries in result or []:
                    key = raw_key.decode()
                    if key == self._wake_key:
                        self._wake_cursor = entries[-1][0]
                        continue
                    team_id = keys.get(key)
                    if team_id is None or team_id not in self._cursors:
                        continue
                    for raw_id, fields in entries:
                        self.deliver(team_id, raw_id, fields)
                    self._cursors[team_id] = entries[-1][0]
        finally:
            await self._reader.aclose()
