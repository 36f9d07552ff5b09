from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field


class MetricTermsOut(BaseModel):
    metric: str
    included: int
    hard_limit: int | None
    unit: int
    unit_price: int = Field(description="Per block of `unit`, in minor units")


class PlanOut(BaseModel):
    id: str
    name: str
    currency: str
    monthly_price: int = Field(description="Minor units (cents)")
    metrics: list[MetricTermsOut]


class PlansPage(BaseModel):
    items: list[PlanOut]
    next_cursor: None = None
    version: int = Field(description="Version of the plans catalogue")


class QuotaOut(BaseModel):
    metric: str
    limit: int = Field(description="The hard limit, or the included quantity when not hard")
    hard: bool = Field(description="Usage stops at a hard limit; above a soft one it is billed")
    used: int
    remaining: int
    period: str = Field(description="YYYY-MM (UTC)")


class QuotasPage(BaseModel):
    items: list[QuotaOut]
    next_cursor: None = None


class InvoiceLineOut(BaseModel):
    metric: str = Field(description="A metric, or subscription:<plan> for a plan's share")
    quantity: int
    included: int
    unit: int = Field(description="unit_price is per block of this many")
    unit_price: int
    amount: int


class InvoiceOut(BaseModel):
    team_id: uuid.UUID
    period: str
    status: Literal["draft", "final"]
    currency: str
    lines: list[InvoiceLineOut]
    total: int


class InvoicesPage(BaseModel):
    items: list[InvoiceOut]
    next_cursor: None = None
