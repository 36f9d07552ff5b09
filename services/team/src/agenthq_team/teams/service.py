"""Team rules. Raises domain errors; never commits (the caller's unit of work does)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete

from agenthq_common.authz import Membership
from agenthq_common.db import UnitOfWork
from agenthq_common.errors import Conflict, Forbidden, NotFound
from agenthq_common.events import Actor
from agenthq_team.events import emit
from agenthq_team.models import Team, TeamMember
from agenthq_team.seats import PLAN_MEMBER_LIMITS, lock_team, seats_taken
from agenthq_team.teams.repository import TeamRepository


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
    emit(
        uow,
        actor,
        "team.created",
        team_id=team.id,
        subject=f"team/{team.id}",
        name=team.name,
        owner_id=team.owner_id,
        plan=team.plan,
        max_members=team.max_members,
    )
    emit(
        uow,
        actor,
        "member.added",
        team_id=team.id,
        subject=f"member/{actor.id}",
        user_id=actor.id,
        role="admin",
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


def _require_owner(member: Membership, what: str) -> None:
    if not member.is_owner:
        raise Forbidden(f"Only the team's owner can {what}", code="owner_only")


async def update(uow: UnitOfWork, actor: Actor, member: Membership, *, name: str | None) -> Team:
    team = await lock_team(uow.session, member.team_id)
    if name is None or name == team.name:
        return team  # nothing to change, nothing to publish
    team.name = name
    team.updated_at = datetime.now(UTC)
    emit(uow, actor, "team.updated", team_id=team.id, subject=f"team/{team.id}", name=name)
    return team


async def delete_team(uow: UnitOfWork, actor: Actor, member: Membership) -> None:
    _require_owner(member, "delete it")
    team = await lock_team(uow.session, member.team_id)
    # Members, invitations and roles go with it (ON DELETE CASCADE).
    await uow.session.execute(delete(Team).where(Team.id == team.id))
    emit(uow, actor, "team.deleted", team_id=team.id, subject=f"team/{team.id}")


async def transfer_ownership(
    uow: UnitOfWork, actor: Actor, member: Membership, *, new_owner_id: uuid.UUID
) -> Team:
    _require_owner(member, "transfer ownership")
    team = await lock_team(uow.session, member.team_id)
    repo = TeamRepository(uow.session)
    target = await repo.member(team.id, new_owner_id)
    if target is None:
        raise NotFound("The new owner must be a member of the team", code="member_not_found")
    old_owner = team.owner_id
    if new_owner_id == old_owner:
        return team
    if target.role != "admin":
        old_role = target.role
        target.role = "admin"
        emit(
            uow,
            actor,
            "member.role_changed",
            team_id=team.id,
            subject=f"member/{new_owner_id}",
            user_id=new_owner_id,
            old_role=old_role,
            new_role="admin",
        )
    team.owner_id = new_owner_id
    team.updated_at = datetime.now(UTC)
    emit(
        uow,
        actor,
        "team.ownership_transferred",
        team_id=team.id,
        subject=f"team/{team.id}",
        old_owner_id=old_owner,
        new_owner_id=new_owner_id,
    )
    return team


async def change_plan(uow: UnitOfWork, actor: Actor, member: Membership, *, plan: str) -> Team:
    team = await lock_team(uow.session, member.team_id)
    if plan == team.plan:
        return team
    limit = PLAN_MEMBER_LIMITS[plan]
    taken = await seats_taken(uow.session, team.id)
    if limit is not None and taken > limit:
        raise Conflict(
            f"The team has {taken} members and pending invitations; the {plan} plan allows "
            f"{limit}. Remove members or revoke invitations first.",
            code="member_limit_exceeded",
            details={"plan": plan, "max_members": limit, "taken": taken},
        )
    old_plan = team.plan
    team.plan = plan
    team.max_members = limit
    team.updated_at = datetime.now(UTC)
    emit(
        uow,
        actor,
        "team.plan_changed",
        team_id=team.id,
        subject=f"team/{team.id}",
        old_plan=old_plan,
        new_plan=plan,
        max_members=limit,
    )
    return team


async def member_count(uow: UnitOfWork, team_id: uuid.UUID) -> int:
    return await TeamRepository(uow.session).member_count(team_id)
