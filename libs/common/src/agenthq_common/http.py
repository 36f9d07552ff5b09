"""HTTP plumbing every service shares: request ids, access logs, metrics,
and errors in the contract's shape (never a stack trace, never HTML)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthq_common.errors import DomainError, error_body
from agenthq_common.logging import get_logger
from agenthq_common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from agenthq_common.outages import is_outage

log = get_logger("agenthq.http")

REQUEST_ID_HEADER = "x-request-id"
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side; it has been logged."
UNAVAILABLE_MESSAGE = "A service this request needs is unavailable for a moment; retry shortly."
# A client's id is echoed only if it is a sane token; anything else is replaced.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class RequestContextMiddleware:
    """Gives every request an id (echoed if the client sent a valid one), binds
    it to the log context, and logs and measures the request once it is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message["headers"] = [
                    *[
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() != b"x-request-id"
                    ],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if scope["type"] == "http" and _has_nul(scope):
                    await send_error(
                        send_with_id,
                        422,
                        error_body(
                            "validation_error",
                            "NUL characters are not allowed in the path or query",
                            [{"field": "query", "in": "query", "message": "contains NUL"}],
                        ),
                    )
                    return
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # Logged here, with the request id, and answered in the contract's
                # shape; not re-raised, so the server does not log it a second time.
                code, body, headers = unexpected_error(exc, scope.get("path"))
                if scope["type"] != "http" or status != 500 or started_response:
                    raise
                await send_error(send_with_id, code, body, headers)
            finally:
                if scope["type"] == "http":
                    elapsed = time.perf_counter() - started
                    route = scope.get("route")
                    template = getattr(route, "path", "unmatched")
                    HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
                    HTTP_LATENCY.labels(scope["method"], template).observe(elapsed)
                    if template not in ("/healthz", "/readyz", "/metrics"):
                        log.info(
                            "request",
                            method=scope["method"],
                            path=scope["path"],
                            status=status,
                            ms=round(elapsed * 1000, 2),
                        )


def unexpected_error(
    exc: Exception, path: str | None
) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    """The answer to an exception no handler took (and its log line): 503 to
    retry when a dependency was unreachable, else 500 (never a traceback)."""
    if is_outage(exc):
        # Nothing wrong with the request: the same one will work shortly.
        log.warning("dependency unavailable", path=path, error=repr(exc))
        body = error_body("service_unavailable", UNAVAILABLE_MESSAGE)
        return 503, body, [(b"retry-after", b"5")]
    log.exception("unhandled error", path=path, exc_info=exc)
    return 500, error_body("internal_error", INTERNAL_ERROR_MESSAGE), []


def _has_nul(scope: Scope) -> bool:
    # PostgreSQL text cannot hold NUL: refuse it at the door rather than fail later.
    raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
    return b"%00" in raw.lower() or b"\x00" in raw or "\x00" in scope.get("path", "")


async def send_error(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """An error answer in the contract's shape, from ASGI middleware."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        details.append(
            {
                "field": ".".join(
                    loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
                ),
                "in": loc[0] if loc else None,
                "message": err.get("msg", "invalid"),
                "type": err.get("type"),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        fields = ", ".join(d["field"] or d["in"] or "body" for d in details)
        return JSONResponse(
            error_body("validation_error", f"Invalid request: {fields}", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        code, body, headers = unexpected_error(exc, request.url.path)
        plain = {name.decode(): value.decode() for name, value in headers}
        return JSONResponse(body, status_code=code, headers=plain)


def client_ip(request: Request) -> str | None:
    """The original client's address: the first hop the gateway wrote, else the peer."""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.client.host if request.client else None
