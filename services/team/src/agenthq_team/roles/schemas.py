from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, StringConstraints

from agenthq_common.authz import ALL_PERMISSIONS
from agenthq_common.schemas import StrictModel

# Lower-case slugs, so that a role's name is also safe in URLs and logs. The
# pattern admits the whitespace around the slug that is trimmed, because the
# document states it of what clients send (StrictModel checks the raw value).
CustomRoleName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\s*[a-z][a-z0-9_-]{0,49}\s*$")
]


def _valid_permissions(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - ALL_PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(unknown)} (see GET /v1/permissions)")
    return sorted(set(values))


PermissionList = Annotated[list[str], AfterValidator(_valid_permissions)]


class RoleCreate(StrictModel):
    name: CustomRoleName
    permissions: PermissionList


class RoleUpdate(StrictModel):
    permissions: PermissionList


class RoleOut(BaseModel):
    name: str
    built_in: bool
    permissions: list[str]
