from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from agenthq_common.authz import ACTIONS, RESOURCES, Member, is_permission
from agenthq_common.deps import Uow, User
from agenthq_common.errors import Forbidden, Unprocessable
from agenthq_common.openapi import error_responses
from agenthq_team.access import membership_of

router = APIRouter(tags=["permissions"])


class PermissionsOut(BaseModel):
    resources: dict[str, list[str]]


class CheckOut(BaseModel):
    allowed: bool
    role: str | None


@router.get("/v1/permissions", response_model=PermissionsOut)
async def list_permissions(_: User) -> PermissionsOut:
    return PermissionsOut(resources={r: list(ACTIONS) for r in RESOURCES})


@router.get(
    "/v1/teams/{team_id}/permissions/check",
    response_model=CheckOut,
    responses=error_responses(403),
)
async def check_permission(
    member: Member,
    uow: Uow,
    permission: Annotated[str, Query(max_length=100)],
    user_id: uuid.UUID | None = None,
) -> CheckOut:
    if not is_permission(permission):
        raise Unprocessable(
            f"Unknown permission {permission!r} (see GET /v1/permissions)",
            details=[{"field": "permission", "in": "query", "message": "unknown permission"}],
        )
    subject = member
    if user_id is not None and user_id != member.user_id:
        if not member.can("member:read"):
            raise Forbidden("Checking someone else needs member:read", code="permission_denied")
        found = await membership_of(uow.session, member.team_id, user_id)
        if found is None:
            return CheckOut(allowed=False, role=None)
        subject = found
    return CheckOut(allowed=subject.can(permission), role=subject.role)
