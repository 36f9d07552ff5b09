"""One OpenAPI document for the whole public API: the gateway's own routes
merged with every service's public routes (fetched from each service, so the
document cannot drift from the code that serves it)."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import aiohttp

from agenthq_common.logging import get_logger
from agenthq_common.openapi import DESCRIPTIONS
from agenthq_gateway.proxy import SERVICE_AUTHENTICATED, Upstreams

log = get_logger(__name__)


class OpenAPIMerger:
    def __init__(
        self, upstream_urls: dict[str, str], upstreams: Upstreams, *, ttl: float = 30.0
    ) -> None:
        self.upstream_urls = upstream_urls
        self.upstreams = upstreams
        self.ttl = ttl
        self._cached: dict[str, Any] | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()

    async def document(self, own: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if self._cached is None or time.monotonic() - self._cached_at > self.ttl:
                self._cached = await self._merge(own)
                self._cached_at = time.monotonic()
            return self._cached

    async def _fetch(self, service: str, base: str) -> dict[str, Any] | None:
        try:
            async with self.upstreams.session.get(
                f"{base.rstrip('/')}/openapi.json", timeout=aiohttp.ClientTimeout(total=3.0)
            ) as response:
                response.raise_for_status()
                return await response.json(content_type=None)  # type: ignore[no-any-return]
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("openapi of a service unavailable", service=service, error=repr(exc))
            return None

    async def _merge(self, own: dict[str, Any]) -> dict[str, Any]:
        docs = await asyncio.gather(*(self._fetch(s, u) for s, u in self.upstream_urls.items()))
        return merge(own, dict(zip(self.upstream_urls, docs, strict=True)))


def merge(own: dict[str, Any], services: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The gateway's own document with each service's public (``/v1/``)
    routes and schemas, and what the edge adds to every operation; a service
    whose document is None is named in ``info.x-missing-services``."""
    merged = copy.deepcopy(own)
    paths = merged.setdefault("paths", {})
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    missing = []
    for service, doc in services.items():
        if doc is None:
            missing.append(service)
            continue
        for path, item in doc.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in item.values():
                    if isinstance(operation, dict):
                        operation.setdefault("tags", [service])
                        operation["x-service"] = service
                paths.setdefault(path, {}).update(item)
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                log.warning("schema name clash in merged openapi", schema=name, service=service)
                continue
            schemas[name] = schema
    merged.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "serviceCredential": {"type": "http", "scheme": "bearer"},
    }
    for path, item in paths.items():
        for method, operation in item.items():
            if isinstance(operation, dict) and path.startswith("/v1/"):
                _document_edge(method.upper(), path, operation)
    if missing:
        merged["info"]["x-missing-services"] = missing
    return merged


def _error(status: int, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    if headers:
        response["headers"] = headers
    return response


# The gateway's own routes that take no token (API.md, conventions).
WITHOUT_TOKEN = {
    "/v1/auth/register",
    "/v1/auth/login",
    "/v1/auth/refresh",
    "/v1/auth/logout",
    "/v1/auth/console/login",
    "/v1/auth/console/refresh",
    "/v1/auth/console/logout",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
}


def _document_edge(method: str, path: str, operation: dict[str, Any]) -> None:
    """What the gateway itself may answer for an operation, before or instead
    of its service: the edge's limits, its rate limits, its upstream errors;
    and the credentials each operation takes."""
    responses = operation.setdefault("responses", {})
    edge = {"431": _error(431)}
    if "requestBody" in operation:
        edge["413"] = _error(413)
    if "x-service" in operation:  # proxied
        edge["502"] = _error(502)
        edge["503"] = _error(503, _RETRY_AFTER)
        edge["504"] = _error(504)
        if (method, path) in SERVICE_AUTHENTICATED:
            operation["security"] = [{"serviceCredential": []}]
        else:
            edge["401"] = _error(401)
            edge["429"] = _error(429, _RETRY_AFTER)
            operation["security"] = [{"bearer": []}]
    elif path not in WITHOUT_TOKEN:  # the gateway's own routes that take a token
        operation["security"] = [{"bearer": []}]
    for status, response in edge.items():
        responses.setdefault(status, response)
