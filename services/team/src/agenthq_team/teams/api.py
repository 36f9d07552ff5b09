from __future__ import annotations

from fastapi import APIRouter, Response, status

from agenthq_common.authz import Member, require
from agenthq_common.deps import ActorDep, Uow, User
from agenthq_common.openapi import error_responses
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
from agenthq_team.teams.schemas import (
    OwnershipTransfer,
    PlanChange,
    TeamCreate,
    TeamOut,
    TeamUpdate,
)

router = APIRouter(prefix="/v1/teams", tags=["teams"])
CanUpdateTeam = require("team:update")
CanUpdateBilling = require("billing:update")


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
async def get_team(member: Member, uow: Uow) -> TeamOut:
    team, count = await service.get_team(uow, member.user_id, member.team_id)
    return _out(team, count)


@router.patch("/{team_id}", response_model=TeamOut)
async def rename_team(
    body: TeamUpdate, member: CanUpdateTeam, uow: Uow, actor: ActorDep
) -> TeamOut:
    team = await service.update(uow, actor, member, name=body.name)
    return _out(team, await service.member_count(uow, team.id))


@router.delete("/{team_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403))
async def delete_team(member: Member, uow: Uow, actor: ActorDep) -> Response:
    await service.delete_team(uow, actor, member)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{team_id}/transfer-ownership", response_model=TeamOut, responses=error_responses(403)
)
async def transfer_ownership(
    body: OwnershipTransfer, member: Member, uow: Uow, actor: ActorDep
) -> TeamOut:
    team = await service.transfer_ownership(uow, actor, member, new_owner_id=body.user_id)
    return _out(team, await service.member_count(uow, team.id))


@router.put("/{team_id}/plan", response_model=TeamOut, responses=error_responses(409))
async def change_plan(
    body: PlanChange, member: CanUpdateBilling, uow: Uow, actor: ActorDep
) -> TeamOut:
    team = await service.change_plan(uow, actor, member, plan=body.plan)
    return _out(team, await service.member_count(uow, team.id))
