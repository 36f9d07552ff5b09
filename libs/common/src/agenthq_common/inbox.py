"""Idempotent consumers: an event's effect and its inbox row commit together.

``EventConsumer`` is one durable queue of one service. Handlers are registered
per event-type pattern (AMQP topic syntax); the queue is bound with exactly
those patterns. For each message, in one transaction: record
``(consumer, event id)`` in the inbox, and, only if that row is new, run every
matching handler. A redelivery (broker restart, consumer killed before its
ack, the producer's relay publishing twice) finds the row and does nothing.
"""

from __future__ import annotations

import functools
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

# Built once so SQLAlchemy compiles it once: a statement made per batch (with
# its rows as VALUES) cannot be cached and costs more than the insert itself.
# Executed with a list of rows; RETURNING yields only the rows it inserted.
_RECORD = insert(inbox).on_conflict_do_nothing().returning(inbox.c.event_id)

EventHandler = Callable[[CloudEvent, BaseModel | None, UnitOfWork], Awaitable[None]]
ParsedEvent = tuple[CloudEvent, BaseModel | None]
# Gets every new event of a batch that matches its patterns, in delivery order,
# inside the batch's transaction: for consumers whose writes are cheaper as one
# statement per batch than one per event (the activity log).
BatchEventHandler = Callable[[list[ParsedEvent], UnitOfWork], Awaitable[None]]


@functools.lru_cache(maxsize=4096)
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
    prefetch: int | None = None  # None: the bus's default
    max_batch: int = 100
    _handlers: list[tuple[str, EventHandler]] = field(default_factory=list)
    _batch_handlers: list[tuple[tuple[str, ...], BatchEventHandler]] = field(default_factory=list)
    _routes: dict[str, list[EventHandler]] = field(default_factory=dict)

    def on(self, *patterns: str) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            for pattern in patterns:
                self._handlers.append((pattern, handler))
            self._routes.clear()
            return handler

        return register

    def on_batch(self, *patterns: str) -> Callable[[BatchEventHandler], BatchEventHandler]:
        def register(handler: BatchEventHandler) -> BatchEventHandler:
            # One call per batch with every event any of its patterns matches.
            self._batch_handlers.append((patterns, handler))
            return handler

        return register

    def _handlers_for(self, event_type: str) -> list[EventHandler]:
        found = self._routes.get(event_type)
        if found is None:
            found = [h for p, h in self._handlers if topic_matches(p, event_type)]
            self._routes[event_type] = found
        return found

    @property
    def bindings(self) -> list[str]:
        patterns = {p for p, _ in self._handlers}
        patterns.update(p for group, _ in self._batch_handlers for p in group)
        return sorted(patterns)

    async def start(self, bus: Bus) -> None:
        await bus.consume_batches(
            self.name,
            self.bindings,
            self.handle_messages,
            prefetch=self.prefetch,
            max_batch=self.max_batch,
        )

    def _parse(self, message: AbstractIncomingMessage) -> tuple[CloudEvent, BaseModel | None]:
        try:
            event = CloudEvent.from_bytes(message.body)
        except ValidationError as exc:
            EVENTS_CONSUMED.labels(self.name, "invalid").inc()
            raise PermanentFailure(f"not a CloudEvent: {exc.errors()[:3]}") from exc
        return self._validate(event)

    async def handle_message(self, message: AbstractIncomingMessage) -> None:
        """One delivery in a transaction of its own (raises what the bus should settle)."""
        parsed = self._parse(message)
        async with self.db.unit_of_work() as uow:
            await self._apply(uow, [parsed])

    async def handle(self, event: CloudEvent) -> bool:
        """Apply ``event`` once; returns False when it had been applied already."""
        parsed = self._validate(event)
        async with self.db.unit_of_work() as uow:
            applied = await self._apply(uow, [parsed])
        return bool(applied)

    def _validate(self, event: CloudEvent) -> tuple[CloudEvent, BaseModel | None]:
        try:
            return event, self.registry.parse_data(event)
        except (UnknownDataVersion, InvalidEventData) as exc:
            EVENTS_CONSUMED.labels(self.name, "invalid").inc()
            raise PermanentFailure(str(exc)) from exc

    async def handle_messages(
        self, messages: list[AbstractIncomingMessage]
    ) -> list[Exception | None]:
        """A batch of deliveries in one transaction: one inbox insert, one commit.

        If any handler fails, the batch is rolled back and every message is
        retried on its own, so that one bad event cannot hold back the others
        and retries and dead-lettering stay per message.
        """
        outcomes: list[Exception | None] = [None] * len(messages)
        parsed: list[tuple[CloudEvent, BaseModel | None]] = []
        for i, message in enumerate(messages):
            try:
                parsed.append(self._parse(message))
            except PermanentFailure as exc:
                outcomes[i] = exc
        if not parsed:
            return outcomes
        try:
            async with self.db.unit_of_work() as uow:
                await self._apply(uow, parsed)
            return outcomes
        except Exception as exc:
            if len(messages) == 1:
                return [exc]
        for i, message in enumerate(messages):
            if outcomes[i] is None:
                try:
                    await self.handle_message(message)
                except Exception as exc:
                    outcomes[i] = exc
        return outcomes

    async def _apply(
        self, uow: UnitOfWork, events: list[tuple[CloudEvent, BaseModel | None]]
    ) -> list[CloudEvent]:
        """Record the events in the inbox; run the handlers of those that are new."""
        recorded = await uow.session.execute(
            _RECORD,
            [{"consumer": self.name, "event_id": e.id, "event_type": e.type} for e, _ in events],
        )
        new_ids = set(recorded.scalars())
        applied: list[CloudEvent] = []
        fresh: list[ParsedEvent] = []
        for event, data in events:
            if event.id not in new_ids:
                EVENTS_CONSUMED.labels(self.name, "duplicate").inc()
                log.info("duplicate event ignored", consumer=self.name, event_id=str(event.id))
                continue
            new_ids.discard(event.id)  # the same event twice in one batch: once
            with structlog.contextvars.bound_contextvars(
                event_id=str(event.id), event_type=event.type
            ):
                for handler in self._handlers_for(event.type):
                    await handler(event, data, uow)
            applied.append(event)
            fresh.append((event, data))
        for patterns, batch_handler in self._batch_handlers:
            matching = [
                item for item in fresh if any(topic_matches(p, item[0].type) for p in patterns)
            ]
            if matching:
                await batch_handler(matching, uow)
        EVENTS_CONSUMED.labels(self.name, "applied").inc(len(applied))
        return applied
