from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_activity.models import ActivityLog


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, rows: list[dict[str, Any]]) -> None:
        # The inbox already makes a redelivery a no-op; the unique event id is
        # the last line of defence should two consumers ever race on one event.
        await self.session.execute(
            insert(ActivityLog).values(rows).on_conflict_do_nothing(index_elements=["event_id"])
        )

    async def list_for_team(
        self,
        team_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
        action: str | None = None,
    ) -> list[ActivityLog]:
        query = (
            select(ActivityLog)
            .where(ActivityLog.team_id == team_id)
            .order_by(ActivityLog.created_at.desc(), ActivityLog.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(tuple_(ActivityLog.created_at, ActivityLog.id) < tuple_(*before))
        if action:
            query = query.where(ActivityLog.action == action)
        return list((await self.session.execute(query)).scalars())
