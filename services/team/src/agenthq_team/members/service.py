"""Membership rules: seats, roles, the owner, and never zero admins."""

from __future__ import annotations

import uuid

from agenthq_common.authz import Membership
from agenthq_common.db import UnitOfWork
from agenthq_common.errors import Conflict, Forbidden, NotFound
from agenthq_common.events import Actor
from agenthq_team.events import emit
from agenthq_team.members.repository import MemberRepository
from agenthq_team.models import KnownUser, TeamMember
from agenthq_team.roles.service import ensure_assignable
from agenthq_team.seats import claim_seat, lock_team


async def list_members(
    uow: UnitOfWork, team_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
) -> list[tuple[TeamMember, KnownUser | None]]:
    return await MemberRepository(uow.session).list_with_users(team_id, limit=limit, after=after)


async def add_member(
    uow: UnitOfWork,
    actor: Actor,
    member: Membership,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
    role: str,
) -> tuple[TeamMember, KnownUser | None]:
    repo = MemberRepository(uow.session)
    team = await lock_team(uow.session, member.team_id)
    await ensure_assignable(uow.session, member, role)
    user = await (repo.user(user_id) if user_id is not None else repo.user_by_email(email or ""))
    if user is None:
        raise NotFound("No user with that id or email", code="user_not_found")
    if await repo.get(team.id, user.id) is not None:
        raise Conflict("That user is already a member", code="already_member")
    await claim_seat(uow.session, team)
    added = TeamMember(team_id=team.id, user_id=user.id, role=role)
    await repo.add(added)
    emit(
        uow,
        actor,
        "member.added",
        team_id=team.id,
        subject=f"member/{user.id}",
        user_id=user.id,
        role=role,
    )
    return added, user


async def change_role(
    uow: UnitOfWork, actor: Actor, member: Membership, *, user_id: uuid.UUID, role: str
) -> tuple[TeamMember, KnownUser | None]:
    repo = MemberRepository(uow.session)
    team = await lock_team(uow.session, member.team_id)
    target = await repo.get(team.id, user_id, lock=True)
    if target is None:
        raise NotFound("No such member", code="member_not_found")
    await ensure_assignable(uow.session, member, role)
    if role == target.role:
        return target, await repo.user(user_id)
    if user_id == team.owner_id and role != "admin":
        raise Conflict(
            "The owner's role cannot drop below admin; transfer ownership first",
            code="owner_must_be_admin",
        )
    if target.role == "admin" and await repo.admin_count(team.id) <= 1:
        raise Conflict("A team needs at least one admin", code="last_admin")
    old_role = target.role
    target.role = role
    emit(
        uow,
        actor,
        "member.role_changed",
        team_id=team.id,
        subject=f"member/{user_id}",
        user_id=user_id,
        old_role=old_role,
        new_role=role,
    )
    return target, await repo.user(user_id)


async def remove_member(
    uow: UnitOfWork, actor: Actor, member: Membership, *, user_id: uuid.UUID
) -> None:
    """Remove ``user_id`` (needs ``member:delete``), or leave (``user_id`` is the caller)."""
    leaving = user_id == member.user_id
    if not leaving and not member.can("member:delete"):
        raise Forbidden(
            f"Your role '{member.role}' does not allow member:delete",
            code="permission_denied",
            details={"permission": "member:delete"},
        )
    repo = MemberRepository(uow.session)
    team = await lock_team(uow.session, member.team_id)
    target = await repo.get(team.id, user_id, lock=True)
    if target is None:
        raise NotFound("No such member", code="member_not_found")
    if user_id == team.owner_id:
        raise Conflict(
            "The owner cannot leave or be removed; transfer ownership first",
            code="owner_cannot_leave",
        )
    if target.role == "admin" and await repo.admin_count(team.id) <= 1:
        raise Conflict("A team needs at least one admin", code="last_admin")
    await repo.remove(target)
    emit(
        uow,
        actor,
        "member.removed",
        team_id=team.id,
        subject=f"member/{user_id}",
        user_id=user_id,
        role=target.role,
    )
