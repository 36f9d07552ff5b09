"""Team rules. Raises domain errors; never commits (the caller's unit of work does)."""

from __future__ import annotations

import uuid
from datetime import datetime

from agenthq_common.db import UnitOfWork
from agenthq_common.errors import NotFound
from agenthq_common.events import Actor, registry
from agenthq_team.models import Team, TeamMember
from agenthq_team.teams.repository import TeamRepository

SOURCE = "agenthq/team"
PLAN_MEMBER_LIMITS: dict[str, int | None] = {"free": 5, "pro": 50, "enterprise": None}


async def create_team(uow: UnitOfWork, actor: Actor, *, name: str, plan: str) -> tuple[Team, int]:
    assert actor.id is not None
    team = Team(
        id=uuid.uuid4(),
        name=name,
        owner_id=actor.id,
        plan=plan,
        max_members=PLAN_MEMBER_LIMITS[plan],
    )
    owner = TeamMember(team_id=team.id, user_id=actor.id, role="admin")
    await TeamRepository(uow.session).add(team, owner)
    uow.publish(
        registry.create(
            "team.created",
            {
                "team_id": team.id,
                "name": team.name,
                "owner_id": team.owner_id,
                "plan": team.plan,
                "max_members": team.max_members,
            },
            source=SOURCE,
            actor=actor,
            subject=f"team/{team.id}",
            team_id=team.id,
        )
    )
    uow.publish(
        registry.create(
            "member.added",
            {"team_id": team.id, "user_id": actor.id, "role": "admin"},
            source=SOURCE,
            actor=actor,
            subject=f"member/{actor.id}",
            team_id=team.id,
        )
    )
    return team, 1


async def get_team(uow: UnitOfWork, user_id: uuid.UUID, team_id: uuid.UUID) -> tuple[Team, int]:
    found = await TeamRepository(uow.session).get_for_member(team_id, user_id)
    if found is None:
        raise NotFound("Team not found", code="team_not_found")
    return found


async def list_teams(
    uow: UnitOfWork, user_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[tuple[Team, int]]:
    return await TeamRepository(uow.session).list_for_member(user_id, limit=limit, after=after)
