from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, StrictInt, model_validator

from agenthq_common.schemas import IsoDateTime, StrictModel

MAX_QUANTITY = 2**53  # beyond any real event; keeps every sum far from bigint overflow


class DailyUsage(BaseModel):
    date: date
    tasks_created: int = 0
    tasks_completed: int = 0
    llm_tokens_used: int = 0
    api_calls: int = 0
    storage_bytes: int = Field(default=0, description="Net change of stored bytes that day")


class MonthlyUsage(BaseModel):
    year: int
    month: int
    tasks_created: int
    tasks_completed: int
    llm_tokens_used: int
    api_calls: int
    storage_bytes: int = Field(description="Net change of stored bytes over the month")


class DailyUsagePage(BaseModel):
    items: list[DailyUsage]
    next_cursor: None = None


class UsageEventIn(StrictModel):
    id: uuid.UUID = Field(description="The event's id: counted once, ever")
    team_id: uuid.UUID
    type: Literal[
        "task.created", "task.completed", "llm.tokens.used", "api.calls", "storage.changed"
    ]
    # Strict: an integer, not false, 1.0 or "5" (the contract says integer).
    quantity: StrictInt = Field(
        ge=-MAX_QUANTITY,
        le=MAX_QUANTITY,
        description="Tasks (task.*), tokens, calls, or bytes added (negative: removed)",
    )
    time: IsoDateTime = Field(description="When it happened (RFC 3339; UTC if no offset)")

    @model_validator(mode="after")
    def _sign(self) -> UsageEventIn:
        if self.type != "storage.changed" and self.quantity < 0:
            raise ValueError(f"quantity of {self.type} must not be negative")
        return self


class IngestResult(BaseModel):
    accepted: int = Field(description="Events counted now")
    duplicates: int = Field(description="Events counted before (same id), ignored")
