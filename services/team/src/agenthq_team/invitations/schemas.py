from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, StringConstraints

from agenthq_common.schemas import StrictModel
from agenthq_team.members.schemas import RoleName


class InvitationCreate(StrictModel):
    email: EmailStr
    role: RoleName = "member"


class InvitationAccept(StrictModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class InvitationOut(BaseModel):
    id: uuid.UUID
    team_id: uuid.UUID
    email: str
    role: str
    invited_by: uuid.UUID
    created_at: datetime
    expires_at: datetime
    status: Literal["pending", "accepted", "revoked", "expired"]


class InvitationCreated(InvitationOut):
    token: str  # shown once; only its hash is stored
