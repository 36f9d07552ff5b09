"""The WebSocket endpoint: authentication, membership, the welcome, and the
frames a client sends (REALTIME.md)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from agenthq_common.auth import CurrentUser, TokenVerifier
from agenthq_common.authz import Membership, MembershipResolver
from agenthq_common.db import Database
from agenthq_common.errors import DomainError
from agenthq_common.logging import get_logger
from agenthq_realtime.channels.frames import MAX_FRAME_BYTES, entry, is_reserved, valid_id
from agenthq_realtime.channels.hub import Connection, Hub
from agenthq_realtime.channels.presence import Presence

log = get_logger(__name__)

RATE_PER_SECOND = 20
MAX_STRIKES = 10  # invalid or refused frames before the socket is closed
TOKEN_INVALID = 4401
POLICY = 1008


def can_broadcast(membership: Membership) -> bool:
    """Roles that may only read (viewer) may not speak either."""
    return any(not p.endswith(":read") for p in membership.permissions)


@dataclass
class Channels:
    """Everything the endpoint needs, wired once by ``bootstrap``."""

    hub: Hub
    presence: Presence
    db: Database
    verifier: TokenVerifier
    resolver: MembershipResolver
    send_buffer: int  # bytes
    auth_timeout: float
    # This instance's presence entries (team, user, entry), from the join on.
    joined: dict[str, tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=dict)

    async def membership(
        self, team_id: uuid.UUID, user: CurrentUser, token: str
    ) -> Membership | None:
        async with self.db.unit_of_work() as uow:
            return await self.resolver.resolve(uow.session, team_id, user, token)

    async def announce(self, team_id: uuid.UUID, user_id: uuid.UUID, kind: str) -> None:
        await self.hub.append(team_id, entry(kind, team_id, user_id, {"user_id": str(user_id)}))


def _bearer(websocket: ServerConnection, query: dict[str, str]) -> str | None:
    header = websocket.request.headers.get("authorization", "") if websocket.request else ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return query.get("token") or None


async def _auth_frame(websocket: ServerConnection, timeout: float) -> tuple[str | None, str | None]:
    """The token (and resume point) of the first frame, if it is an auth frame."""
    try:
        # Cancelling recv() is safe (websockets): a frame is never half read.
        frame = json.loads(await asyncio.wait_for(websocket.recv(), timeout))
    except (TimeoutError, ValueError, ConnectionClosed):
        return None, None
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        return None, None
    token, since = frame.get("token"), frame.get("since")
    return (token if isinstance(token, str) else None), (since if isinstance(since, str) else None)


async def serve(
    websocket: ServerConnection, team_id: uuid.UUID, query: dict[str, str], channels: Channels
) -> None:
    """One socket, from its handshake (done) until it closes."""
    token, since = _bearer(websocket, query), query.get("since")
    if token is None:
        token, frame_since = await _auth_frame(websocket, channels.auth_timeout)
        since = since or frame_since
    if token is None:
        await websocket.close(TOKEN_INVALID, "Authentication required")
        return
    try:
        user = await channels.verifier.verify(token)
    except DomainError:
        await websocket.close(TOKEN_INVALID, "Invalid or expired token")
        return
    membership = await channels.membership(team_id, user, token)
    if membership is None:
        await websocket.close(POLICY, "Not a team member")
        return
    if since is not None and not valid_id(since):
        since = "0-0"  # unreadable: treat as too old, the client reloads

    conn = Connection(
        id=uuid.uuid4().hex,
        team_id=team_id,
        user_id=user.id,
        role=membership.role,
        can_broadcast=can_broadcast(membership),
        websocket=websocket,
        send_buffer=channels.send_buffer,
    )
    member = channels.presence.member(conn.id, conn.connected_at)
    # Heart-beaten from now on, before the welcome: under load the welcome can
    # take longer than the presence TTL, and an entry that expired meanwhile
    # would be gone for good.
    channels.joined[conn.id] = (team_id, user.id, member)
    try:
        if await channels.presence.join(team_id, user.id, conn.id, conn.connected_at):
            await channels.announce(team_id, user.id, "presence.joined")
        await _welcome(channels, conn, since)
        await _receive(conn, channels, token)
    finally:
        channels.hub.detach(conn)
        channels.joined.pop(conn.id, None)
        if await channels.presence.leave(team_id, user.id, member):
            await channels.announce(team_id, user.id, "presence.left")


async def _welcome(channels: Channels, conn: Connection, since: str | None) -> None:
    team_id = conn.team_id
    last, resumable = await channels.hub.prepare(team_id, since)
    present = await channels.presence.counts(team_id)
    conn.push(
        json.dumps(
            {
                "type": "welcome",
                "connection_id": conn.id,
                "user_id": str(conn.user_id),
                "team_id": str(team_id),
                "presence": [{"user_id": str(who), "connections": n} for who, n in present.items()],
                "last_id": last,
            }
        )
    )
    if not resumable:
        conn.push('{"type":"resume.failed"}')
    await channels.hub.attach(conn, since if resumable else None, last)


def _error(conn: Connection, code: str, message: str) -> None:
    conn.push(json.dumps({"type": "error", "code": code, "message": message}))


async def _receive(conn: Connection, channels: Channels, token: str) -> None:
    """The client's frames, until it leaves or the server closes the socket (a
    member removed, too many bad frames, a send buffer overflowing)."""
    allowance, checked = float(RATE_PER_SECOND), time.monotonic()
    strikes = 0
    try:
        async for raw in conn.websocket:
            if conn.close_code is not None:
                return
            now = time.monotonic()
            allowance = min(RATE_PER_SECOND, allowance + (now - checked) * RATE_PER_SECOND)
            checked = now
            frame, problem = _parse(raw, allowance)
            if frame is not None:
                allowance -= 1
                problem = await _handle(conn, channels, frame, token)
            if problem is not None:
                strikes += 1
                _error(conn, *problem)
                if strikes >= MAX_STRIKES:
                    conn.close(POLICY, "Too many invalid or refused frames")
                    return
    except ConnectionClosed:
        return


Problem = tuple[str, str]  # an error frame's code and message


def _parse(raw: str | bytes, allowance: float) -> tuple[dict[str, Any] | None, Problem | None]:
    """The client's frame, or why it is refused."""
    if allowance < 1:
        return None, ("rate_limited", f"At most {RATE_PER_SECOND} frames per second")
    if len(raw) > MAX_FRAME_BYTES:
        return None, ("frame_too_large", f"Frames are at most {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, ("invalid_json", "Frames are JSON objects")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return None, ("invalid_frame", 'Frames are objects with a string "type"')
    if not 0 < len(frame["type"]) <= 100:
        return None, ("invalid_frame", "type must be 1 to 100 characters")
    return frame, None


async def _handle(
    conn: Connection, channels: Channels, frame: dict[str, Any], token: str
) -> Problem | None:
    kind = frame["type"]
    if kind == "ping":
        conn.push('{"type":"pong"}')
        return None
    if is_reserved(kind):
        return "reserved_type", f"'{kind}' is reserved for the server"
    if conn.role_stale:
        user = CurrentUser(id=conn.user_id, token_id="", claims={})
        membership = await channels.membership(conn.team_id, user, token)
        if membership is None:
            conn.close(POLICY, "Not a team member")
            return None
        conn.role, conn.can_broadcast = membership.role, can_broadcast(membership)
        conn.role_stale = False
    if not conn.can_broadcast:
        return "forbidden", f"The role '{conn.role}' may not broadcast"
    await channels.hub.append(
        conn.team_id,
        entry(kind, conn.team_id, conn.user_id, frame.get("data", {}), sender=conn.id),
    )
    return None
