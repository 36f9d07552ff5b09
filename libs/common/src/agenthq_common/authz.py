"""Roles and permissions: the matrix of ``API.md`` and the ``require``
dependency every team-scoped route uses.

A permission is ``resource:action``. The built-in roles are fixed here;
custom roles (any subset of permissions) belong to a team and reach every
service through ``role.*`` events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common import deps
from agenthq_common.auth import CurrentUser, bearer_token
from agenthq_common.errors import Forbidden, NotFound
from agenthq_common.openapi import raises

RESOURCES: tuple[str, ...] = ("team", "member", "role", "workspace", "activity", "usage", "billing")
ACTIONS: tuple[str, ...] = ("create", "read", "update", "delete")
ALL_PERMISSIONS: frozenset[str] = frozenset(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
READ_ALL: frozenset[str] = frozenset(f"{r}:read" for r in RESOURCES)

BUILT_IN_ROLES: dict[str, frozenset[str]] = {
    "admin": ALL_PERMISSIONS,
    "member": READ_ALL | {"workspace:create", "workspace:update"},
    "viewer": READ_ALL,
}


def is_permission(value: str) -> bool:
    return value in ALL_PERMISSIONS


def permissions_of(role: str, custom: frozenset[str] | None = None) -> frozenset[str]:
    """A built-in role's permissions, else the custom role's (none if it is gone)."""
    if role in BUILT_IN_ROLES:
        return BUILT_IN_ROLES[role]
    return custom or frozenset()


@dataclass(frozen=True)
class Membership:
    team_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    is_owner: bool
    permissions: frozenset[str] = field(default_factory=frozenset, repr=False)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


class MembershipResolver(Protocol):
    """Where a service learns a caller's role in a team: the team service from
    its own tables, every other service from its local read model."""

    async def resolve(
        self, session: AsyncSession, team_id: uuid.UUID, user: CurrentUser, token: str
    ) -> Membership | None: ...


def team_not_found() -> NotFound:
    return NotFound("Team not found", code="team_not_found")


@raises(404)
async def current_membership(
    request: Request,
    team_id: Annotated[uuid.UUID, Path()],
    user: deps.User,
    uow: deps.Uow,
) -> Membership:
    """The caller's membership of ``{team_id}``; 404 for non-members (never reveal a team)."""
    resolver: MembershipResolver = deps.get_service(request).membership_resolver
    membership = await resolver.resolve(uow.session, team_id, user, bearer_token(request))
    if membership is None:
        raise team_not_found()
    return membership


Member = Annotated[Membership, Depends(current_membership)]


def require(permission: str) -> Any:
    """The caller's membership, if their role grants ``permission``: others get
    403, non-members 404. An ``Annotated`` type, to alias per route module::

        CanCreate = require("workspace:create")

        async def create(member: CanCreate, ...): ...
    """
    if not is_permission(permission):
        raise ValueError(f"unknown permission {permission!r}")

    async def check(membership: Member) -> Membership:
        if not membership.can(permission):
            raise Forbidden(
                f"Your role '{membership.role}' does not allow {permission}",
                code="permission_denied",
                details={"permission": permission, "role": membership.role},
            )
        return membership

    check.__name__ = f"require_{permission.replace(':', '_')}"
    return Annotated[Membership, Depends(raises(403)(check))]
