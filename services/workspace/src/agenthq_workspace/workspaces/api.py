from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from agenthq_common.authz import require
from agenthq_common.deps import ActorDep, Uow
from agenthq_common.openapi import error_responses
from agenthq_common.schemas import (
    Cursor,
    Limit,
    Page,
    decode_time_id_cursor,
    encode_time_id_cursor,
    paginate,
)
from agenthq_workspace.models import Workspace
from agenthq_workspace.workspaces import service
from agenthq_workspace.workspaces.repository import WorkspaceRepository
from agenthq_workspace.workspaces.schemas import WorkspaceCreate, WorkspaceOut, WorkspaceUpdate

router = APIRouter(prefix="/v1/teams/{team_id}/workspaces", tags=["workspaces"])
CanCreate = require("workspace:create")
CanRead = require("workspace:read")
CanUpdate = require("workspace:update")
CanDelete = require("workspace:delete")


def _out(workspace: Workspace) -> WorkspaceOut:
    return WorkspaceOut.model_validate(workspace, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkspaceOut,
    responses=error_responses(409),
)
async def create_workspace(
    body: WorkspaceCreate, member: CanCreate, uow: Uow, actor: ActorDep
) -> WorkspaceOut:
    workspace = await service.create(
        uow, actor, member, name=body.name, description=body.description
    )
    return _out(workspace)


@router.get("", response_model=Page[WorkspaceOut])
async def list_workspaces(
    member: CanRead,
    uow: Uow,
    limit: Limit = 50,
    cursor: Cursor = None,
    include_archived: bool = False,
    q: Annotated[str | None, Query(max_length=255, description="Name contains (any case)")] = None,
) -> Page[WorkspaceOut]:
    rows = await WorkspaceRepository(uow.session).list(
        member.team_id,
        limit=limit + 1,
        after=decode_time_id_cursor(cursor),
        include_archived=include_archived,
        name_contains=q,
    )
    items, next_cursor = paginate(
        [_out(w) for w in rows], limit, lambda w: encode_time_id_cursor(w.created_at, w.id)
    )
    return Page[WorkspaceOut](items=items, next_cursor=next_cursor)


@router.get("/{workspace_id}", response_model=WorkspaceOut)
async def get_workspace(workspace_id: uuid.UUID, member: CanRead, uow: Uow) -> WorkspaceOut:
    return _out(await service.get(uow, member.team_id, workspace_id))


@router.patch("/{workspace_id}", response_model=WorkspaceOut, responses=error_responses(409))
async def update_workspace(
    workspace_id: uuid.UUID, body: WorkspaceUpdate, member: CanUpdate, uow: Uow, actor: ActorDep
) -> WorkspaceOut:
    changes = body.model_dump(exclude_unset=True)
    workspace = await service.update(uow, actor, member, workspace_id, changes=changes)
    return _out(workspace)


@router.delete("/{workspace_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workspace(
    workspace_id: uuid.UUID, member: CanDelete, uow: Uow, actor: ActorDep
) -> Response:
    await service.delete(uow, actor, member, workspace_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
