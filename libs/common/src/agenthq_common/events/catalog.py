"""Every event type of ``EVENTS.md``, with the data model it carries.

This is the single source of the event contract: producers build events
through it, consumers validate with it, and ``docs/asyncapi.json`` is
generated from it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agenthq_common.events.registry import EventRegistry


class EventData(BaseModel):
    # Producers may add fields in a compatible way; consumers ignore them.
    model_config = ConfigDict(extra="ignore")


class UserData(EventData):
    user_id: uuid.UUID
    email: str
    name: str


class TeamCreated(EventData):
    team_id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    plan: str
    max_members: int | None


class TeamUpdated(EventData):
    team_id: uuid.UUID
    name: str


class TeamPlanChanged(EventData):
    team_id: uuid.UUID
    old_plan: str
    new_plan: str
    max_members: int | None


class TeamOwnershipTransferred(EventData):
    team_id: uuid.UUID
    old_owner_id: uuid.UUID
    new_owner_id: uuid.UUID


class TeamDeleted(EventData):
    team_id: uuid.UUID


class MemberData(EventData):
    team_id: uuid.UUID
    user_id: uuid.UUID
    role: str


class MemberRoleChanged(EventData):
    team_id: uuid.UUID
    user_id: uuid.UUID
    old_role: str
    new_role: str


class InvitationCreated(EventData):
    invitation_id: uuid.UUID
    team_id: uuid.UUID
    email: str
    role: str
    expires_at: datetime


class InvitationAccepted(EventData):
    invitation_id: uuid.UUID
    team_id: uuid.UUID
    user_id: uuid.UUID


class InvitationRevoked(EventData):
    invitation_id: uuid.UUID
    team_id: uuid.UUID


class RoleData(EventData):
    team_id: uuid.UUID
    name: str
    permissions: list[str]


class WorkspaceData(EventData):
    workspace_id: uuid.UUID
    team_id: uuid.UUID
    name: str
    description: str | None = None
    archived: bool = False


class WorkspaceDeleted(EventData):
    workspace_id: uuid.UUID
    team_id: uuid.UUID


class TaskCreated(EventData):
    task_id: uuid.UUID
    workspace_id: uuid.UUID | None = None


class TaskCompleted(EventData):
    task_id: uuid.UUID
    workspace_id: uuid.UUID | None = None
    status: str


class LlmTokensUsed(EventData):
    tokens: int = Field(ge=0)
    model: str | None = None


class ApiCalls(EventData):
    count: int = Field(ge=0)


class StorageChanged(EventData):
    delta_bytes: int


class QuotaExceeded(EventData):
    team_id: uuid.UUID
    metric: str
    limit: int
    used: int
    period: str


class InvoiceFinalized(EventData):
    team_id: uuid.UUID
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    total: int
    currency: Literal["USD", "EUR", "KRW"] | str


# (type, producer, data model, summary)
_CATALOG: list[tuple[str, str, type[BaseModel], str]] = [
    ("user.registered", "gateway", UserData, "A user signed up."),
    ("user.updated", "gateway", UserData, "A user's email or name changed."),
    ("team.created", "team", TeamCreated, "A team was created; its creator is the owner."),
    ("team.updated", "team", TeamUpdated, "A team was renamed."),
    ("team.plan_changed", "team", TeamPlanChanged, "A team's plan changed."),
    ("team.ownership_transferred", "team", TeamOwnershipTransferred, "Ownership moved."),
    ("team.deleted", "team", TeamDeleted, "A team was deleted; forget its data."),
    ("member.added", "team", MemberData, "A user joined a team."),
    ("member.role_changed", "team", MemberRoleChanged, "A member's role changed."),
    ("member.removed", "team", MemberData, "A member left or was removed."),
    ("invitation.created", "team", InvitationCreated, "An invitation was sent."),
    ("invitation.accepted", "team", InvitationAccepted, "An invitation was accepted."),
    ("invitation.revoked", "team", InvitationRevoked, "An invitation was revoked."),
    ("role.created", "team", RoleData, "A custom role was created."),
    ("role.updated", "team", RoleData, "A custom role's permissions changed."),
    ("role.deleted", "team", RoleData, "A custom role was deleted."),
    ("workspace.created", "workspace", WorkspaceData, "A workspace was created."),
    ("workspace.updated", "workspace", WorkspaceData, "A workspace changed or was archived."),
    ("workspace.deleted", "workspace", WorkspaceDeleted, "A workspace was deleted."),
    ("task.created", "other AgentHQ services", TaskCreated, "A task was created."),
    ("task.completed", "other AgentHQ services", TaskCompleted, "A task finished."),
    ("llm.tokens.used", "other AgentHQ services", LlmTokensUsed, "LLM tokens were consumed."),
    ("api.calls", "gateway", ApiCalls, "API calls of a team, aggregated and flushed."),
    ("storage.changed", "other AgentHQ services", StorageChanged, "Stored bytes changed."),
    ("usage.quota_exceeded", "usage", QuotaExceeded, "A team crossed a hard quota."),
    ("invoice.finalized", "usage", InvoiceFinalized, "A month's invoice was finalized."),
]

registry = EventRegistry()
for _type, _producer, _model, _summary in _CATALOG:
    registry.register(_type, _model, producer=_producer, summary=_summary)

__all__ = ["registry"]
