"""Who may do what in a team, answered from the team service's own tables
(it is the source of truth; every other service keeps a read model of it)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.auth import CurrentUser
from agenthq_common.authz import Membership, permissions_of
from agenthq_common.db import driver_connection

# Plain SQL on the session's connection: this runs on every request.
_MEMBERSHIP = """
SELECT m.role, t.owner_id, r.permissions
FROM team_members m
JOIN teams t ON t.id = m.team_id
LEFT JOIN roles r ON r.team_id = m.team_id AND r.name = m.role
WHERE m.team_id = $1 AND m.user_id = $2
"""


async def membership_of(
    session: AsyncSession, team_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    row = await (await driver_connection(session)).fetchrow(_MEMBERSHIP, team_id, user_id)
    if row is None:
        return None
    custom = frozenset(row["permissions"]) if row["permissions"] is not None else None
    return Membership(
        team_id=team_id,
        user_id=user_id,
        role=row["role"],
        is_owner=row["owner_id"] == user_id,
        permissions=permissions_of(row["role"], custom),
    )


class TeamTablesResolver:
    async def resolve(
        self, session: AsyncSession, team_id: uuid.UUID, user: CurrentUser, token: str
    ) -> Membership | None:
        return await membership_of(session, team_id, user.id)
