from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StrictBool, StringConstraints

from agenthq_common.schemas import Omittable, StrictModel

WorkspaceName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
]
Description = Annotated[str, StringConstraints(max_length=10_000)]


class WorkspaceCreate(StrictModel):
    name: WorkspaceName
    description: Description | None = None


class WorkspaceUpdate(StrictModel):
    """Only the fields sent change; ``description: null`` clears the description."""

    name: Omittable[WorkspaceName] = None
    description: Description | None = None
    # Strict: true or false, not 0, 1, "yes" or "off" (the contract says boolean).
    archived: Omittable[StrictBool] = None


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str
    description: str | None
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
