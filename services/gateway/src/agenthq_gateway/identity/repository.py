from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.membership import rm_members, rm_teams
from agenthq_gateway.models import RefreshToken, User


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user_by_email(self, email: str) -> User | None:
        return (
            await self.session.execute(select(User).where(func.lower(User.email) == email.lower()))
        ).scalar_one_or_none()

    async def user_by_id(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def add_user(self, user: User) -> None:
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user)

    async def refresh_token_for_update(self, token_hash: str) -> RefreshToken | None:
        return (
            await self.session.execute(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
            )
        ).scalar_one_or_none()

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_all_of_user(self, user_id: uuid.UUID, at: datetime) -> int:
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def teams_of(self, user_id: uuid.UUID) -> list[tuple[uuid.UUID, str | None, str]]:
        rows = await self.session.execute(
            select(rm_teams.c.team_id, rm_teams.c.name, rm_members.c.role)
            .join(rm_members, rm_members.c.team_id == rm_teams.c.team_id)
            .where(
                rm_members.c.user_id == user_id,
                rm_members.c.active.is_(True),
                rm_teams.c.deleted.is_(False),
            )
            .order_by(rm_teams.c.name)
        )
        return [(r.team_id, r.name, r.role) for r in rows]
