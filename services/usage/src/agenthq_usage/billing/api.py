from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from agenthq_common.authz import require
from agenthq_common.deps import Uow, User, get_service
from agenthq_common.errors import NotFound
from agenthq_usage.billing.schemas import (
    InvoiceOut,
    InvoicesPage,
    MetricTermsOut,
    PlanOut,
    PlansPage,
    QuotaOut,
    QuotasPage,
)
from agenthq_usage.billing.service import Billing

router = APIRouter(tags=["billing"])
# YYYY-MM from 0001-01 to 9999-12: there is no year 0 in a calendar (a 500 once).
PERIOD_PATTERN = r"^([1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(0[1-9]|1[0-2])$"
CanReadUsage = require("usage:read")
CanReadBilling = require("billing:read")


def billing(request: Request) -> Billing:
    return get_service(request).component(Billing)


BillingDep = Annotated[Billing, Depends(billing)]


@router.get("/v1/plans", response_model=PlansPage, summary="Plans and their prices")
async def list_plans(_: User, billing: BillingDep) -> PlansPage:
    catalog = billing.catalog
    return PlansPage(
        version=catalog.version,
        items=[
            PlanOut(
                id=plan.id,
                name=plan.name,
                currency=catalog.currency,
                monthly_price=plan.monthly_price,
                metrics=[
                    MetricTermsOut(metric=metric, **terms.model_dump())
                    for metric, terms in plan.metrics.items()
                ],
            )
            for plan in catalog.plans.values()
        ],
    )


@router.get("/v1/teams/{team_id}/quotas", response_model=QuotasPage, summary="Quotas of a team")
async def list_quotas(member: CanReadUsage, uow: Uow, billing: BillingDep) -> QuotasPage:
    quotas = await billing.quotas(uow, member.team_id)
    return QuotasPage(items=[QuotaOut(**asdict(q)) for q in quotas])


@router.get("/v1/teams/{team_id}/invoices", response_model=InvoicesPage, summary="Invoices")
async def list_invoices(member: CanReadBilling, uow: Uow, billing: BillingDep) -> InvoicesPage:
    """The running month's draft first, then the final invoices, newest first."""
    found = await billing.invoices(uow, member.team_id)
    return InvoicesPage(items=[InvoiceOut.model_validate(asdict(i)) for i in found])


@router.get(
    "/v1/teams/{team_id}/invoices/{period}", response_model=InvoiceOut, summary="One invoice"
)
async def get_invoice(
    member: CanReadBilling,
    uow: Uow,
    billing: BillingDep,
    period: Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM")],
) -> InvoiceOut:
    invoice = await billing.invoice(uow, member.team_id, period)
    if invoice is None:
        raise NotFound(f"No invoice for {period}", code="invoice_not_found")
    return InvoiceOut.model_validate(asdict(invoice))
