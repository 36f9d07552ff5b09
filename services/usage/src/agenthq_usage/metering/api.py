from __future__ import annotations

import hmac
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, status

from agenthq_common.auth import bearer_token
from agenthq_common.authz import require
from agenthq_common.deps import Uow, get_service
from agenthq_common.errors import Forbidden, Unauthorized, Unprocessable
from agenthq_common.openapi import raises
from agenthq_common.schemas import IsoDate
from agenthq_usage.billing.service import Billing
from agenthq_usage.metering import service
from agenthq_usage.metering.repository import Metered
from agenthq_usage.metering.schemas import (
    DailyUsage,
    DailyUsagePage,
    IngestResult,
    MonthlyUsage,
    UsageEventIn,
)

router = APIRouter(tags=["usage"])
CanReadUsage = require("usage:read")

MAX_RANGE_DAYS = 366
MAX_INGEST_BATCH = 1000
# Producers' clocks drift; an event further ahead than this is a mistake.
MAX_CLOCK_SKEW = timedelta(hours=1)


@router.get(
    "/v1/teams/{team_id}/usage", response_model=DailyUsagePage, summary="Daily usage of a team"
)
async def daily_usage(
    member: CanReadUsage,
    uow: Uow,
    from_: Annotated[
        IsoDate | None, Query(alias="from", description="First day (UTC), default: 29 days ago")
    ] = None,
    to: Annotated[IsoDate | None, Query(description="Last day, inclusive (default: today)")] = None,
) -> DailyUsagePage:
    """One row per UTC day of the range, days without usage as zeros."""
    last = to or datetime.now(UTC).date()
    # Not before 0001-01-01 (a 500 once, for ?to=0001-01-10).
    default_span = timedelta(days=29)
    first = from_ or max(last, date.min + default_span) - default_span
    if first > last:
        raise Unprocessable.field("to", "must not be before from")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise Unprocessable.field("from", f"a range covers at most {MAX_RANGE_DAYS} days")
    days = await service.daily(uow, member.team_id, first, last)
    return DailyUsagePage(items=[DailyUsage.model_validate(d) for d in days])


@router.get(
    "/v1/teams/{team_id}/usage/monthly",
    response_model=MonthlyUsage,
    summary="Usage totals of a month",
)
async def monthly_usage(
    member: CanReadUsage,
    uow: Uow,
    year: Annotated[int | None, Query(ge=2000, le=9998)] = None,
    month: Annotated[int | None, Query(ge=1, le=12)] = None,
) -> MonthlyUsage:
    """The sums of the month's daily rows (default: the running month, UTC)."""
    today = datetime.now(UTC).date()
    year, month = year or today.year, month or today.month
    totals = await service.monthly(uow, member.team_id, year, month)
    return MonthlyUsage(year=year, month=month, **totals)


@raises(401, 403)
def require_service_credential(request: Request) -> None:
    """Producers authenticate with a credential from configuration; user
    tokens, however valid, are refused (403): users must not mint usage."""
    token = bearer_token(request)
    credentials = get_service(request).settings.ingest_credentials  # type: ignore[attr-defined]
    presented = token.encode()
    if any(hmac.compare_digest(presented, c.get_secret_value().encode()) for c in credentials):
        return
    if token.count(".") == 2:  # shaped like a JWT: a user's token
        raise Forbidden(
            "Usage events are accepted from AgentHQ services only, not with user tokens",
            code="service_credential_required",
        )
    raise Unauthorized("Unknown service credential", code="invalid_credential")


@router.post(
    "/v1/usage/events",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Report usage events (AgentHQ services that cannot publish to the bus)",
    # Before the body is read: a user token gets its 403 whatever it sent.
    dependencies=[Depends(require_service_credential)],
)
async def ingest_usage_events(
    request: Request,
    uow: Uow,
    events: Annotated[list[UsageEventIn], Body(min_length=1, max_length=MAX_INGEST_BATCH)],
) -> IngestResult:
    """Up to 1,000 events per request; an id seen before (here or on the bus) is
    reported as a duplicate and counted nothing."""
    horizon = datetime.now(UTC) + MAX_CLOCK_SKEW
    metered = []
    for i, event in enumerate(events):
        at = event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC)
        if at > horizon:
            raise Unprocessable.field(f"{i}.time", "is in the future", where="body")
        metered.append(
            Metered(
                event_id=event.id,
                team_id=event.team_id,
                user_id=None,
                metric=service.METERED_TYPES[event.type],
                quantity=event.quantity,
                occurred_at=at.astimezone(UTC),
                source="http",
            )
        )
    counted = await service.count(uow, metered)
    await get_service(request).component(Billing).after_counting(uow, counted)
    return IngestResult(accepted=len(counted), duplicates=len(events) - len(counted))
