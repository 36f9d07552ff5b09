from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from agenthq_common.authz import Member, require
from agenthq_common.deps import ActorDep, Uow
from agenthq_common.openapi import error_responses
from agenthq_common.schemas import (
    Cursor,
    Limit,
    Page,
    decode_id_cursor,
    encode_id_cursor,
    paginate,
)
from agenthq_team.members import service
from agenthq_team.members.schemas import MemberAdd, MemberOut, MemberRoleChange
from agenthq_team.models import KnownUser, TeamMember

router = APIRouter(prefix="/v1/teams/{team_id}/members", tags=["members"])
CanReadMembers = require("member:read")
CanAddMembers = require("member:create")
CanUpdateMembers = require("member:update")


def member_out(member: TeamMember, user: KnownUser | None) -> MemberOut:
    return MemberOut(
        team_id=member.team_id,
        user_id=member.user_id,
        role=member.role,
        joined_at=member.joined_at,
        email=user.email if user else None,
        name=user.name if user else None,
    )


@router.get("", response_model=Page[MemberOut])
async def list_members(
    member: CanReadMembers, uow: Uow, limit: Limit = 50, cursor: Cursor = None
) -> Page[MemberOut]:
    after = decode_id_cursor(cursor)
    rows = await service.list_members(uow, member.team_id, limit=limit + 1, after=after)
    items, next_cursor = paginate(
        [member_out(m, u) for m, u in rows],
        limit,
        lambda m: encode_id_cursor(m.user_id),
    )
    return Page[MemberOut](items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    responses=error_responses(409),
)
async def add_member(
    body: MemberAdd, member: CanAddMembers, uow: Uow, actor: ActorDep
) -> MemberOut:
    added, user = await service.add_member(
        uow,
        actor,
        member,
        user_id=body.user_id,
        email=str(body.email) if body.email else None,
        role=body.role,
    )
    return member_out(added, user)


@router.patch("/{user_id}", response_model=MemberOut, responses=error_responses(409))
async def change_role(
    user_id: uuid.UUID, body: MemberRoleChange, member: CanUpdateMembers, uow: Uow, actor: ActorDep
) -> MemberOut:
    changed, user = await service.change_role(uow, actor, member, user_id=user_id, role=body.role)
    return member_out(changed, user)


@router.delete(
    "/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403, 409)
)
async def remove_member(user_id: uuid.UUID, member: Member, uow: Uow, actor: ActorDep) -> Response:
    await service.remove_member(uow, actor, member, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
