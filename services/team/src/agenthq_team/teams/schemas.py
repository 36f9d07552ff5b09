from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from agenthq_common.schemas import Omittable, StrictModel

Plan = Literal["free", "pro", "enterprise"]
TeamName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class TeamCreate(StrictModel):
    name: TeamName
    plan: Plan = "free"


class TeamOut(BaseModel):
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    plan: str
    max_members: int | None
    member_count: int
    created_at: datetime
    updated_at: datetime


class TeamUpdate(StrictModel):
    name: Omittable[TeamName] = None


class PlanChange(StrictModel):
    plan: Plan


class OwnershipTransfer(StrictModel):
    user_id: uuid.UUID
