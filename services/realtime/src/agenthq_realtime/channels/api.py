from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, WebSocket
from pydantic import BaseModel

from agenthq_common.authz import Member
from agenthq_common.service import Service
from agenthq_realtime.channels.sockets import Channels, serve

router = APIRouter(tags=["realtime"])


class PresentOut(BaseModel):
    user_id: uuid.UUID
    connections: int
    since: datetime


def _channels(connection: Request | WebSocket) -> Channels:
    service: Service = connection.app.state.service
    return service.component(Channels)


@router.websocket("/ws/teams/{team_id}")
async def team_socket(websocket: WebSocket, team_id: uuid.UUID) -> None:
    """The team channel (REALTIME.md)."""
    await serve(websocket, team_id, _channels(websocket))


@router.websocket("/ws/{team_id}")
async def team_socket_seed_path(websocket: WebSocket, team_id: uuid.UUID) -> None:
    """The seed's path for the same channel."""
    await serve(websocket, team_id, _channels(websocket))


@router.get(
    "/v1/teams/{team_id}/presence",
    response_model=list[PresentOut],
    summary="Who is connected to the team's channel, on any instance",
)
async def team_presence(member: Member, request: Request) -> list[PresentOut]:
    present = await _channels(request).presence.of_team(member.team_id)
    return [
        PresentOut(
            user_id=p.user_id,
            connections=p.connections,
            since=datetime.fromtimestamp(p.since, UTC),
        )
        for p in present
    ]
