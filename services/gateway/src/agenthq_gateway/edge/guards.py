"""What every request and response meets at the edge, before any route: size
limits on headers and body, and the security headers every answer carries.

Requests over a limit are answered here in the contract's shape (``431``,
``413``) and never reach a route or a service. A body is counted as it
arrives, so a chunked upload without ``Content-Length`` is cut off as soon as
it passes the limit, not after it has been buffered.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthq_common.errors import error_body
from agenthq_common.http import send_error

# API answers are data: nothing in them may run, be framed or be sniffed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI (at /docs) loads its script and style from jsDelivr and starts
# with an inline script.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
# Set by the gateway whatever the upstream said; the others only if absent.
_OVERRIDDEN = {b"server", b"x-powered-by"}


class EdgeGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int,
        docs_paths: Sequence[str] = ("/docs",),
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_headers = max_header_bytes
        self.docs_paths = set(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"] in self.docs_paths else API_POLICY
        secure_send = _with_security_headers(send, policy.encode())
        headers = scope["headers"]
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.max_headers:
            await send_error(
                secure_send,
                431,
                error_body(
                    "request_header_fields_too_large",
                    f"Request headers are limited to {self.max_headers} bytes",
                ),
            )
            return
        declared = _content_length(headers)
        if declared == -1:
            await send_error(
                secure_send, 400, error_body("bad_request", "Content-Length is not a number")
            )
            return
        if declared is not None and declared > self.max_body:
            await self._too_large(secure_send)
            return

        received = 0
        overflowed = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    overflowed = True
                    # The route stops reading as if the client had gone; the
                    # 413 is sent below, instead of whatever the route answers.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflowed and not started:
                return
            started = started or message["type"] == "http.response.start"
            await secure_send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not overflowed or started:
                raise  # not ours: the request context logs it and answers 500
        if overflowed and not started:
            await self._too_large(secure_send)

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send,
            413,
            error_body("payload_too_large", f"Request bodies are limited to {self.max_body} bytes"),
            headers=[(b"connection", b"close")],
        )


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The declared length, None if not declared, -1 if unreadable."""
    for key, value in headers:
        if key == b"content-length":
            return int(value) if value.strip().isdigit() else -1
    return None


def _with_security_headers(send: Send, policy: bytes) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() not in _OVERRIDDEN
            ]
            present = {k.lower() for k, _ in headers}
            for key, value in SECURITY_HEADERS:
                if key not in present:
                    headers.append((key, value))
            if b"content-security-policy" not in present:
                headers.append((b"content-security-policy", policy))
            if b"cache-control" not in present:
                # Answers hold one caller's data: no shared cache may keep them.
                headers.append((b"cache-control", b"no-store"))
            message["headers"] = headers
        await send(message)

    return secured
