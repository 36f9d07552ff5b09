"""The WebSocket endpoint's server: the `websockets` library on a port of its own.

Why not a route of the FastAPI app: under uvicorn and Starlette every socket
carries the ASGI machinery (a receive queue and an event per socket, the
middleware's wrappers around every send) and needs a task to write each
socket's frames; the realtime service holds thousands of sockets and writes
each frame to all of a team's. Served by `websockets` directly, a socket is
its protocol object and one handler task, and a frame goes to every socket in
one loop of synchronous writes (``broadcast``): the cost of the raw
`websockets` server that ``bench/realtime.py`` measures as the floor. The HTTP
API (presence, health, metrics) stays in the FastAPI app, on the service's
port.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import re
import uuid
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from agenthq_common.logging import get_logger
from agenthq_realtime.channels.sockets import Channels
from agenthq_realtime.channels.sockets import serve as serve_socket

log = get_logger(__name__)

# REALTIME.md's path, and the seed's.
_PATH = re.compile(r"^/ws(?:/teams)?/(?P<team>[^/]+)$")
# Beyond the protocol's 64 KiB, which gets an error frame: what the library
# refuses outright (close 1009) instead of reading into memory.
MAX_MESSAGE_BYTES = 1024 * 1024
# A close handshake that takes longer (a client that no longer reads) ends
# with the TCP connection dropped.
CLOSE_TIMEOUT = 3.0
# Shutdown waits this long for the sockets' handlers (presence left), then
# drops the connections of clients that did not answer the close.
STOP_SECONDS = 4.0
BACKLOG = 2048
# The library logs each handshake at INFO and its frames at DEBUG (headers
# and request lines included, tokens with them): keep only its warnings.
_library_log = logging.getLogger("agenthq_realtime.websockets")
_library_log.setLevel(logging.WARNING)


def route(path: str) -> tuple[uuid.UUID, dict[str, str]] | None:
    """The team and query parameters of a socket's path, or None if it names none."""
    parts = urlsplit(path)
    match = _PATH.match(parts.path)
    if match is None:
        return None
    try:
        team_id = uuid.UUID(match["team"])
    except ValueError:
        return None
    return team_id, dict(parse_qsl(parts.query))


def _refuse(status: http.HTTPStatus, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


def _check_path(_: ServerConnection, request: Request) -> Response | None:
    if route(request.path) is None:
        return _refuse(
            http.HTTPStatus.NOT_FOUND, "not_found", "No channel here: /ws/teams/{team_id}"
        )
    return None


class SocketEndpoint:
    """The listening server of one instance: opened at startup, closed (every
    socket with 1001, go elsewhere) at shutdown or on SIGTERM."""

    def __init__(self, channels: Channels, host: str, port: int) -> None:
        self.channels = channels
        self.host = host
        self.requested_port = port
        self.server: Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system for port 0)."""
        assert self.server is not None
        return int(next(iter(self.server.sockets)).getsockname()[1])

    async def start(self) -> None:
        self.server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            process_request=_check_path,
            # zlib state would cost ~100 KiB per socket, for frames of a few hundred bytes.
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            close_timeout=CLOSE_TIMEOUT,
            # asyncio's default, 100, overflows when thousands reconnect at once
            # (an instance restarting): their SYNs are dropped and retried
            # seconds later. uvicorn's default.
            backlog=BACKLOG,
            server_header=None,  # no banner
            logger=_library_log,
        )
        log.info("websocket endpoint listening", host=self.host, port=self.port)

    def close(self) -> None:
        """Stop taking sockets and close those held with 1001; returns at once."""
        if self.server is not None:
            self.server.close()

    async def stop(self) -> None:
        """Close, then wait for every socket's handler to finish (presence
        left): within the service's shutdown step, before Redis closes."""
        if self.server is None:
            return
        self.server.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.server.wait_closed()), STOP_SECONDS)
        except TimeoutError:
            # A client that reads nothing never lets its close handshake end.
            for conns in list(self.channels.hub.teams.values()):
                for conn in list(conns):
                    conn.websocket.transport.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)

    async def _handle(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        routed = route(websocket.request.path)
        assert routed is not None  # _check_path refused the others
        team_id, query = routed
        # The path only: its query may carry ?token= (the seed's clients).
        path = urlsplit(websocket.request.path).path
        log.debug("socket opened", path=path, remote=websocket.remote_address)
        try:
            await serve_socket(websocket, team_id, query, self.channels)
        finally:
            log.debug("socket closed", team_id=str(team_id), code=websocket.close_code)
