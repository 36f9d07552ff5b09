"""The registry of event types: one pydantic ``data`` model per type and
version, used to validate what is published and what is consumed, and to
generate the AsyncAPI document."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agenthq_common.events.envelope import Actor, CloudEvent


class UnknownDataVersion(Exception):
    """A consumer got a ``dataversion`` it does not know: dead-letter it."""


class InvalidEventData(Exception):
    pass


@dataclass(frozen=True)
class EventTypeInfo:
    type: str
    producer: str
    data_model: type[BaseModel]
    version: str = "1"
    summary: str = ""


class EventRegistry:
    def __init__(self) -> None:
        self._types: dict[tuple[str, str], EventTypeInfo] = {}

    def register(
        self,
        type_: str,
        data_model: type[BaseModel],
        *,
        producer: str,
        version: str = "1",
        summary: str = "",
    ) -> None:
        key = (type_, version)
        if key in self._types:
            raise ValueError(f"event type {type_} v{version} registered twice")
        self._types[key] = EventTypeInfo(type_, producer, data_model, version, summary)

    def __contains__(self, type_: str) -> bool:
        return any(t == type_ for t, _ in self._types)

    def types(self) -> list[EventTypeInfo]:
        return sorted(self._types.values(), key=lambda i: (i.type, i.version))

    def info(self, type_: str, version: str = "1") -> EventTypeInfo | None:
        return self._types.get((type_, version))

    def parse_data(self, event: CloudEvent) -> BaseModel | None:
        """Validate an incoming event's data; None for types this registry does not know.

        Known type, unknown version: UnknownDataVersion (the consumer dead-letters).
        """
        info = self._types.get((event.type, event.dataversion))
        if info is None:
            if event.type in self:
                raise UnknownDataVersion(f"{event.type} dataversion {event.dataversion}")
            return None
        try:
            return info.data_model.model_validate(event.data)
        except ValidationError as exc:
            raise InvalidEventData(f"{event.type}: {exc}") from exc

    def create(
        self,
        type_: str,
        data: BaseModel | dict[str, Any],
        *,
        source: str,
        actor: Actor | None = None,
        subject: str | None = None,
        team_id: uuid.UUID | None = None,
        version: str = "1",
    ) -> CloudEvent:
        """Build an outgoing event, refusing data that its type's model rejects."""
        info = self._types.get((type_, version))
        if info is None:
            raise ValueError(f"unregistered event type {type_} v{version}")
        model = (
            data
            if isinstance(data, info.data_model)
            else info.data_model.model_validate(
                data if isinstance(data, dict) else data.model_dump()
            )
        )
        actor = actor or Actor.system()
        return CloudEvent(
            source=source,
            type=type_,
            subject=subject,
            teamid=team_id,
            actorid=actor.id,
            actorip=actor.ip,
            actorua=actor.user_agent,
            traceparent=actor.traceparent,
            dataversion=version,
            data=model.model_dump(mode="json"),
        )
