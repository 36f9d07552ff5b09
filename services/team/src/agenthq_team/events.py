"""Publishing the team service's events (always through the unit of work's outbox)."""

from __future__ import annotations

import uuid
from typing import Any

from agenthq_common.db import UnitOfWork
from agenthq_common.events import Actor, registry

SOURCE = "agenthq/team"


def emit(
    uow: UnitOfWork,
    actor: Actor,
    event_type: str,
    *,
    team_id: uuid.UUID,
    subject: str,
    **data: Any,
) -> None:
    """Publish ``event_type`` about ``subject`` (``<resource>/<id>``) of ``team_id``.

    Every event of the team service carries ``team_id`` in its data too.
    """
    uow.publish(
        registry.create(
            event_type,
            {"team_id": team_id, **data},
            source=SOURCE,
            actor=actor,
            subject=subject,
            team_id=team_id,
        )
    )
