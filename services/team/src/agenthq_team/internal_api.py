"""Routes for the other services, not the public API (the gateway does not
route ``/internal``): the read-your-writes fallback of their read models."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from agenthq_common.authz import Member

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


class MembershipOut(BaseModel):
    role: str
    is_owner: bool
    permissions: list[str]


@router.get("/teams/{team_id}/membership", response_model=MembershipOut)
async def my_membership(member: Member) -> MembershipOut:
    """The caller's own membership (their token says who; 404 if none)."""
    return MembershipOut(
        role=member.role, is_owner=member.is_owner, permissions=sorted(member.permissions)
    )
