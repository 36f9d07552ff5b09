"""The shared HTTP plumbing: errors in the contract's shape, request ids, health
and metrics endpoints."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agenthq_common import health
from agenthq_common.errors import Conflict, NotFound, ServiceUnavailable, TooManyRequests
from agenthq_common.http import RequestContextMiddleware, install_error_handlers
from agenthq_common.schemas import Limit, StrictModel

SECRET_MARKER = "s3cret-internal-detail"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


class Thing(StrictModel):
    name: str
    count: int


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLOSED_PORT = closed_port()


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.state.readiness_checks = {}

    @app.post("/things")
    async def create_thing(thing: Thing) -> dict[str, Any]:
        return thing.model_dump()

    @app.get("/things")
    async def list_things(limit: Limit = 50) -> dict[str, Any]:
        return {"items": [], "limit": limit}

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("That name is taken", code="name_taken", details={"name": "x"})

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("No such team")

    @app.get("/limited")
    async def limited() -> None:
        raise TooManyRequests("Slow down", headers={"Retry-After": "7"})

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise ServiceUnavailable("Database down", retry_after=9)

    @app.get("/redis-down")
    async def redis_down() -> None:
        client = redis.asyncio.Redis(port=CLOSED_PORT, socket_connect_timeout=1)
        try:
            await client.ping()
        finally:
            await client.aclose()

    @app.get("/database-down")
    async def database_down() -> None:
        engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{CLOSED_PORT}/x")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"database password is {SECRET_MARKER}")

    @app.get("/request-id")
    async def request_id(request: Request) -> dict[str, str]:
        return {"request_id": request.state.request_id}

    return app


@pytest.fixture
def app() -> FastAPI:
    return build_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    return error


def details_by_field(error: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["field"]: d for d in error["details"]}


# --- errors -------------------------------------------------------------------------------


async def test_valid_body_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "  spaced  ", "count": 3})
    assert response.status_code == 200
    assert response.json() == {"name": "spaced", "count": 3}  # strings are trimmed


async def test_422_missing_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "x"})
    error = assert_error_shape(response, 422, "validation_error")
    fields = details_by_field(error)
    assert set(fields) == {"count"}
    assert fields["count"]["in"] == "body"
    assert fields["count"]["type"] == "missing"
    assert "count" in error["message"]


async def test_422_wrong_type(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "x", "count": "many"})
    error = assert_error_shape(response, 422, "validation_error")
    fields = details_by_field(error)
    assert set(fields) == {"count"}
    assert fields["count"]["type"] == "int_parsing"
    assert isinstance(fields["count"]["message"], str)


async def test_422_unknown_extra_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "x", "count": 1, "colour": "red"})
    error = assert_error_shape(response, 422, "validation_error")
    fields = details_by_field(error)
    assert set(fields) == {"colour"}
    assert fields["colour"]["type"] == "extra_forbidden"


async def test_422_names_every_bad_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"count": [1], "colour": "red", "size": 2})
    error = assert_error_shape(response, 422, "validation_error")
    fields = details_by_field(error)
    assert set(fields) == {"name", "count", "colour", "size"}
    for name in fields:
        assert name in error["message"]


async def test_422_body_not_an_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json=[1, 2])
    error = assert_error_shape(response, 422, "validation_error")
    assert error["details"]


async def test_malformed_json_is_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/things", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert_error_shape(response, response.status_code, response.json()["error"]["code"])


async def test_422_query_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/things", params={"limit": 0})
    error = assert_error_shape(response, 422, "validation_error")
    fields = details_by_field(error)
    assert fields["limit"]["in"] == "query"

    response = await client.get("/things", params={"limit": 201})
    assert_error_shape(response, 422, "validation_error")

    response = await client.get("/things", params={"limit": 200})
    assert response.status_code == 200


async def test_404_unknown_path(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/path")
    error = assert_error_shape(response, 404, "not_found")
    assert "<html" not in response.text.lower()
    assert "details" not in error


async def test_405_wrong_method(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things")
    assert_error_shape(response, 405, "method_not_allowed")
    assert response.headers["allow"]  # Starlette names the first matching route's methods


async def test_domain_error_status_and_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")
    error = assert_error_shape(response, 409, "name_taken")
    assert error == {
        "code": "name_taken",
        "message": "That name is taken",
        "details": {"name": "x"},
    }

    error = assert_error_shape(await client.get("/missing"), 404, "not_found")
    assert "details" not in error


async def test_domain_error_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/limited")
    assert_error_shape(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "7"

    response = await client.get("/unavailable")
    assert_error_shape(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "9"


async def test_500_internal_error_without_traceback(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    error = assert_error_shape(response, 500, "internal_error")
    assert "details" not in error
    for leak in (SECRET_MARKER, "Traceback", "RuntimeError", 'File "', "test_http.py"):
        assert leak not in response.text


@pytest.mark.parametrize("path", ["/redis-down", "/database-down"])
async def test_an_unreachable_dependency_is_a_503_to_retry_not_a_500(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    error = assert_error_shape(response, 503, "service_unavailable")
    assert "retry shortly" in error["message"]
    assert response.headers["retry-after"] == "5"
    assert "Traceback" not in response.text and str(CLOSED_PORT) not in response.text


async def test_500_still_carries_a_request_id(client: httpx.AsyncClient) -> None:
    """API.md: every response carries X-Request-ID, echoed when the client sent one.
    The 500 response is the one a client most needs the id for."""
    response = await client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "trace-500"


# --- request ids --------------------------------------------------------------------------


async def test_request_id_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/request-id")
    second = await client.get("/request-id")
    for response in (first, second):
        assert response.status_code == 200
        assert HEX_ID.match(response.headers["x-request-id"])
        # The id handed to the route is the one sent back.
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "given", ["abc-123", "req_1.2:3", "A" * 128, "0123456789abcdef0123456789abcdef"]
)
async def test_request_id_echoed_when_valid(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/request-id", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given
    assert response.json()["request_id"] == given


@pytest.mark.parametrize(
    "given",
    ["has spaces in it", "x" * 500, "A" * 129, "<script>", "a/b", "semi;colon", 'quote"d'],
)
async def test_request_id_replaced_when_invalid(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/request-id", headers={"X-Request-ID": given})
    returned = response.headers.get_list("x-request-id")
    assert len(returned) == 1
    assert returned[0] != given
    assert HEX_ID.match(returned[0])
    assert response.json()["request_id"] == returned[0]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/path", 404),
        ("DELETE", "/things", 405),
        ("POST", "/things", 422),
        ("GET", "/conflict", 409),
        ("GET", "/healthz", 200),
    ],
)
async def test_request_id_on_error_responses(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, json={}, headers={"X-Request-ID": "client-id-1"})
    assert response.status_code == status
    assert response.headers.get_list("x-request-id") == ["client-id-1"]


async def test_route_header_named_x_request_id_is_not_duplicated(app: FastAPI) -> None:
    from fastapi.responses import JSONResponse

    @app.get("/own-id")
    async def own_id() -> JSONResponse:
        return JSONResponse({}, headers={"X-Request-ID": "from-the-route"})

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/own-id", headers={"X-Request-ID": "from-client"})
    assert response.headers.get_list("x-request-id") == ["from-client"]


# --- health and metrics -------------------------------------------------------------------


async def passing_check() -> None:
    await asyncio.sleep(0)


async def failing_check() -> None:
    raise ConnectionError("redis is down")


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_not_ready_names_the_failing_check(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.readiness_checks = {"database": passing_check, "redis": failing_check}
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"
    assert "ConnectionError" in body["checks"]["redis"]
    # The exception's message (which may hold a URL with credentials) is not exposed.
    assert "redis is down" not in response.text
    # Liveness does not depend on the dependencies.
    assert (await client.get("/healthz")).status_code == 200


async def test_readyz_ready_when_all_pass(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.readiness_checks = {"database": passing_check, "broker": passing_check}
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert "retry-after" not in response.headers
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_readyz_checks_run_concurrently(app: FastAPI, client: httpx.AsyncClient) -> None:
    started: list[str] = []
    gate = asyncio.Event()

    def waiting(name: str) -> Any:
        async def check() -> None:
            started.append(name)
            if len(started) == 3:
                gate.set()
            await asyncio.wait_for(gate.wait(), timeout=1.0)

        return check

    app.state.readiness_checks = {n: waiting(n) for n in ("a", "b", "c")}
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text


async def test_metrics_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.post("/things", json={"name": "x", "count": 1})
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# HELP agenthq_http_requests_total" in text
    assert "# TYPE agenthq_http_requests_total counter" in text
    assert re.search(
        r'agenthq_http_requests_total\{[^}]*method="POST"[^}]*route="/things"[^}]*status="200"',
        text,
    )
    # Unknown paths are counted under one label, not one series per path.
    assert 'route="/no/such/path"' not in text
    assert "agenthq_http_request_seconds_bucket" in text
