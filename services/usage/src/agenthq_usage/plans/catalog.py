"""Plans, read from a versioned TOML file (``plans.toml`` beside this module,
or the file ``AGENTHQ_USAGE_PLANS_FILE`` names). Money is integer minor units."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Metric = Literal[
    "tasks_created", "tasks_completed", "llm_tokens_used", "api_calls", "storage_bytes"
]
METRICS: tuple[Metric, ...] = (
    "tasks_created",
    "tasks_completed",
    "llm_tokens_used",
    "api_calls",
    "storage_bytes",
)
DEFAULT_PLANS_FILE = Path(__file__).with_name("plans.toml")


class MetricTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    included: int = Field(ge=0, description="Quantity the monthly price covers")
    hard_limit: int | None = Field(
        default=None, ge=0, description="Usage above it is refused until the period ends"
    )
    unit: int = Field(default=1, ge=1, description="Overage is billed per block of this size")
    unit_price: int = Field(ge=0, description="Price of one block of overage (minor units)")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    monthly_price: int = Field(ge=0, description="Minor units of the currency")
    metrics: dict[Metric, MetricTerms]


class PlanCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    plans: dict[str, Plan]

    @model_validator(mode="before")
    @classmethod
    def _ids(cls, data: dict[str, object]) -> dict[str, object]:
        plans = data.get("plans")
        if isinstance(plans, dict):
            data["plans"] = {
                key: {"id": key, **value} if isinstance(value, dict) else value
                for key, value in plans.items()
            }
        return data

    @model_validator(mode="after")
    def _has_free(self) -> PlanCatalog:
        if "free" not in self.plans:
            raise ValueError("the catalogue must define the plan 'free' (the fallback)")
        return self

    def get(self, plan_id: str | None) -> Plan:
        """The plan of that id; an unknown plan is billed and limited as free."""
        return self.plans.get(plan_id or "free") or self.plans["free"]


def load_plans(path: Path | None = None) -> PlanCatalog:
    with (path or DEFAULT_PLANS_FILE).open("rb") as f:
        return PlanCatalog.model_validate(tomllib.load(f))
