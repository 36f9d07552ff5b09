from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


def iso_time(at: datetime) -> str:
    """UTC in ISO 8601 with ``Z``, as the API's JSON writes times."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ActivityOut(BaseModel):
    id: uuid.UUID
    team_id: uuid.UUID | None
    user_id: uuid.UUID | None
    action: str = Field(description="The domain event type, e.g. member.added")
    resource_type: str | None = Field(description="From the event's subject: <type>/<id>")
    resource_id: str | None
    metadata: dict[str, Any] | None = Field(description="The event's data")
    ip_address: str | None = Field(description="The actor's address, as the gateway saw it")
    user_agent: str | None
    created_at: datetime = Field(description="When the event happened (its CloudEvents time)")


class VerificationOut(BaseModel):
    valid: bool
    checked: int = Field(description="Records examined, oldest retained first")
    first_invalid_id: uuid.UUID | None = Field(
        description="The first record that does not match the chain (null when valid, or "
        "when records are missing at its end)"
    )
    reason: str | None = Field(default=None, description="What did not match, in words")
