from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from agenthq_common.deps import ActorDep, Uow, User
from agenthq_common.schemas import (
    Cursor,
    Limit,
    Page,
    decode_time_id_cursor,
    encode_time_id_cursor,
    paginate,
)
from agenthq_team.models import Team
from agenthq_team.teams import service
from agenthq_team.teams.schemas import TeamCreate, TeamOut

router = APIRouter(prefix="/v1/teams", tags=["teams"])


def _out(team: Team, member_count: int) -> TeamOut:
    return TeamOut(
        id=team.id,
        name=team.name,
        owner_id=team.owner_id,
        plan=team.plan,
        max_members=team.max_members,
        member_count=member_count,
        created_at=team.created_at,
        updated_at=team.updated_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TeamOut)
async def create_team(body: TeamCreate, uow: Uow, actor: ActorDep) -> TeamOut:
    team, count = await service.create_team(uow, actor, name=body.name, plan=body.plan)
    return _out(team, count)


@router.get("", response_model=Page[TeamOut])
async def list_teams(
    user: User, uow: Uow, limit: Limit = 50, cursor: Cursor = None
) -> Page[TeamOut]:
    after = decode_time_id_cursor(cursor)
    rows = await service.list_teams(uow, user.id, limit=limit + 1, after=after)
    items, next_cursor = paginate(
        [_out(t, c) for t, c in rows], limit, lambda t: encode_time_id_cursor(t.created_at, t.id)
    )
    return Page[TeamOut](items=items, next_cursor=next_cursor)


@router.get("/{team_id}", response_model=TeamOut)
async def get_team(team_id: uuid.UUID, user: User, uow: Uow) -> TeamOut:
    team, count = await service.get_team(uow, user.id, team_id)
    return _out(team, count)
