from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, StringConstraints, model_validator

from agenthq_common.schemas import StrictModel

RoleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class MemberAdd(StrictModel):
    user_id: uuid.UUID | None = None
    email: EmailStr | None = None
    role: RoleName = "member"

    @model_validator(mode="after")
    def _one_identity(self) -> MemberAdd:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id or email")
        return self


class MemberRoleChange(StrictModel):
    role: RoleName


class MemberOut(BaseModel):
    team_id: uuid.UUID
    user_id: uuid.UUID
    email: str | None
    name: str | None
    role: str
    joined_at: datetime
