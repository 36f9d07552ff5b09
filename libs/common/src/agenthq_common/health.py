"""``/healthz`` (alive), ``/readyz`` (dependencies reachable) and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[object]]

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks

    async def run(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), timeout=2.0)
        except Exception as exc:
            return f"down: {type(exc).__name__}"
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(run(checks[n]) for n in names))
    status = dict(zip(names, results, strict=True))
    ready = all(v == "ok" for v in results)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": status},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "5"},
    )


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
