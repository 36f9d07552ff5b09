from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_team.models import KnownUser, TeamMember


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_with_users(
        self, team_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
    ) -> list[tuple[TeamMember, KnownUser | None]]:
        query = (
            select(TeamMember, KnownUser)
            .join(KnownUser, KnownUser.id == TeamMember.user_id, isouter=True)
            .where(TeamMember.team_id == team_id)
            .order_by(TeamMember.user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(TeamMember.user_id > after)
        return [(m, u) for m, u in (await self.session.execute(query)).all()]

    async def get(
        self, team_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
    ) -> TeamMember | None:
        query = select(TeamMember).where(
            TeamMember.team_id == team_id, TeamMember.user_id == user_id
        )
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def user(self, user_id: uuid.UUID) -> KnownUser | None:
        return await self.session.get(KnownUser, user_id)

    async def user_by_email(self, email: str) -> KnownUser | None:
        # Two users can briefly share an email while their user.* events arrive
        # out of order: the most recently changed one is the email's owner.
        return (
            await self.session.execute(
                select(KnownUser)
                .where(KnownUser.email == email.lower())
                .order_by(KnownUser.changed_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()

    async def admin_count(self, team_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(TeamMember)
            .where(TeamMember.team_id == team_id, TeamMember.role == "admin")
        )
        return int(count or 0)

    async def add(self, member: TeamMember) -> None:
        self.session.add(member)
        await self.session.flush()
        await self.session.refresh(member)

    async def remove(self, member: TeamMember) -> None:
        await self.session.delete(member)
        await self.session.flush()
