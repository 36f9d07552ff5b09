from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.membership import rm_teams
from agenthq_workspace.models import Workspace


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, team_id: uuid.UUID, workspace_id: uuid.UUID, *, lock: bool = False
    ) -> Workspace | None:
        query = select(Workspace).where(Workspace.id == workspace_id, Workspace.team_id == team_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def list(
        self,
        team_id: uuid.UUID,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        include_archived: bool,
        name_contains: str | None,
    ) -> list[Workspace]:
        query = (
            select(Workspace)
            .where(Workspace.team_id == team_id)
            .order_by(Workspace.created_at, Workspace.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(Workspace.created_at, Workspace.id) > tuple_(*after))
        if not include_archived:
            query = query.where(Workspace.archived_at.is_(None))
        if name_contains:
            query = query.where(
                func.lower(Workspace.name).contains(name_contains.lower(), autoescape=True)
            )
        return list((await self.session.execute(query)).scalars())

    async def delete_team(self, team_id: uuid.UUID) -> list[uuid.UUID]:
        """Delete every workspace of the team; the ids of those deleted."""
        result = await self.session.execute(
            delete(Workspace)
            .where(Workspace.team_id == team_id)
            .returning(Workspace.id)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars())

    async def team_deleted(self, team_id: uuid.UUID) -> bool | None:
        """Whether the read model has the team as deleted (None: not seen yet).

        FOR SHARE: a create holds the team's read-model row until it commits,
        and the deletion (which updates that row) waits for it, or the create
        waits for the deletion and sees it. Either way no workspace outlives
        its team."""
        deleted: bool | None = await self.session.scalar(
            select(rm_teams.c.deleted)
            .where(rm_teams.c.team_id == team_id)
            .with_for_update(read=True)
        )
        return deleted
