from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from agenthq_common.authz import require
from agenthq_common.deps import ActorDep, Uow
from agenthq_common.openapi import error_responses
from agenthq_common.schemas import Cursor, Limit, Page, decode_cursor, encode_cursor, paginate
from agenthq_team.roles import service
from agenthq_team.roles.schemas import RoleCreate, RoleOut, RoleUpdate

router = APIRouter(prefix="/v1/teams/{team_id}/roles", tags=["roles"])
CanReadRoles = require("member:read")
CanCreateRoles = require("role:create")
CanUpdateRoles = require("role:update")
CanDeleteRoles = require("role:delete")
RoleName = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("", response_model=Page[RoleOut])
async def list_roles(
    member: CanReadRoles, uow: Uow, limit: Limit = 50, cursor: Cursor = None
) -> Page[RoleOut]:
    """The built-ins first, then the team's custom roles by name."""
    roles = await service.list_roles(uow, member.team_id)
    position = decode_cursor(cursor, ("name",))
    if position is not None:
        names = [r.name for r in roles]
        start = names.index(position["name"]) + 1 if position["name"] in names else len(roles)
        roles = roles[start:]
    items, next_cursor = paginate(roles, limit, lambda r: encode_cursor({"name": r.name}))
    return Page[RoleOut](items=items, next_cursor=next_cursor)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RoleOut, responses=error_responses(409)
)
async def create_role(
    body: RoleCreate, member: CanCreateRoles, uow: Uow, actor: ActorDep
) -> RoleOut:
    return await service.create_role(
        uow, actor, member, name=body.name, permissions=body.permissions
    )


@router.patch("/{name}", response_model=RoleOut, responses=error_responses(409))
async def update_role(
    name: RoleName, body: RoleUpdate, member: CanUpdateRoles, uow: Uow, actor: ActorDep
) -> RoleOut:
    return await service.update_role(uow, actor, member, name=name, permissions=body.permissions)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(409))
async def delete_role(
    name: RoleName, member: CanDeleteRoles, uow: Uow, actor: ActorDep
) -> Response:
    await service.delete_role(uow, actor, member.team_id, name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
