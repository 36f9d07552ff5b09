from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, StringConstraints

from agenthq_common.schemas import StrictModel

Password = Annotated[str, StringConstraints(min_length=10, max_length=1024)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class RegisterIn(StrictModel):
    email: EmailStr
    password: Password
    name: Name


class LoginIn(StrictModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RefreshIn(StrictModel):
    refresh_token: OpaqueToken


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


class TeamRef(BaseModel):
    id: uuid.UUID
    name: str | None
    role: str


class MeOut(UserOut):
    teams: list[TeamRef]


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
