"""Event handlers of the workspace service."""

from __future__ import annotations

from typing import Any

from agenthq_common.db import UnitOfWork
from agenthq_common.events import Actor, CloudEvent
from agenthq_common.inbox import EventConsumer
from agenthq_workspace.workspaces import service


def register_lifecycle_handlers(consumer: EventConsumer) -> None:
    # Registered after the read model's handlers on the same consumer: the
    # team is marked deleted first, in the same transaction.
    @consumer.on("team.deleted")
    async def forget_team(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
        # The deletions are the team owner's doing: they carry the owner as actor.
        actor = Actor(event.actorid, event.actorip, event.actorua, event.traceparent)
        await service.forget_team(uow, actor, data.team_id)
