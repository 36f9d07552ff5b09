"""Idempotent consumers: an event's effect and its inbox row commit together.

``EventConsumer`` is one durable queue of one service. Handlers are registered
per event-type pattern (AMQP topic syntax); the queue is bound with exactly
those patterns. For each message, in one transaction: record
``(consumer, event id)`` in the inbox, and, only if that row is new, run every
matching handler. A redelivery (broker restart, consumer killed before its
ack, the producer's relay publishing twice) finds the row and does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects.postgresql import insert

from agenthq_common.bus import Bus, PermanentFailure
from agenthq_common.db import Database, UnitOfWork
from agenthq_common.events.envelope import CloudEvent
from agenthq_common.events.registry import EventRegistry, InvalidEventData, UnknownDataVersion
from agenthq_common.logging import get_logger
from agenthq_common.metrics import EVENTS_CONSUMED
from agenthq_common.plumbing import inbox

log = get_logger(__name__)

EventHandler = Callable[[CloudEvent, BaseModel | None, UnitOfWork], Awaitable[None]]


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        head, rest = p[0], p[1:]
        if head == "#":
            return any(match(rest, k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (head == "*" or head == k[0]) and match(rest, k[1:])

    return match(pattern.split("."), routing_key.split("."))


@dataclass
class EventConsumer:
    name: str  # the queue, e.g. "activity.audit"; also the inbox's consumer key
    db: Database
    registry: EventRegistry
    _handlers: list[tuple[str, EventHandler]] = field(default_factory=list)

    def on(self, *patterns: str) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            for pattern in patterns:
                self._handlers.append((pattern, handler))
            return handler

        return register

    @property
    def bindings(self) -> list[str]:
        return sorted({p for p, _ in self._handlers})

    async def start(self, bus: Bus) -> None:
        await bus.consume(self.name, self.bindings, self.handle_message)

    async def handle_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = CloudEvent.from_bytes(message.body)
        except ValidationError as exc:
            EVENTS_CONSUMED.labels(self.name, "invalid").inc()
            raise PermanentFailure(f"not a CloudEvent: {exc.errors()[:3]}") from exc
        with structlog.contextvars.bound_contextvars(event_id=str(event.id), event_type=event.type):
            await self.handle(event)

    async def handle(self, event: CloudEvent) -> bool:
        """Apply ``event`` once; returns False when it had been applied already."""
        try:
            data = self.registry.parse_data(event)
        except (UnknownDataVersion, InvalidEventData) as exc:
            EVENTS_CONSUMED.labels(self.name, "invalid").inc()
            raise PermanentFailure(str(exc)) from exc
        handlers = [h for p, h in self._handlers if topic_matches(p, event.type)]
        async with self.db.unit_of_work() as uow:
            recorded = await uow.session.execute(
                insert(inbox)
                .values(consumer=self.name, event_id=event.id, event_type=event.type)
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
            if recorded.first() is None:
                EVENTS_CONSUMED.labels(self.name, "duplicate").inc()
                log.info("duplicate event ignored", consumer=self.name)
                return False
            for handler in handlers:
                await handler(event, data, uow)
        EVENTS_CONSUMED.labels(self.name, "applied").inc()
        return True
