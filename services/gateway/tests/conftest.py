"""Fixtures of the gateway's tests.

Gateways are served in process (``serve_in_process``) against the real
PostgreSQL, Redis and RabbitMQ, as seen from the client address
``198.51.100.7``; upstream services are played by a small echo app served by a
real uvicorn on a free port, so that the proxy's HTTP client really goes over
the network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agenthq_common.service import Service
from agenthq_common.testing.plugin import serve_in_process
from agenthq_common.testing.tokens import TestSigner
from agenthq_gateway.context import GatewayContext
from agenthq_gateway.main import build_app
from agenthq_gateway.settings import GatewaySettings

CLIENT_IP = "198.51.100.7"
CLIENT_ADDRESS = (CLIENT_IP, 4321)
SERVICES = ("team", "workspace", "activity", "usage", "realtime")
PASSWORD = "correct horse battery staple"
ISSUER = "agenthq-gateway"
AUDIENCE = "agenthq"


def free_port() -> int:
    """A TCP port nobody listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def b64url_json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT, unverified."""
    header, claims, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))),
    )


def claims_for(user_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": str(user_id),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        **overrides,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["code"])


@dataclass
class Gateway:
    """One running gateway and an HTTP client that calls it from ``CLIENT_ADDRESS``."""

    client: httpx.AsyncClient
    service: Service
    context: GatewayContext
    settings: GatewaySettings

    async def register(
        self,
        email: str | None = None,
        *,
        password: str = PASSWORD,
        name: str = "Test User",
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/auth/register",
            json={"email": email or unique_email(), "password": password, "name": name},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def signed_in_user(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new user and its tokens."""
        user = await self.register()
        return user, await self.login(user["email"])


def forged_tokens(gateway: Gateway, user_id: str, signer: TestSigner) -> dict[str, str]:
    """Every way a token can be wrong, for ``user_id``; each must get 401."""
    keys = gateway.context.keys
    kid = keys.jwks["keys"][0]["kid"]
    now = int(time.time())
    stranger = Ed25519PrivateKey.generate()
    public_x = keys.jwks["keys"][0]["x"]
    return {
        "garbage": "garbage",
        "three garbage parts": "aaa.bbb.ccc",
        "empty": "",
        "expired": keys.sign(claims_for(user_id, iat=now - 2000, exp=now - 60)),
        "alg none": f"{b64url_json({'alg': 'none', 'typ': 'JWT', 'kid': kid})}."
        f"{b64url_json(claims_for(user_id))}.",
        "alg None, capitalised": f"{b64url_json({'alg': 'None', 'kid': kid})}."
        f"{b64url_json(claims_for(user_id))}.",
        "HS256 keyed with the public key": jwt.encode(
            claims_for(user_id), public_x, algorithm="HS256", headers={"kid": kid}
        ),
        "another key, the gateway's kid": jwt.encode(
            claims_for(user_id), stranger, algorithm="EdDSA", headers={"kid": kid}
        ),
        "the test signer's key": signer.token(uuid.UUID(user_id)),
        "no kid": jwt.encode(claims_for(user_id), stranger, algorithm="EdDSA"),
        "wrong issuer": keys.sign(claims_for(user_id, iss="someone-else")),
        "wrong audience": keys.sign(claims_for(user_id, aud="other-audience")),
        "sub not a uuid": keys.sign(claims_for(user_id, sub="admin")),
        "no jti": keys.sign({k: v for k, v in claims_for(user_id).items() if k != "jti"}),
        "no exp": keys.sign({k: v for k, v in claims_for(user_id).items() if k != "exp"}),
        "tampered claims": tampered(keys.sign(claims_for(user_id)), user_id),
        "not yet valid": keys.sign(claims_for(user_id, nbf=now + 600, iat=now + 600)),
        "oversized": keys.sign(claims_for(user_id, padding="x" * 20_000)),
    }


def tampered(token: str, user_id: str) -> str:
    header, _, signature = token.split(".")
    other = claims_for(user_id, exp=int(time.time()) + 10 * 365 * 24 * 3600)
    return f"{header}.{b64url_json(other)}.{signature}"


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture(scope="session")
async def gateway_db(databases: Any) -> str:
    return str(await databases.fresh("gateway"))


