"""Plans over time, quotas and invoices."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agenthq_common.db import Database, UnitOfWork, driver_connection
from agenthq_common.events import Actor, registry
from agenthq_common.logging import get_logger
from agenthq_usage.billing.pricing import invoice_lines
from agenthq_usage.billing.repository import BillingRepository
from agenthq_usage.metering.repository import UsageRepository
from agenthq_usage.metering.service import month_bounds
from agenthq_usage.plans.catalog import Plan, PlanCatalog

log = get_logger(__name__)
SOURCE = "agenthq/usage"


def period_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def parse_period(period: str) -> tuple[int, int]:
    year, month = period.split("-")
    return int(year), int(month)


def period_end(year: int, month: int) -> datetime:
    _, end = month_bounds(year, month)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)


@dataclass(frozen=True)
class Quota:
    metric: str
    limit: int
    hard: bool
    used: int
    remaining: int
    period: str


@dataclass(frozen=True)
class Invoice:
    team_id: uuid.UUID
    period: str
    status: str
    currency: str
    lines: list[dict[str, Any]]
    total: int


class Billing:
    def __init__(self, catalog: PlanCatalog) -> None:
        self.catalog = catalog

    async def record_plan(
        self, uow: UnitOfWork, team_id: uuid.UUID, plan: str, at: datetime
    ) -> None:
        repo = BillingRepository(await driver_connection(uow.session))
        await repo.record_plan(team_id, plan, at)

    async def current_plan(self, uow: UnitOfWork, team_id: uuid.UUID) -> Plan:
        history = await BillingRepository(await driver_connection(uow.session)).plan_history(
            team_id
        )
        return self.catalog.get(history[-1][1] if history else None)

    async def quotas(
        self, uow: UnitOfWork, team_id: uuid.UUID, now: datetime | None = None
    ) -> list[Quota]:
        now = now or datetime.now(UTC)
        plan = await self.current_plan(uow, team_id)
        first, end = month_bounds(now.year, now.month)
        used = await UsageRepository(await driver_connection(uow.session)).totals(
            team_id, first, end
        )
        quotas = []
        for metric, terms in plan.metrics.items():
            limit = terms.hard_limit if terms.hard_limit is not None else terms.included
            quotas.append(
                Quota(
                    metric=metric,
                    limit=limit,
                    hard=terms.hard_limit is not None,
                    used=used[metric],
                    remaining=max(limit - used[metric], 0),
                    period=period_of(now),
                )
            )
        return quotas

    async def after_counting(self, uow: UnitOfWork, counted: Sequence[Any]) -> None:
        """Check the quotas the newly counted events touched (rows of
        ``UsageRepository.count``). Quotas are about the running month: late
        events of past months are counted, but cannot block anything any more."""
        now = datetime.now(UTC)
        touched = [
            (row["team_id"], row["metric"])
            for row in counted
            if row["team_id"] is not None
            and (row["occurred_at"].year, row["occurred_at"].month) == (now.year, now.month)
        ]
        if touched:
            await self.check_quotas(uow, touched, now)

    async def check_quotas(
        self, uow: UnitOfWork, touched: Sequence[tuple[uuid.UUID, str]], now: datetime | None = None
    ) -> None:
        """After counting: publish usage.quota_exceeded the first time a team
        reaches a hard limit of the running period.

        Two queries per batch whatever its size (the teams' plans, then the
        month's totals of the teams that have a hard limit on what they used),
        so a batch of many teams costs no more than one of a few."""
        now = now or datetime.now(UTC)
        conn = await driver_connection(uow.session)
        repo = BillingRepository(conn)
        metrics_of: dict[uuid.UUID, set[str]] = {}
        for team_id, metric in touched:
            metrics_of.setdefault(team_id, set()).add(metric)
        plans = await repo.current_plans(sorted(metrics_of))
        limited = {
            team_id: {
                m: terms.hard_limit
                for m, terms in self.catalog.get(plans.get(team_id)).metrics.items()
                if terms.hard_limit is not None and m in metrics
            }
            for team_id, metrics in metrics_of.items()
        }
        limited = {t: limits for t, limits in limited.items() if limits}
        if not limited:
            return
        first, end = month_bounds(now.year, now.month)
        totals = await UsageRepository(conn).totals_of_teams(sorted(limited), first, end)
        period = period_of(now)
        for team_id in sorted(limited):
            for metric, limit in sorted(limited[team_id].items()):
                used = totals.get(team_id, {}).get(metric, 0)
                if used < limit:
                    continue
                if await repo.record_breach(team_id, metric, period, limit, used, now):
                    log.info("quota reached", team_id=str(team_id), metric=metric, used=used)
                    uow.publish(
                        registry.create(
                            "usage.quota_exceeded",
                            {
                                "team_id": team_id,
                                "metric": metric,
                                "limit": limit,
                                "used": used,
                                "period": period,
                            },
                            source=SOURCE,
                            actor=Actor.system(),
                            subject=f"team/{team_id}",
                            team_id=team_id,
                        )
                    )

    async def compute(
        self, uow: UnitOfWork, team_id: uuid.UUID, year: int, month: int, status: str
    ) -> Invoice | None:
        """The invoice of a period from the counters (None: the team did not exist)."""
        conn = await driver_connection(uow.session)
        history = await BillingRepository(conn).plan_history(team_id)
        first, end = month_bounds(year, month)
        usage = await UsageRepository(conn).totals(team_id, first, end)
        lines = invoice_lines(self.catalog, history, usage, year, month)
        if not lines:
            return None
        return Invoice(
            team_id=team_id,
            period=f"{year:04d}-{month:02d}",
            status=status,
            currency=self.catalog.currency,
            lines=[line.as_dict() for line in lines],
            total=sum(line.amount for line in lines),
        )

    async def invoice(
        self, uow: UnitOfWork, team_id: uuid.UUID, period: str, now: datetime | None = None
    ) -> Invoice | None:
        """Final if finalized; otherwise a draft recomputed now (None: no such invoice)."""
        now = now or datetime.now(UTC)
        year, month = parse_period(period)
        if (year, month) > (now.year, now.month):
            return None
        final = await BillingRepository(await driver_connection(uow.session)).finalized(
            team_id, period
        )
        if final:
            return _stored(final[0])
        return await self.compute(uow, team_id, year, month, "draft")

    async def invoices(
        self, uow: UnitOfWork, team_id: uuid.UUID, now: datetime | None = None
    ) -> list[Invoice]:
        """The running month's draft, then every final invoice, newest first."""
        now = now or datetime.now(UTC)
        found = [
            _stored(r)
            for r in await BillingRepository(await driver_connection(uow.session)).finalized(
                team_id
            )
        ]
        draft = await self.compute(uow, team_id, now.year, now.month, "draft")
        return ([draft] if draft else []) + found


def _stored(row: Any) -> Invoice:
    return Invoice(
        team_id=row["team_id"],
        period=row["period"],
        status="final",
        currency=row["currency"],
        # SQLAlchemy's pool gives asyncpg connections that decode JSONB already.
        lines=json.loads(row["lines"]) if isinstance(row["lines"], str) else row["lines"],
        total=row["total"],
    )


async def finalize_period(
    db: Database, billing: Billing, year: int, month: int, now: datetime | None = None
) -> int:
    """Finalize every team's invoice of a closed period; idempotent (returns how
    many were finalized now). Each invoice commits on its own with its event."""
    now = now or datetime.now(UTC)
    if (year, month) >= (now.year, now.month):
        raise ValueError("only a closed period can be finalized")
    period = f"{year:04d}-{month:02d}"
    async with db.unit_of_work() as uow:
        teams = await BillingRepository(await driver_connection(uow.session)).teams_to_finalize(
            period_end(year, month), period
        )
    finalized = 0
    for team_id in teams:
        async with db.unit_of_work() as uow:
            invoice = await billing.compute(uow, team_id, year, month, "final")
            if invoice is None:
                continue
            repo = BillingRepository(await driver_connection(uow.session))
            if not await repo.insert_invoice(
                team_id,
                period,
                invoice.currency,
                invoice.lines,
                invoice.total,
                billing.catalog.version,
                now,
            ):
                continue
            uow.publish(
                registry.create(
                    "invoice.finalized",
                    {
                        "team_id": team_id,
                        "period": period,
                        "total": invoice.total,
                        "currency": invoice.currency,
                    },
                    source=SOURCE,
                    actor=Actor.system(),
                    subject=f"team/{team_id}",
                    team_id=team_id,
                )
            )
            finalized += 1
    if finalized:
        log.info("invoices finalized", period=period, count=finalized)
    return finalized


async def finalize_periodically(db: Database, billing: Billing, interval: float) -> None:
    """Finalize the last two closed months (the second catches a month end
    the service was down for); a no-op for teams already invoiced."""
    while True:
        now = datetime.now(UTC)
        previous = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
        before = (previous[0], previous[1] - 1) if previous[1] > 1 else (previous[0] - 1, 12)
        for year, month in (before, previous):
            try:
                await finalize_period(db, billing, year, month, now)
            except Exception as exc:  # the next run tries again
                log.error("invoice finalization failed", period=f"{year}-{month}", error=repr(exc))
        await asyncio.sleep(interval)
