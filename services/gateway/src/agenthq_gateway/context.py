"""What the gateway holds besides the common service parts."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import Request

from agenthq_gateway.edge.idempotency import IdempotencyStore
from agenthq_gateway.edge.ratelimit import RateLimiter
from agenthq_gateway.identity.service import LoginGuard
from agenthq_gateway.identity.tokens import TokenIssuer
from agenthq_gateway.keys import KeyStore
from agenthq_gateway.metering import ApiCallMeter
from agenthq_gateway.openapi import OpenAPIMerger
from agenthq_gateway.proxy import Upstreams
from agenthq_gateway.quotas import QuotaGuard


@dataclass
class GatewayContext:
    keys: KeyStore
    issuer: TokenIssuer
    login_guard: LoginGuard
    redis: aioredis.Redis  # what the limiter and the meter write to, in one pipeline
    upstreams: Upstreams
    openapi: OpenAPIMerger
    meter: ApiCallMeter
    quotas: QuotaGuard
    limiter: RateLimiter
    idempotency: IdempotencyStore
    cookie_secure: bool = False  # the console's session cookie, where TLS ends at a proxy


def get_gateway(request: Request) -> GatewayContext:
    return request.app.state.gateway  # type: ignore[no-any-return]
