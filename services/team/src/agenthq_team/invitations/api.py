from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request, Response, status

from agenthq_common.authz import require
from agenthq_common.deps import ActorDep, Uow, User, get_service
from agenthq_common.openapi import error_responses
from agenthq_common.schemas import (
    Cursor,
    Limit,
    Page,
    decode_time_id_cursor,
    encode_time_id_cursor,
    paginate,
)
from agenthq_team.invitations import service
from agenthq_team.invitations.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
)
from agenthq_team.members.api import member_out
from agenthq_team.members.repository import MemberRepository
from agenthq_team.members.schemas import MemberOut
from agenthq_team.models import Invitation

router = APIRouter(tags=["invitations"])
CanInvite = require("member:create")
CanReadMembers = require("member:read")


def invitation_out(invitation: Invitation) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        team_id=invitation.team_id,
        email=invitation.email,
        role=invitation.role,
        invited_by=invitation.invited_by,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
        status=service.status_of(invitation),  # type: ignore[arg-type]
    )


@router.post(
    "/v1/teams/{team_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationCreated,
    responses=error_responses(409),
)
async def create_invitation(
    body: InvitationCreate, request: Request, member: CanInvite, uow: Uow, actor: ActorDep
) -> InvitationCreated:
    ttl = timedelta(seconds=get_service(request).settings.invitation_ttl_seconds)
    invitation, token = await service.create(
        uow, actor, member, email=str(body.email), role=body.role, ttl=ttl
    )
    return InvitationCreated(**invitation_out(invitation).model_dump(), token=token)


@router.get("/v1/teams/{team_id}/invitations", response_model=Page[InvitationOut])
async def list_invitations(
    member: CanReadMembers, uow: Uow, limit: Limit = 50, cursor: Cursor = None
) -> Page[InvitationOut]:
    rows = await service.list_for_team(
        uow, member.team_id, limit=limit + 1, before=decode_time_id_cursor(cursor)
    )
    items, next_cursor = paginate(
        [invitation_out(i) for i in rows],
        limit,
        lambda i: encode_time_id_cursor(i.created_at, i.id),
    )
    return Page[InvitationOut](items=items, next_cursor=next_cursor)


@router.delete(
    "/v1/teams/{team_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(409),
)
async def revoke_invitation(
    invitation_id: uuid.UUID, member: CanInvite, uow: Uow, actor: ActorDep
) -> Response:
    await service.revoke(uow, actor, member, invitation_id=invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/invitations/accept",
    response_model=MemberOut,
    responses=error_responses(403, 404, 409, 410),
)
async def accept_invitation(
    body: InvitationAccept, user: User, uow: Uow, actor: ActorDep
) -> MemberOut:
    # The user's email: from the gateway's events if they have arrived, else
    # from the access token (a user who just signed up may beat the events).
    known = await MemberRepository(uow.session).user(user.id)
    email = known.email if known else user.claims.get("email")
    member = await service.accept(uow, actor, token=body.token, caller_email=email)
    return member_out(member, known)
