"""Roles: the built-ins (fixed) and a team's custom roles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.authz import BUILT_IN_ROLES, Membership
from agenthq_common.db import UnitOfWork
from agenthq_common.errors import Conflict, Forbidden, NotFound, Unprocessable
from agenthq_common.events import Actor
from agenthq_team.events import emit
from agenthq_team.models import Invitation, Role, TeamMember
from agenthq_team.roles.schemas import RoleOut
from agenthq_team.seats import lock_team


async def ensure_assignable(session: AsyncSession, member: Membership, name: str) -> None:
    """``name`` exists in the team, and ``member`` holds every permission it
    grants: nobody can hand out more than they have (a custom role with
    ``member:update`` cannot make its holder an admin)."""
    if name in BUILT_IN_ROLES:
        granted = BUILT_IN_ROLES[name]
    else:
        role = await session.get(Role, (member.team_id, name))
        if role is None:
            raise Unprocessable(
                f"No role named {name!r} in this team",
                code="unknown_role",
                details=[{"field": "role", "in": "body", "message": "unknown role"}],
            )
        granted = frozenset(role.permissions)
    ensure_can_grant(member, granted)


def ensure_can_grant(member: Membership, permissions: frozenset[str] | list[str]) -> None:
    missing = sorted(set(permissions) - member.permissions)
    if missing:
        raise Forbidden(
            "You cannot grant permissions you do not have yourself",
            code="cannot_grant",
            details={"missing": missing},
        )


async def list_roles(uow: UnitOfWork, team_id: uuid.UUID) -> list[RoleOut]:
    built_in = [
        RoleOut(name=name, built_in=True, permissions=sorted(perms))
        for name, perms in BUILT_IN_ROLES.items()
    ]
    custom = (
        await uow.session.execute(select(Role).where(Role.team_id == team_id).order_by(Role.name))
    ).scalars()
    return built_in + [
        RoleOut(name=r.name, built_in=False, permissions=sorted(r.permissions)) for r in custom
    ]


def _refuse_built_in(name: str) -> None:
    if name in BUILT_IN_ROLES:
        raise Conflict(f"The built-in role {name!r} cannot be changed", code="built_in_role")


async def create_role(
    uow: UnitOfWork, actor: Actor, member: Membership, *, name: str, permissions: list[str]
) -> RoleOut:
    team_id = member.team_id
    if name in BUILT_IN_ROLES:
        raise Conflict(f"{name!r} is a built-in role", code="role_exists")
    ensure_can_grant(member, permissions)
    # Role changes take the team's lock, like every change that assigns a role,
    # so a role can never vanish between being checked and being assigned.
    await lock_team(uow.session, team_id)
    if await uow.session.get(Role, (team_id, name)) is not None:
        raise Conflict(f"The team already has a role named {name!r}", code="role_exists")
    uow.session.add(Role(team_id=team_id, name=name, permissions=permissions))
    await uow.session.flush()
    emit(
        uow,
        actor,
        "role.created",
        team_id=team_id,
        subject=f"role/{name}",
        name=name,
        permissions=permissions,
    )
    return RoleOut(name=name, built_in=False, permissions=permissions)


async def _custom_role(uow: UnitOfWork, team_id: uuid.UUID, name: str) -> Role:
    _refuse_built_in(name)
    await lock_team(uow.session, team_id)
    role = await uow.session.get(Role, (team_id, name), with_for_update=True)
    if role is None:
        raise NotFound(f"No role named {name!r} in this team", code="role_not_found")
    return role


async def update_role(
    uow: UnitOfWork, actor: Actor, member: Membership, *, name: str, permissions: list[str]
) -> RoleOut:
    team_id = member.team_id
    ensure_can_grant(member, permissions)
    role = await _custom_role(uow, team_id, name)
    role.permissions = permissions
    role.updated_at = datetime.now(UTC)
    emit(
        uow,
        actor,
        "role.updated",
        team_id=team_id,
        subject=f"role/{name}",
        name=name,
        permissions=permissions,
    )
    return RoleOut(name=name, built_in=False, permissions=permissions)


async def delete_role(uow: UnitOfWork, actor: Actor, team_id: uuid.UUID, *, name: str) -> None:
    role = await _custom_role(uow, team_id, name)
    in_use = await uow.session.scalar(
        select(
            or_(
                exists().where(TeamMember.team_id == team_id, TeamMember.role == name),
                exists().where(
                    Invitation.team_id == team_id,
                    Invitation.role == name,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > func.now(),
                ),
            )
        )
    )
    if in_use:
        raise Conflict(
            f"The role {name!r} is assigned to members or pending invitations", code="role_in_use"
        )
    await uow.session.delete(role)
    emit(
        uow,
        actor,
        "role.deleted",
        team_id=team_id,
        subject=f"role/{name}",
        name=name,
        permissions=list(role.permissions),
    )