@pytest.fixture(scope="session")
def start_gateway(settings_for: Callable[..., Any], gateway_db: str) -> GatewayFactory:
    """``async with start_gateway(**settings overrides) as gw``: a gateway of its own.

    Every upstream URL defaults to a port nobody listens on (never to the
    default ports, where a developer's services might be running)."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        values: dict[str, Any] = {f"{name}_url": dead_url() for name in SERVICES}
        values["database_url"] = gateway_db
        # Every test calls from one address: limits only where a test sets them.
        values["rate_limits"] = {}
        values["web_dist"] = None  # the console only where a test builds one
        values.update(overrides)
        settings = settings_for(GatewaySettings, **values)
        app = build_app(settings)
        service, context = app.state.service, app.state.gateway
        async with serve_in_process(service, app, client_address=CLIENT_ADDRESS) as client:
            yield Gateway(client, service, context, settings)

    return start


@pytest.fixture(scope="session")
async def gateway(start_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    """The gateway most tests share (every upstream down)."""
    async with start_gateway() as gw:
        yield gw


# --- an upstream service that answers with what it received ---------------------------------


@dataclass
class Echo:
    url: str
    seen: list[dict[str, Any]]

    def requests_with(self, marker: str) -> list[dict[str, Any]]:
        return [r for r in self.seen if marker in r["query"] or marker in r["raw_path"]]


CONFLICT_BODY = {
    "error": {"code": "already_member", "message": "Already a member", "details": {"n": 1}}
}
BIG_RESPONSE_BYTES = 3 * 1024 * 1024 + 17


def _openapi_of(service: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": service, "version": "1"},
        "paths": {
            f"/v1/{service}-probe": {
                "get": {"operationId": f"{service}_probe", "responses": {"200": {}}}
            },
            "/healthz": {"get": {"responses": {"200": {}}}},
        },
        "components": {"schemas": {f"{service.title()}Probe": {"type": "object"}}},
    }


def echo_app(seen: list[dict[str, Any]]) -> Starlette:
    async def handle(request: Request) -> Response:
        body = await request.body()
        record = {
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.scope["query_string"].decode("latin-1"),
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]
            ],
            "body_b64": base64.b64encode(body).decode(),
        }
        seen.append(record)
        path = request.url.path
        if path.endswith("/openapi.json"):
            return JSONResponse(_openapi_of(path.strip("/").split("/")[0]))
        if path.endswith("/notfound"):
            return JSONResponse(
                {"error": {"code": "team_not_found", "message": "Team not found"}}, status_code=404
            )
        if path.endswith("/conflict"):
            return JSONResponse(
                CONFLICT_BODY,
                status_code=409,
                headers={
                    "X-Upstream-Custom": "kept",
                    "Cache-Control": "no-store",
                    "X-Request-ID": "upstream-own-id",
                },
            )
        if path.endswith("/cookies"):
            response = Response(status_code=204)
            response.set_cookie("first", "1")
            response.set_cookie("second", "2")
            return response
        if path.endswith("/slow"):
            await asyncio.sleep(0.5)
            return JSONResponse(record, status_code=201)
        if path.endswith("/html-error"):
            return Response(
                "<html><body>Internal Server Error</body></html>", 500, media_type="text/html"
            )
        if path.endswith("/plain-error"):
            return Response("Invalid HTTP request received.", 400, media_type="text/plain")
        if path.endswith("/odd-json-error"):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if path.endswith("/big"):
            return Response(b"z" * BIG_RESPONSE_BYTES, media_type="application/octet-stream")
        return JSONResponse(record, headers={"X-Upstream-Custom": "echo"})

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


@pytest.fixture(scope="session")
async def echo() -> AsyncIterator[Echo]:
    seen: list[dict[str, Any]] = []
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            echo_app(seen), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    assert server.started, "the echo upstream did not start"
    try:
        yield Echo(f"http://127.0.0.1:{port}", seen)
    finally:
        server.should_exit = True
        await task


def echo_urls(echo: Echo) -> dict[str, str]:
    """Every service is the echo app, under a path prefix naming the service,
    so the path the echo saw tells which service a request was routed to."""
    return {f"{name}_url": f"{echo.url}/{name}" for name in SERVICES}


def marker() -> str:
    return f"m{uuid.uuid4().hex}"


def body_of(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record["body_b64"])


def only(records: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(records) == 1, records
    return records[0]


@contextlib.asynccontextmanager
async def silent_upstream() -> AsyncIterator[str]:
    """A TCP server that accepts connections, reads, and never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
