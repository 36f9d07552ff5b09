"""The CloudEvents 1.0 structured-JSON envelope of ``EVENTS.md``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event, as the gateway forwarded it. ``id`` is None for the system."""

    id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None
    traceparent: str | None = None

    @classmethod
    def system(cls, traceparent: str | None = None) -> Actor:
        return cls(traceparent=traceparent)


class CloudEvent(BaseModel):
    # Extension attributes we do not know yet are kept, not refused: other
    # AgentHQ services may add their own.
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str
    type: str = Field(min_length=1, max_length=200)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    subject: str | None = None
    teamid: uuid.UUID | None = None
    actorid: uuid.UUID | None = None
    actorip: str | None = None
    actorua: str | None = None
    traceparent: str | None = None
    dataversion: str = "1"
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def resource(self) -> tuple[str | None, str | None]:
        """``subject`` split into (resource_type, resource_id)."""
        if not self.subject:
            return None, None
        kind, _, ident = self.subject.partition("/")
        return kind or None, ident or None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)
