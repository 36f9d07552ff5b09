"""Workspace rules. Raises domain errors; never commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from agenthq_common.authz import Membership
from agenthq_common.db import UnitOfWork
from agenthq_common.errors import Conflict, NotFound
from agenthq_common.events import Actor, registry
from agenthq_workspace.models import Workspace
from agenthq_workspace.workspaces.repository import WorkspaceRepository

SOURCE = "agenthq/workspace"


def _publish(uow: UnitOfWork, actor: Actor, event_type: str, workspace: Workspace) -> None:
    data: dict[str, object] = {"workspace_id": workspace.id, "team_id": workspace.team_id}
    if event_type != "workspace.deleted":
        data |= {
            "name": workspace.name,
            "description": workspace.description,
            "archived": workspace.archived_at is not None,
        }
    uow.publish(
        registry.create(
            event_type,
            data,
            source=SOURCE,
            actor=actor,
            subject=f"workspace/{workspace.id}",
            team_id=workspace.team_id,
        )
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"The team already has a workspace named {name!r} (names ignore case)",
        code="name_taken",
        details=[{"field": "name", "in": "body", "message": "name taken"}],
    )


async def _flush_unique(uow: UnitOfWork, name: str) -> None:
    # A savepoint, so that a clash leaves the request's transaction usable.
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise _name_taken(name) from exc


async def create(
    uow: UnitOfWork, actor: Actor, member: Membership, *, name: str, description: str | None
) -> Workspace:
    workspace = Workspace(
        id=uuid.uuid4(),
        team_id=member.team_id,
        name=name,
        description=description,
        created_by=member.user_id,
    )
    uow.session.add(workspace)
    await _flush_unique(uow, name)
    await uow.session.refresh(workspace)
    _publish(uow, actor, "workspace.created", workspace)
    return workspace


async def get(
    uow: UnitOfWork, team_id: uuid.UUID, workspace_id: uuid.UUID, *, lock: bool = False
) -> Workspace:
    workspace = await WorkspaceRepository(uow.session).get(team_id, workspace_id, lock=lock)
    if workspace is None:
        raise NotFound("Workspace not found", code="workspace_not_found")
    return workspace


async def update(
    uow: UnitOfWork,
    actor: Actor,
    member: Membership,
    workspace_id: uuid.UUID,
    *,
    changes: dict[str, object],
) -> Workspace:
    workspace = await get(uow, member.team_id, workspace_id, lock=True)
    changed = False
    if "name" in changes and changes["name"] != workspace.name:
        workspace.name = str(changes["name"])
        changed = True
    if "description" in changes and changes["description"] != workspace.description:
        workspace.description = changes["description"]  # type: ignore[assignment]
        changed = True
    if "archived" in changes and changes["archived"] is not None:
        archived = bool(changes["archived"])
        if archived != (workspace.archived_at is not None):
            workspace.archived_at = datetime.now(UTC) if archived else None
            changed = True
    if not changed:
        return workspace
    workspace.updated_at = datetime.now(UTC)
    await _flush_unique(uow, workspace.name)
    _publish(uow, actor, "workspace.updated", workspace)
    return workspace


async def delete(
    uow: UnitOfWork, actor: Actor, member: Membership, workspace_id: uuid.UUID
) -> None:
    workspace = await get(uow, member.team_id, workspace_id, lock=True)
    await uow.session.delete(workspace)
    _publish(uow, actor, "workspace.deleted", workspace)


async def forget_team(uow: UnitOfWork, actor: Actor, team_id: uuid.UUID) -> int:
    """The team is gone: so are its workspaces, each with its deletion event."""
    ids = await WorkspaceRepository(uow.session).delete_team(team_id)
    for workspace_id in ids:
        uow.publish(
            registry.create(
                "workspace.deleted",
                {"workspace_id": workspace_id, "team_id": team_id},
                source=SOURCE,
                actor=actor,
                subject=f"workspace/{workspace_id}",
                team_id=team_id,
            )
        )
    return len(ids)
