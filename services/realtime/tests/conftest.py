"""Two realtime instances (two Service objects on two real ports, sharing Redis,
RabbitMQ and the database) and helpers to connect sockets to them."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, CloudEvent, registry
from agenthq_common.service import Service
from agenthq_common.testing.plugin import Databases, eventually
from agenthq_common.testing.tokens import TestSigner
from agenthq_realtime.channels.server import SocketEndpoint
from agenthq_realtime.main import bootstrap
from agenthq_realtime.settings import RealtimeSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    service: Service
    url: str  # http://127.0.0.1:<port>: the HTTP API
    server: uvicorn.Server

    @property
    def ws(self) -> str:
        """ws://127.0.0.1:<port>: the WebSocket endpoint, on a port of its own."""
        return f"ws://127.0.0.1:{self.service.component(SocketEndpoint).port}"


async def serve(service: Service) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            service.create_app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
async def instances(
    databases: Databases, settings_for: Callable[..., Any], signer: TestSigner
) -> AsyncIterator[list[Instance]]:
    url = await databases.fresh("realtime")
    started: list[tuple[Instance, asyncio.Task[None]]] = []
    for name in ("a", "b"):
        settings = settings_for(
            RealtimeSettings,
            database_url=url,
            instance_id=f"inst-{name}",
            ws_port=0,
            send_buffer_bytes=64 * 1024,
        )
        service = bootstrap(settings, key_source=signer.keys)
        server, task, base = await serve(service)
        started.append((Instance(service, base, server), task))
    yield [i for i, _ in started]
    for instance, task in started:
        instance.server.should_exit = True
        await task


@dataclass
class Harness:
    a: Instance
    b: Instance
    bus: Bus
    signer: TestSigner

    async def publish(
        self, type_: str, data: dict[str, Any], *, team_id: uuid.UUID, actor: uuid.UUID | None
    ) -> CloudEvent:
        event = registry.create(
            type_, data, source="agenthq/tests", actor=Actor(id=actor), team_id=team_id
        )
        await self.bus.publish(event)
        return event

    async def team(self, *members: tuple[uuid.UUID, str]) -> uuid.UUID:
        """A team the read model knows, with these (user, role) members."""
        team_id = uuid.uuid4()
        owner = members[0][0]
        at = datetime.now(UTC) - timedelta(minutes=1)
        created = registry.create(
            "team.created",
            {"team_id": team_id, "name": "T", "owner_id": owner, "plan": "pro", "max_members": 50},
            source="agenthq/tests",
            team_id=team_id,
        ).model_copy(update={"time": at})
        await self.bus.publish(created)
        for user, role in members:
            added = registry.create(
                "member.added",
                {"team_id": team_id, "user_id": user, "role": role},
                source="agenthq/tests",
                team_id=team_id,
            ).model_copy(update={"time": at})
            await self.bus.publish(added)
        async with httpx.AsyncClient() as client:
            for user, _ in members:

                async def known(user: uuid.UUID = user) -> bool:
                    response = await client.get(
                        f"{self.a.url}/v1/teams/{team_id}/presence",
                        headers=self.signer.headers(user),
                    )
                    return response.status_code == 200

                await eventually(known, within=15.0)
        return team_id

    async def connect(
        self,
        instance: Instance,
        team_id: uuid.UUID,
        user: uuid.UUID | None,
        *,
        how: str = "header",
        since: str | None = None,
        path: str = "/ws/teams/{team}",
        **kwargs: Any,
    ) -> ClientConnection:
        url = instance.ws + path.format(team=team_id)
        query = []
        headers = {}
        token = self.signer.token(user) if user is not None else None
        if token and how == "header":
            headers["Authorization"] = f"Bearer {token}"
        if token and how == "query":
            query.append(f"token={token}")
        if since and how != "frame":
            query.append(f"since={since}")
        if query:
            url += "?" + "&".join(query)
        ws = await websockets.connect(url, additional_headers=headers, **kwargs)
        if token and how == "frame":
            auth: dict[str, Any] = {"type": "auth", "token": token}
            if since:
                auth["since"] = since
            await ws.send(json.dumps(auth))
        return ws


async def receive(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), within))  # type: ignore[no-any-return]


async def receive_until(
    ws: ClientConnection, match: Callable[[dict[str, Any]], bool], within: float = 5.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first frame that matches, and those that came before it."""
    skipped = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        frame = await receive(ws, max(deadline - loop.time(), 0.01))
        if match(frame):
            return frame, skipped
        skipped.append(frame)


@pytest.fixture
def rt(instances: list[Instance], event_bus: Bus, signer: TestSigner) -> Harness:
    return Harness(instances[0], instances[1], event_bus, signer)
