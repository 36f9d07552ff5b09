"""Event handlers of the activity service."""

from __future__ import annotations

from typing import Any

from agenthq_activity.activity import service
from agenthq_common.db import UnitOfWork
from agenthq_common.events import CloudEvent
from agenthq_common.inbox import EventConsumer


def register_audit_handlers(consumer: EventConsumer) -> None:
    @consumer.on("#")
    async def record_activity(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        await service.record(uow, event)
