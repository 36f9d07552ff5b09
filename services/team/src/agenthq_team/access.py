"""Who may do what in a team, answered from the team service's own tables
(it is the source of truth; every other service keeps a read model of it)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.auth import CurrentUser
from agenthq_common.authz import Membership, permissions_of
from agenthq_team.models import Role, Team, TeamMember


async def membership_of(
    session: AsyncSession, team_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    row = (
        await session.execute(
            select(TeamMember.role, Team.owner_id, Role.permissions)
            .join(Team, Team.id == TeamMember.team_id)
            .join(
                Role,
                (Role.team_id == TeamMember.team_id) & (Role.name == TeamMember.role),
                isouter=True,
            )
            .where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    custom = frozenset(row.permissions) if row.permissions is not None else None
    return Membership(
        team_id=team_id,
        user_id=user_id,
        role=row.role,
        is_owner=row.owner_id == user_id,
        permissions=permissions_of(row.role, custom),
    )


class TeamTablesResolver:
    async def resolve(
        self, session: AsyncSession, team_id: uuid.UUID, user: CurrentUser, token: str
    ) -> Membership | None:
        return await membership_of(session, team_id, user.id)
