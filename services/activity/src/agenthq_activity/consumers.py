"""Event handlers of the activity service."""

from __future__ import annotations

from agenthq_activity.activity.service import ActivityLog
from agenthq_common.db import UnitOfWork
from agenthq_common.inbox import EventConsumer, ParsedEvent


def register_audit_handlers(consumer: EventConsumer, log: ActivityLog) -> None:
    @consumer.on_batch("#")
    async def record_activity(events: list[ParsedEvent], uow: UnitOfWork) -> None:
        # One insert per batch; the inbox row of each event commits with it.
        await log.record(uow, events)
