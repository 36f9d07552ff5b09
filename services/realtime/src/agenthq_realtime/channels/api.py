from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from agenthq_common.authz import Member
from agenthq_common.service import Service
from agenthq_realtime.channels.sockets import Channels

# The sockets themselves are served by channels.server, on a port of their own.
router = APIRouter(tags=["realtime"])


class PresentOut(BaseModel):
    user_id: uuid.UUID
    connections: int
    since: datetime


def _channels(request: Request) -> Channels:
    service: Service = request.app.state.service
    return service.component(Channels)


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
