"""The gateway: identity (users, tokens, keys), authentication at the edge,
routing of the public API to the services, and the merged API document."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from agenthq_common.auth import StaticKeys
from agenthq_common.logging import get_logger
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_gateway.context import GatewayContext
from agenthq_gateway.docs import router as docs_router
from agenthq_gateway.edge.guards import EdgeGuard
from agenthq_gateway.edge.idempotency import IdempotencyStore
from agenthq_gateway.edge.ratelimit import RateLimiter
from agenthq_gateway.identity.api import auth_router
from agenthq_gateway.identity.api import router as identity_router
from agenthq_gateway.identity.console import router as console_router
from agenthq_gateway.identity.service import LoginGuard
from agenthq_gateway.identity.tokens import TokenIssuer
from agenthq_gateway.keys import KeyStore
from agenthq_gateway.metering import ApiCallMeter
from agenthq_gateway.openapi import OpenAPIMerger
from agenthq_gateway.proxy import Upstreams
from agenthq_gateway.proxy import router as proxy_router
from agenthq_gateway.quotas import QuotaGuard, register_quota_handlers
from agenthq_gateway.settings import GatewaySettings
from agenthq_gateway.web import mount_console

log = get_logger(__name__)
KEY_RELOAD_SECONDS = 60.0
# What a browser script on an allowed origin may read of an answer.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "Idempotent-Replayed",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]


def bootstrap(settings: GatewaySettings) -> tuple[Service, GatewayContext]:
    verifier_keys = StaticKeys({"keys": []})
    service = Service(
        settings,
        title="AgentHQ gateway",
        key_source=verifier_keys,
        description="Identity, authentication and routing.",
        openapi_url=None,
    )
    keys = KeyStore(service.db, verifier_keys)
    urls = {
        "team": settings.team_url,
        "workspace": settings.workspace_url,
        "activity": settings.activity_url,
        "usage": settings.usage_url,
        "realtime": settings.realtime_url,
    }
    upstreams = Upstreams.create(
        urls,
        timeouts={
            "reads": settings.upstream_timeout_reads_seconds,
            "writes": settings.upstream_timeout_writes_seconds,
        },
        connect_timeout=settings.upstream_connect_timeout_seconds,
        trusted_proxies=settings.trusted_proxies,
    )
    context = GatewayContext(
        keys=keys,
        issuer=TokenIssuer(
            keys,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.access_token_ttl_seconds,
            settings.refresh_token_ttl_seconds,
        ),
        login_guard=LoginGuard(
            service.redis,
            max_failures=settings.login_max_failures,
            window=settings.login_failure_window_seconds,
            account_max_failures=settings.login_account_max_failures,
            account_window=settings.login_account_window_seconds,
            prefix=settings.bus_namespace,
        ),
        redis=service.redis,
        upstreams=upstreams,
        openapi=OpenAPIMerger(urls, upstreams),
        meter=ApiCallMeter(service.redis, service.db, prefix=settings.bus_namespace),
        quotas=QuotaGuard(service.db),
        limiter=RateLimiter(
            service.redis, prefix=settings.bus_namespace, limits=settings.rate_limits
        ),
        idempotency=IdempotencyStore(
            service.redis,
            prefix=settings.bus_namespace,
            ttl_seconds=settings.idempotency_ttl_seconds,
            # A claim outlives the slowest write, then frees the key of a
            # gateway that died mid-request.
            claim_seconds=int(settings.upstream_timeout_writes_seconds) + 30,
        ),
        cookie_secure=settings.console_cookie_secure,
    )
    if settings.cors_origins:
        service.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    service.add_middleware(
        EdgeGuard,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
    )

    async def reload_keys_forever() -> None:
        # Another replica may have rotated the keys: pick them up.
        while True:
            await asyncio.sleep(KEY_RELOAD_SECONDS)
            try:
                await keys.load()
            except Exception as exc:
                log.warning("signing key reload failed", error=repr(exc))

    service.on_startup(keys.load)
    service.on_shutdown(upstreams.aclose)
    service.run_in_background(reload_keys_forever)
    register_membership_handlers(service.consumer("gateway.membership"))
    register_quota_handlers(service.consumer("gateway.quotas"))

    async def flush_api_calls() -> None:
        await context.meter.flush_forever(settings.api_calls_flush_interval)

    service.run_in_background(flush_api_calls)
    service.include_router(docs_router)
    service.include_router(identity_router)
    service.include_router(auth_router)
    service.include_router(console_router)
    service.include_router(proxy_router)  # last: it catches every other /v1 path
    return service, context


def build_app(settings: GatewaySettings) -> FastAPI:
    service, context = bootstrap(settings)
    app = service.create_app()
    app.state.gateway = context
    mount_console(app, settings.web_dist, settings.realtime_public_url)
    return app


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return build_app(GatewaySettings())
