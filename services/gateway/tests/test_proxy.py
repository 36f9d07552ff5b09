"""The gateway as the edge of the public API: authentication before routing,
routing to the owning service, faithful forwarding in both directions, the
failures of upstreams, and the merged OpenAPI document."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import pytest

from agenthq_common.testing.tokens import TestSigner

from .conftest import (
    BIG_RESPONSE_BYTES,
    CLIENT_IP,
    CONFLICT_BODY,
    SERVICES,
    Echo,
    Gateway,
    GatewayFactory,
    bearer,
    body_of,
    claims_for,
    echo_urls,
    error_code,
    marker,
    only,
    silent_upstream,
)


@pytest.fixture(scope="module")
async def edge(start_gateway: GatewayFactory, echo: Echo) -> AsyncIterator[Gateway]:
    async with start_gateway(**echo_urls(echo)) as gw:
        yield gw


@pytest.fixture(scope="module")
async def token(edge: Gateway) -> str:
    _, tokens = await edge.signed_in_user()
    return str(tokens["access_token"])


def headers_of(record: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


# --- authentication at the edge ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/teams"),
        ("POST", "/v1/teams"),
        ("GET", "/v1/teams/{team}/workspaces"),
        ("DELETE", "/v1/teams/{team}"),
        ("GET", "/v1/teams/{team}/activity"),
        ("GET", "/v1/plans"),
        ("GET", "/v1/teams/{team}/presence"),
    ],
)
async def test_unauthenticated_requests_never_reach_a_service(
    edge: Gateway, echo: Echo, method: str, path: str
) -> None:
    m = marker()
    response = await edge.client.request(
        method, path.format(team=uuid.uuid4()), params={"marker": m}, json={"name": "x"}
    )
    assert response.status_code == 401, response.text
    assert error_code(response) == "unauthorized"
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert response.headers.get("x-request-id")
    assert echo.requests_with(m) == []


async def test_other_methods_of_a_service_authenticated_route_are_405_at_the_edge(
    edge: Gateway, echo: Echo, token: str
) -> None:
    m = marker()
    for method in ("GET", "PUT", "DELETE"):
        response = await edge.client.request(
            method, "/v1/usage/events", params={"m": m}, headers=bearer(token)
        )
        assert response.status_code == 405, response.text
        assert error_code(response) == "method_not_allowed"
        assert response.headers["allow"] == "POST"
    assert echo.requests_with(m) == []


async def test_bad_tokens_never_reach_a_service(
    edge: Gateway, echo: Echo, signer: TestSigner
) -> None:
    user_id = uuid.uuid4()
    now = int(time.time())
    keys = edge.context.keys
    for bad in (
        "garbage",
        signer.token(user_id),  # a key the gateway does not know
        keys.sign(claims_for(user_id, iat=now - 2000, exp=now - 10)),  # expired
        keys.sign(claims_for(user_id, aud="elsewhere")),
    ):
        m = marker()
        response = await edge.client.get("/v1/teams", params={"m": m}, headers=bearer(bad))
        assert response.status_code == 401, response.text
        assert echo.requests_with(m) == []


async def test_unknown_v1_path_is_404_route_not_found(
    edge: Gateway, echo: Echo, token: str
) -> None:
    for method, path in (
        ("GET", "/v1/nothing-here"),
        ("GET", "/v1/teamsx"),
        ("POST", "/v1/admin/users"),
        ("GET", "/v1/auth/whoami"),
        ("DELETE", "/v1/workspaces/123"),
    ):
        m = marker()
        response = await edge.client.request(method, path, params={"m": m}, headers=bearer(token))
        assert response.status_code == 404, (path, response.text)
        assert error_code(response) == "route_not_found"
        assert echo.requests_with(m) == []


# --- routing -------------------------------------------------------------------------------

TEAM = "0b6f4c9e-27c5-4a39-9e0c-6a4f9d3c1a11"
WS = "5d0a1e57-2f0b-4a8e-b6a4-4a2f6b1c9e22"


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("GET", "/v1/teams", "team"),
        ("POST", "/v1/teams", "team"),
        ("GET", f"/v1/teams/{TEAM}", "team"),
        ("PATCH", f"/v1/teams/{TEAM}", "team"),
        ("GET", f"/v1/teams/{TEAM}/members", "team"),
        ("PUT", f"/v1/teams/{TEAM}/plan", "team"),
        ("GET", f"/v1/teams/{TEAM}/roles", "team"),
        ("POST", "/v1/invitations/accept", "team"),
        ("GET", "/v1/permissions", "team"),
        ("GET", f"/v1/teams/{TEAM}/workspaces", "workspace"),
        ("DELETE", f"/v1/teams/{TEAM}/workspaces/{WS}", "workspace"),
        ("GET", f"/v1/teams/{TEAM}/activity", "activity"),
        ("GET", f"/v1/teams/{TEAM}/activity/export", "activity"),
        ("GET", f"/v1/teams/{TEAM}/usage/monthly", "usage"),
        ("GET", f"/v1/teams/{TEAM}/quotas", "usage"),
        ("GET", f"/v1/teams/{TEAM}/invoices/2026-11", "usage"),
        ("GET", "/v1/plans", "usage"),
        ("GET", f"/v1/teams/{TEAM}/presence", "realtime"),
    ],
)
async def test_each_path_goes_to_the_service_that_owns_it(
    edge: Gateway, echo: Echo, token: str, method: str, path: str, service: str
) -> None:
    m = marker()
    response = await edge.client.request(method, path, params={"m": m}, headers=bearer(token))
    assert response.status_code == 200, response.text
    seen = only(echo.requests_with(m))
    assert seen["method"] == method
    assert seen["path"] == f"/{service}{path}"


async def test_usage_events_are_authenticated_by_the_usage_service(
    edge: Gateway, echo: Echo
) -> None:
    """POST /v1/usage/events carries a service credential, not a user token: the
    gateway passes it on for the usage service to judge."""
    m = marker()
    events = [{"id": str(uuid.uuid4()), "team_id": TEAM, "type": "api.calls", "quantity": 1}]
    response = await edge.client.post(
        "/v1/usage/events",
        params={"m": m},
        json=events,
        headers={"Authorization": "Service producer-credential"},
    )
    assert response.status_code == 200, response.text
    seen = only(echo.requests_with(m))
    assert seen["path"] == "/usage/v1/usage/events"
    assert headers_of(seen, "authorization") == ["Service producer-credential"]
    assert json.loads(body_of(seen)) == events


# --- forwarding ----------------------------------------------------------------------------


async def test_a_request_without_trace_context_starts_a_trace(
    edge: Gateway, echo: Echo, token: str
) -> None:
    m = marker()
    response = await edge.client.get(
        f"/v1/teams/{TEAM}/members", params={"m": m}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    [traceparent] = headers_of(only(echo.requests_with(m)), "traceparent")
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", traceparent)
    assert int(traceparent[-2:], 16) & 1  # sampled: the services record their spans
    assert traceparent.split("-")[1] != "0" * 32


async def test_forwarded_request_headers(edge: Gateway, echo: Echo, token: str) -> None:
    m = marker()
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    response = await edge.client.get(
        f"/v1/teams/{TEAM}/members",
        params={"m": m},
        headers={
            **bearer(token),
            "User-Agent": "agenthq-cli/2.3",
            "traceparent": traceparent,
            "tracestate": "vendor=1",
            "X-Request-ID": "req-abc.123",
            "Accept-Language": "fr-CH",
            "X-Custom-Thing": "kept as is",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-abc.123"
    seen = only(echo.requests_with(m))
    assert headers_of(seen, "authorization") == [f"Bearer {token}"]
    assert headers_of(seen, "user-agent") == ["agenthq-cli/2.3"]
    # The trace goes on, its parent now the gateway's own span; the vendor state travels.
    [forwarded_trace] = headers_of(seen, "traceparent")
    version, trace_id, parent_id, flags = forwarded_trace.split("-")
    assert (version, trace_id, flags) == ("00", traceparent.split("-")[1], "01")
    assert parent_id != traceparent.split("-")[2]
    assert headers_of(seen, "tracestate") == ["vendor=1"]
    assert headers_of(seen, "x-request-id") == ["req-abc.123"]
    assert headers_of(seen, "accept-language") == ["fr-CH"]
    assert headers_of(seen, "x-custom-thing") == ["kept as is"]
    assert headers_of(seen, "x-forwarded-for") == [CLIENT_IP]
    assert headers_of(seen, "x-forwarded-proto") == ["http"]
    # The Host is the upstream's, not the one the client addressed.
    assert headers_of(seen, "host") == [echo.url.removeprefix("http://")]


async def test_the_request_id_the_gateway_made_is_the_one_forwarded(
    edge: Gateway, echo: Echo, token: str
) -> None:
    for given in (None, "not a valid id!"):
        m = marker()
        headers = bearer(token) | ({"X-Request-ID": given} if given else {})
        response = await edge.client.get("/v1/teams", params={"m": m}, headers=headers)
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        assert request_id and request_id != given
        assert headers_of(only(echo.requests_with(m)), "x-request-id") == [request_id]


async def test_a_client_sent_x_forwarded_for_is_not_believed(
    edge: Gateway, echo: Echo, token: str
) -> None:
    assert edge.settings.trusted_proxies == []
    for forged in ("203.0.113.9", "10.0.0.1, 203.0.113.9", "not-an-ip"):
        m = marker()
        response = await edge.client.get(
            "/v1/teams", params={"m": m}, headers={**bearer(token), "X-Forwarded-For": forged}
        )
        assert response.status_code == 200
        assert headers_of(only(echo.requests_with(m)), "x-forwarded-for") == [CLIENT_IP]


async def test_x_forwarded_for_of_a_trusted_proxy_is_believed(
    start_gateway: GatewayFactory, echo: Echo
) -> None:
    async with start_gateway(**echo_urls(echo), trusted_proxies=["198.51.100.0/24"]) as gw:
        _, tokens = await gw.signed_in_user()
        for given, expected in (
            ("203.0.113.9", "203.0.113.9"),
            # The right-most address that is not a trusted proxy: what the
            # client wrote on the left is not believed.
            ("1.2.3.4, 203.0.113.9", "203.0.113.9"),
            ("203.0.113.9, 198.51.100.20", "203.0.113.9"),
        ):
            m = marker()
            response = await gw.client.get(
                "/v1/teams",
                params={"m": m},
                headers={**bearer(tokens["access_token"]), "X-Forwarded-For": given},
            )
            assert response.status_code == 200
            assert headers_of(only(echo.requests_with(m)), "x-forwarded-for") == [expected]


async def test_hop_by_hop_headers_stay_on_their_hop(edge: Gateway, echo: Echo, token: str) -> None:
    m = marker()
    response = await edge.client.get(
        "/v1/teams",
        params={"m": m},
        headers={
            **bearer(token),
            "Connection": "keep-alive, Upgrade",
            "Keep-Alive": "timeout=5, max=1000",
            "TE": "trailers",
            "Upgrade": "websocket",
            "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
            "Trailer": "Expires",
        },
    )
    assert response.status_code == 200, response.text
    seen = only(echo.requests_with(m))
    for name in ("keep-alive", "te", "upgrade", "proxy-authorization", "trailer"):
        assert headers_of(seen, name) == [], name
    # The gateway's own connection to the upstream may say keep-alive; the
    # client's Connection header is not what arrives.
    assert headers_of(seen, "connection") in ([], ["keep-alive"])


async def test_headers_named_in_connection_are_not_forwarded(
    edge: Gateway, echo: Echo, token: str
) -> None:
    """RFC 9110 7.6.1: a proxy removes every header the Connection header names."""
    m = marker()
    response = await edge.client.get(
        "/v1/teams",
        params={"m": m},
        headers={**bearer(token), "Connection": "close, X-Hop-Secret", "X-Hop-Secret": "s3cr3t"},
    )
    assert response.status_code == 200, response.text
    assert headers_of(only(echo.requests_with(m)), "x-hop-secret") == []


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
async def test_body_and_query_arrive_intact(
    edge: Gateway, echo: Echo, token: str, method: str
) -> None:
    m = marker()
    body = json.dumps(
        {"name": "Équipe ✓", "nested": {"list": [1, 2.5, None, True]}, "m": m},
        ensure_ascii=False,
    ).encode()
    query = f"m={m}&limit=20&tag=a&tag=b&cursor=abc-_"
    response = await edge.client.request(
        method,
        f"/v1/teams/{TEAM}/workspaces?{query}",
        content=body,
        headers={**bearer(token), "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    seen = only(echo.requests_with(m))
    assert seen["method"] == method
    assert seen["path"] == f"/workspace/v1/teams/{TEAM}/workspaces"
    assert seen["query"] == query
    assert body_of(seen) == body
    assert headers_of(seen, "content-type") == ["application/json; charset=utf-8"]


async def test_encoded_query_values_arrive_with_the_same_meaning(
    edge: Gateway, echo: Echo, token: str
) -> None:
    m = marker()
    query = (
        f"m={m}&q=hello%20world&since=2026-01-01T00%3A00%3A00%2B00%3A00"
        "&path=a%2Fb&amp=x%26y&plus=1%2B1&utf=%E2%9C%93&empty=&tag=a&tag=b"
    )
    response = await edge.client.get(f"/v1/teams?{query}", headers=bearer(token))
    assert response.status_code == 200
    seen = only(echo.requests_with(m))
    assert parse_qsl(seen["query"], keep_blank_values=True) == parse_qsl(
        query, keep_blank_values=True
    )


async def test_binary_and_large_bodies_stream_both_ways(
    edge: Gateway, echo: Echo, token: str
) -> None:
    m = marker()
    payload = os.urandom(1024 * 1024)  # the edge's default limit, to the byte
    response = await edge.client.post(
        f"/v1/teams/{TEAM}/workspaces",
        params={"m": m},
        content=payload,
        headers={**bearer(token), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert body_of(only(echo.requests_with(m))) == payload

    big = await edge.client.get(f"/v1/teams/{TEAM}/activity/big", headers=bearer(token))
    assert big.status_code == 200
    assert big.headers["content-type"] == "application/octet-stream"
    assert big.content == b"z" * BIG_RESPONSE_BYTES


async def test_delete_without_a_body_forwards_no_body(
    edge: Gateway, echo: Echo, token: str
) -> None:
    m = marker()
    response = await edge.client.delete(f"/v1/teams/{TEAM}", params={"m": m}, headers=bearer(token))
    assert response.status_code == 200
    seen = only(echo.requests_with(m))
    assert seen["method"] == "DELETE"
    assert body_of(seen) == b""


async def test_upstream_responses_pass_back_unchanged(edge: Gateway, token: str) -> None:
    response = await edge.client.post(
        f"/v1/teams/{TEAM}/members/conflict",
        json={"user_id": str(uuid.uuid4()), "role": "member"},
        headers={**bearer(token), "X-Request-ID": "client-id-1"},
    )
    assert response.status_code == 409
    assert response.json() == CONFLICT_BODY
    assert response.content == json.dumps(CONFLICT_BODY, separators=(",", ":")).encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-upstream-custom"] == "kept"
    assert response.headers["cache-control"] == "no-store"
    # The request id is the gateway's (the client's), not the upstream's own.
    assert response.headers.get_list("x-request-id") == ["client-id-1"]


async def test_echoed_success_passes_back_with_its_headers(
    edge: Gateway, echo: Echo, token: str
) -> None:
    m = marker()
    response = await edge.client.get("/v1/plans", params={"m": m}, headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["x-upstream-custom"] == "echo"
    assert response.json()["query"] == f"m={m}"


async def test_repeated_response_headers_are_not_merged(edge: Gateway, token: str) -> None:
    """Two Set-Cookie headers must stay two headers (they cannot be comma-joined)."""
    response = await edge.client.get(f"/v1/teams/{TEAM}/cookies", headers=bearer(token))
    assert response.status_code == 204
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2, cookies
    assert cookies[0].startswith("first=1") and cookies[1].startswith("second=2")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/teams/..%2F..%2Fmetrics",
        "/v1/teams/..%2F..%2F..%2Finternal%2Fsecrets",
        f"/v1/teams/{TEAM}/workspaces/..%2F..%2F..%2F..%2Freadyz",
    ],
)
async def test_encoded_dot_segments_cannot_leave_the_public_api(
    edge: Gateway, echo: Echo, token: str, path: str
) -> None:
    """A path that decodes to ``/v1/teams/../../metrics`` must not be forwarded as
    ``/metrics``: only the public ``/v1`` routes of a service are reachable."""
    m = marker()
    response = await edge.client.get(path, params={"m": m}, headers=bearer(token))
    for seen in echo.requests_with(m):
        prefix, version = seen["path"].split("/")[1:3]
        assert (prefix, version) in {(s, "v1") for s in SERVICES}, (
            response.status_code,
            seen["path"],
        )


# --- upstream failures ---------------------------------------------------------------------


async def test_upstream_down_is_503_with_retry_after(gateway: Gateway) -> None:
    _, tokens = await gateway.signed_in_user()
    response = await gateway.client.get("/v1/teams", headers=bearer(tokens["access_token"]))
    assert response.status_code == 503, response.text
    assert error_code(response) == "service_unavailable"
    assert "team" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 0
    assert response.headers.get("x-request-id")
    # Every route of every down service answers the same way.
    response = await gateway.client.post(
        f"/v1/teams/{TEAM}/workspaces", json={"name": "w"}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 503
    assert "retry-after" in response.headers


async def test_upstream_timeout_is_504(start_gateway: GatewayFactory) -> None:
    async with (
        silent_upstream() as url,
        start_gateway(team_url=url, upstream_timeout_reads_seconds=0.5) as gw,
    ):
        _, tokens = await gw.signed_in_user()
        started = time.monotonic()
        response = await gw.client.get("/v1/teams", headers=bearer(tokens["access_token"]))
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        assert error_code(response) == "upstream_timeout"
        assert 0.4 <= elapsed < 5
        # The gateway is still serving afterwards.
        assert (await gw.client.get("/healthz")).status_code == 200


# --- the merged API document ---------------------------------------------------------------


async def test_openapi_is_served_when_every_upstream_is_down(gateway: Gateway) -> None:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh", "/v1/me"):
        assert path in doc["paths"], path
    assert "post" in doc["paths"]["/v1/auth/login"]
    assert "/v1/{rest}" not in doc["paths"]
    assert sorted(doc["info"]["x-missing-services"]) == sorted(SERVICES)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_openapi_merges_every_service(edge: Gateway) -> None:
    response = await edge.client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert "x-missing-services" not in doc["info"]
    assert "/v1/auth/login" in doc["paths"]
    for service in SERVICES:
        operation = doc["paths"][f"/v1/{service}-probe"]["get"]
        assert operation["x-service"] == service
        assert operation["tags"] == [service]
        assert f"{service.title()}Probe" in doc["components"]["schemas"]
    # Only the public /v1 routes of a service are merged.
    for operation in doc["paths"].get("/healthz", {}).values():
        assert "x-service" not in operation


async def test_openapi_documents_what_the_edge_answers(edge: Gateway) -> None:
    doc = (await edge.client.get("/openapi.json")).json()
    probe = doc["paths"]["/v1/team-probe"]["get"]
    assert probe["security"] == [{"bearer": []}]
    assert {"401", "429", "431", "502", "503", "504"} <= set(probe["responses"])
    assert "Retry-After" in probe["responses"]["429"]["headers"]
    error_schema = probe["responses"]["502"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "ErrorResponse" in doc["components"]["schemas"]
    login = doc["paths"]["/v1/auth/login"]["post"]
    assert {"401", "413", "422", "429", "431"} <= set(login["responses"])
    assert "security" not in login
    assert "409" in doc["paths"]["/v1/auth/register"]["post"]["responses"]
    me = doc["paths"]["/v1/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    assert {"401", "404"} <= set(me["responses"])
