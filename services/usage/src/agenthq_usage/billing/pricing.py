"""Invoice arithmetic, in integer minor units (no floats anywhere).

Proration: each UTC day of the month is billed at the plan in effect at the
end of that day (a change at 15:00 on the 10th bills the 10th at the new
plan); days before the team existed are not billed. A plan's monthly price
and included quantities count for its share of the month's days:
``price * days / days_in_month``, rounded half up for money, down for
included quantities. Overage (usage above the prorated included quantity,
summed over the plans of the month) is billed in started blocks of ``unit`` at
the unit price of the plan in effect on the month's last billed day.
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from agenthq_usage.plans.catalog import PlanCatalog

BILLED_METRICS = ("tasks_created", "llm_tokens_used", "api_calls")


@dataclass(frozen=True)
class Line:
    metric: str
    quantity: int
    included: int
    unit_price: int
    amount: int
    unit: int = 1  # unit_price is per block of this many

    def as_dict(self) -> dict[str, int | str]:
        return {
            "metric": self.metric,
            "quantity": self.quantity,
            "included": self.included,
            "unit": self.unit,
            "unit_price": self.unit_price,
            "amount": self.amount,
        }


def share(amount: int, days: int, days_in_month: int, *, round_half_up: bool) -> int:
    if round_half_up:
        return (2 * amount * days + days_in_month) // (2 * days_in_month)
    return amount * days // days_in_month


def plan_days(
    history: list[tuple[datetime, str]], year: int, month: int
) -> tuple[Counter[str], str | None]:
    """Days of the month per plan, and the plan of its last billed day."""
    days_in_month = calendar.monthrange(year, month)[1]
    days: Counter[str] = Counter()
    last_plan = None
    for day in range(1, days_in_month + 1):
        end_of_day = datetime.combine(date(year, month, day), time(), UTC) + timedelta(days=1)
        plan = None
        for effective_at, name in history:
            if effective_at < end_of_day:
                plan = name
        if plan is not None:
            days[plan] += 1
            last_plan = plan
    return days, last_plan


def invoice_lines(
    catalog: PlanCatalog,
    history: list[tuple[datetime, str]],
    usage: dict[str, int],
    year: int,
    month: int,
) -> list[Line]:
    days_in_month = calendar.monthrange(year, month)[1]
    days, last_plan = plan_days(history, year, month)
    if last_plan is None:
        return []
    lines = []
    included: Counter[str] = Counter()
    for plan_id, n in sorted(days.items()):
        plan = catalog.get(plan_id)
        lines.append(
            Line(
                metric=f"subscription:{plan.id}",
                quantity=n,
                included=days_in_month,
                unit_price=plan.monthly_price,
                amount=share(plan.monthly_price, n, days_in_month, round_half_up=True),
            )
        )
        for metric, terms in plan.metrics.items():
            included[metric] += share(terms.included, n, days_in_month, round_half_up=False)
    closing = catalog.get(last_plan)
    for metric in BILLED_METRICS:
        terms = closing.metrics.get(metric)
        if terms is None:
            continue
        used = max(usage.get(metric, 0), 0)
        over = max(used - included[metric], 0)
        blocks = -(-over // terms.unit)
        lines.append(
            Line(
                metric=metric,
                quantity=used,
                included=included[metric],
                unit_price=terms.unit_price,
                amount=blocks * terms.unit_price,
                unit=terms.unit,
            )
        )
    return lines
