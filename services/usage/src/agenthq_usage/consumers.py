"""Event handlers of the usage service."""

from __future__ import annotations

from agenthq_common.db import UnitOfWork
from agenthq_common.inbox import EventConsumer, ParsedEvent
from agenthq_usage.metering import service

METERED_PATTERNS = tuple(service.METERED_TYPES)


def register_metering_handlers(consumer: EventConsumer) -> None:
    @consumer.on_batch(*METERED_PATTERNS)
    async def count_usage(events: list[ParsedEvent], uow: UnitOfWork) -> None:
        # One statement per batch; the ledger makes it exact even across the
        # HTTP ingest, the inbox makes a redelivered batch free.
        await service.count(uow, [service.metered_from_event(e) for e, _ in events])
