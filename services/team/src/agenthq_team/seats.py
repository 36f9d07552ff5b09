"""Member limits. Every change that takes or frees a seat first locks the
team's row, so concurrent adds to a team with one seat left are serialised:
exactly one gets it. Pending invitations hold seats too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.authz import team_not_found
from agenthq_common.errors import Conflict
from agenthq_team.models import Invitation, Team, TeamMember

PLAN_MEMBER_LIMITS: dict[str, int | None] = {"free": 5, "pro": 50, "enterprise": None}


async def lock_team(session: AsyncSession, team_id: uuid.UUID) -> Team:
    team = (
        await session.execute(select(Team).where(Team.id == team_id).with_for_update())
    ).scalar_one_or_none()
    if team is None:
        raise team_not_found()
    return team


async def seats_taken(session: AsyncSession, team_id: uuid.UUID) -> int:
    members = await session.scalar(
        select(func.count()).select_from(TeamMember).where(TeamMember.team_id == team_id)
    )
    pending = await session.scalar(
        select(func.count())
        .select_from(Invitation)
        .where(
            Invitation.team_id == team_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > datetime.now(UTC),
        )
    )
    return int(members or 0) + int(pending or 0)


async def claim_seat(session: AsyncSession, team: Team) -> None:
    """Raise 409 ``member_limit_reached`` if the (locked) team has no seat left."""
    if team.max_members is None:
        return
    taken = await seats_taken(session, team.id)
    if taken >= team.max_members:
        raise Conflict(
            f"The {team.plan} plan allows {team.max_members} members (invitations included)",
            code="member_limit_reached",
            details={"max_members": team.max_members, "taken": taken, "plan": team.plan},
        )
