from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from agenthq_team.models import Team, TeamMember


def _member_count_of_outer_team():  # type: ignore[no-untyped-def]
    counted = aliased(TeamMember)
    return select(func.count()).where(counted.team_id == Team.id).correlate(Team).scalar_subquery()


# Built once: a new alias per call would cost more than the query and defeat
# SQLAlchemy's statement cache.
MEMBER_COUNT = _member_count_of_outer_team()


class TeamRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, team: Team, owner: TeamMember) -> None:
        self.session.add(team)
        await self.session.flush()
        self.session.add(owner)
        await self.session.flush()
        await self.session.refresh(team)

    async def get_for_member(
        self, team_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[Team, int] | None:
        member_count = MEMBER_COUNT
        row = (
            await self.session.execute(
                select(Team, member_count)
                .join(TeamMember, TeamMember.team_id == Team.id)
                .where(Team.id == team_id, TeamMember.user_id == user_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def list_for_member(
        self, user_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[tuple[Team, int]]:
        member_count = MEMBER_COUNT
        query = (
            select(Team, member_count)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(TeamMember.user_id == user_id)
            .order_by(Team.created_at, Team.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(Team.created_at, Team.id) > tuple_(*after))
        return [(r[0], r[1]) for r in (await self.session.execute(query)).all()]

    async def member(self, team_id: uuid.UUID, user_id: uuid.UUID) -> TeamMember | None:
        return (
            await self.session.execute(
                select(TeamMember)
                .where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
                .with_for_update()
            )
        ).scalar_one_or_none()

    async def member_count(self, team_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(TeamMember).where(TeamMember.team_id == team_id)
        )
        return int(count or 0)
