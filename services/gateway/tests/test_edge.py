"""The gateway at the edge: rate limits, Idempotency-Key, size limits, security
headers, CORS, upstream answers outside the contract, and every kind of bad
token on proxied routes. Upstreams are the echo app (see conftest)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from agenthq_common.testing.tokens import TestSigner
from agenthq_gateway.edge.ratelimit import RateLimiter

from .conftest import (
    CLIENT_IP,
    PASSWORD,
    Echo,
    Gateway,
    GatewayFactory,
    bearer,
    body_of,
    dead_url,
    echo_urls,
    error_code,
    forged_tokens,
    marker,
    only,
    silent_upstream,
    unique_email,
)

TEAM = uuid.UUID("0b6f4c9e-27c5-4a39-9e0c-6a4f9d3c1a11")
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
async def edge(start_gateway: GatewayFactory, echo: Echo) -> AsyncIterator[Gateway]:
    async with start_gateway(**echo_urls(echo), cors_origins=["https://console.example"]) as gw:
        yield gw


async def user_token(gw: Gateway) -> str:
    _, tokens = await gw.signed_in_user()
    return str(tokens["access_token"])


# --- tokens ----------------------------------------------------------------------------------


async def test_every_bad_token_is_401_and_reaches_no_service(
    edge: Gateway, echo: Echo, signer: TestSigner
) -> None:
    user = await edge.register()
    for name, token in forged_tokens(edge, user["id"], signer).items():
        m = marker()
        for method in ("GET", "POST"):
            response = await edge.client.request(
                method, f"/v1/teams/{TEAM}/workspaces", params={"m": m}, headers=bearer(token)
            )
            assert response.status_code == 401, (name, response.text)
            assert response.json()["error"]["code"] in (
                "unauthorized",
                "invalid_token",
                "token_expired",
            )
        assert echo.requests_with(m) == [], name


# --- size limits -----------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_and_never_forwarded(edge: Gateway, echo: Echo) -> None:
    token = await user_token(edge)
    limit = edge.settings.max_body_bytes
    m = marker()
    declared = await edge.client.post(
        f"/v1/teams/{TEAM}/workspaces",
        params={"m": m},
        content=b"x" * (limit + 1),
        headers=bearer(token),
    )
    assert declared.status_code == 413, declared.text
    assert error_code(declared) == "payload_too_large"
    assert declared.headers["x-request-id"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(5):
            yield b"y" * (limit // 4)

    streamed = await edge.client.post(
        f"/v1/teams/{TEAM}/workspaces", params={"m": m}, content=chunks(), headers=bearer(token)
    )
    assert streamed.status_code == 413, streamed.text
    assert error_code(streamed) == "payload_too_large"
    assert echo.requests_with(m) == []


async def test_auth_routes_have_the_body_limit_too(edge: Gateway) -> None:
    response = await edge.client.post(
        "/v1/auth/register",
        content=b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_headers_over_the_limit_are_431(edge: Gateway, echo: Echo) -> None:
    m = marker()
    response = await edge.client.get(
        f"/v1/teams/{TEAM}/workspaces",
        params={"m": m},
        headers={f"X-Filler-{i}": "z" * 1000 for i in range(40)},
    )
    assert response.status_code == 431
    assert error_code(response) == "request_header_fields_too_large"
    assert echo.requests_with(m) == []


async def test_an_unreadable_content_length_is_400(edge: Gateway) -> None:
    response = await edge.client.post(
        "/v1/auth/login", content=b"{}", headers={"Content-Length": "12abc"}
    )
    assert response.status_code == 400


# --- headers ---------------------------------------------------------------------------------


async def test_every_answer_carries_the_security_headers(edge: Gateway) -> None:
    token = await user_token(edge)
    answers = [
        await edge.client.get(f"/v1/teams/{TEAM}/workspaces", headers=bearer(token)),  # proxied
        await edge.client.get("/v1/me"),  # 401 of the gateway
        await edge.client.get("/v1/nowhere", headers=bearer(token)),  # 404
        await edge.client.get("/healthz"),
        await edge.client.post("/v1/auth/login", content=b"x" * (2 * 1024 * 1024)),  # 413
    ]
    for response in answers:
        for name, value in SECURITY.items():
            assert response.headers.get(name) == value, (response.status_code, name)
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"]
        assert "server" not in response.headers
    docs = await edge.client.get("/docs")
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]


async def test_cors_allows_the_configured_origins_only(edge: Gateway) -> None:
    preflight = await edge.client.options(
        "/v1/teams",
        headers={
            "Origin": "https://console.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://console.example"
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    answer = await edge.client.get("/healthz", headers={"Origin": "https://console.example"})
    assert "ratelimit-remaining" in answer.headers["access-control-expose-headers"].lower()
    other = await edge.client.options(
        "/v1/teams",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


# --- upstream answers ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["html-error", "plain-error", "odd-json-error"])
async def test_an_upstream_answer_outside_the_contract_is_502(edge: Gateway, path: str) -> None:
    token = await user_token(edge)
    response = await edge.client.get(f"/v1/teams/{TEAM}/workspaces/{path}", headers=bearer(token))
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert error_code(response) == "bad_gateway"
    assert "<html" not in response.text


async def test_a_write_waits_for_the_writes_timeout(start_gateway: GatewayFactory) -> None:
    async with (
        silent_upstream() as url,
        start_gateway(team_url=url, upstream_timeout_writes_seconds=0.5) as gw,
    ):
        token = await user_token(gw)
        response = await gw.client.post("/v1/teams", json={"name": "x"}, headers=bearer(token))
        assert response.status_code == 504
        assert error_code(response) == "upstream_timeout"


# --- rate limits -----------------------------------------------------------------------------


async def test_a_user_over_the_reads_limit_gets_429_with_headers(
    start_gateway: GatewayFactory, echo: Echo
) -> None:
    limits = {"reads": {"user": "3/minute"}}
    async with start_gateway(**echo_urls(echo), rate_limits=limits) as gw:
        token, other = await user_token(gw), await user_token(gw)
        answers = [await gw.client.get("/v1/plans", headers=bearer(token)) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["ratelimit-limit"] == "3"
        assert answers[0].headers["ratelimit-policy"] == "3;w=60"
        refused = answers[-1]
        assert error_code(refused) == "rate_limited"
        # A sliding window: room comes back once the spent window weighs little
        # enough, up to a third of a window after it ends (3 of 3 spent).
        assert 1 <= int(refused.headers["retry-after"]) <= 80
        assert refused.headers["ratelimit-reset"] == refused.headers["retry-after"]
        # Writes have their own budget; another user has a whole one.
        assert (
            await gw.client.post("/v1/teams", json={}, headers=bearer(token))
        ).status_code == 200
        assert (await gw.client.get("/v1/plans", headers=bearer(other))).status_code == 200


async def test_replicas_share_one_limit(start_gateway: GatewayFactory, echo: Echo) -> None:
    limits = {"reads": {"user": "4/minute"}}
    async with (
        start_gateway(**echo_urls(echo), rate_limits=limits) as one,
        start_gateway(**echo_urls(echo), rate_limits=limits) as two,
    ):
        token = await user_token(one)
        statuses = [
            (await gw.client.get("/v1/plans", headers=bearer(token))).status_code
            for gw in (one, two, one, two, one)
        ]
        assert statuses == [200, 200, 200, 200, 429]


async def test_a_team_limit_counts_only_calls_the_team_answered(
    start_gateway: GatewayFactory, echo: Echo
) -> None:
    limits = {"reads": {"team": "3/minute"}}
    async with start_gateway(**echo_urls(echo), rate_limits=limits) as gw:
        team = uuid.uuid4()
        a, b, stranger = await user_token(gw), await user_token(gw), await user_token(gw)
        # Refused by the team (the echo answers 404 here): they cost the team nothing.
        for _ in range(5):
            response = await gw.client.get(
                f"/v1/teams/{team}/workspaces/notfound", headers=bearer(stranger)
            )
            assert response.status_code == 404
        path = f"/v1/teams/{team}/workspaces"
        statuses = [
            (await gw.client.get(path, headers=bearer(who))).status_code for who in (a, b, a, b)
        ]
        assert statuses == [200, 200, 200, 429]


async def test_auth_routes_are_limited_per_address(start_gateway: GatewayFactory) -> None:
    limits = {"auth": {"ip": "3/minute"}}
    async with start_gateway(rate_limits=limits, trusted_proxies=[f"{CLIENT_IP}/32"]) as gw:
        body = {"email": unique_email("nobody"), "password": "not the password"}
        statuses = [
            (await gw.client.post("/v1/auth/login", json=body)).status_code for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        # Another client address (behind the trusted proxy) has its own budget.
        elsewhere = await gw.client.post(
            "/v1/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.50"}
        )
        assert elsewhere.status_code == 401


async def test_without_redis_the_limits_let_requests_through(
    start_gateway: GatewayFactory, echo: Echo
) -> None:
    limits = {"reads": {"user": "1/minute"}}
    async with start_gateway(**echo_urls(echo), rate_limits=limits) as gw:
        token = await user_token(gw)
        away = aioredis.from_url(dead_url().replace("http://", "redis://"))
        gw.context.limiter = RateLimiter(away, prefix="down:", limits=limits)
        for _ in range(3):
            response = await gw.client.get("/v1/plans", headers=bearer(token))
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers


# --- login lock-outs -------------------------------------------------------------------------


async def test_a_brute_force_from_one_address_does_not_lock_out_the_owner_elsewhere(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(
        login_max_failures=3,
        login_account_max_failures=6,
        login_account_window_seconds=30,
        trusted_proxies=[f"{CLIENT_IP}/32"],
    ) as gw:
        user = await gw.register()
        wrong = {"email": user["email"], "password": "wrong password!"}
        attacker = {"X-Forwarded-For": "203.0.113.66"}
        statuses = [
            (await gw.client.post("/v1/auth/login", json=wrong, headers=attacker)).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        owner = await gw.client.post(
            "/v1/auth/login",
            json={"email": user["email"], "password": PASSWORD},
            headers={"X-Forwarded-For": "198.18.0.9"},
        )
        assert owner.status_code == 200, owner.text

        # Spread over many addresses, the attack locks the account for everyone,
        # but only for the short account window.
        for i in range(4):
            await gw.client.post(
                "/v1/auth/login", json=wrong, headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}
            )
        locked = await gw.client.post(
            "/v1/auth/login",
            json={"email": user["email"], "password": PASSWORD},
            headers={"X-Forwarded-For": "198.18.0.9"},
        )
        assert locked.status_code == 429
        assert error_code(locked) == "too_many_attempts"
        assert 1 <= int(locked.headers["retry-after"]) <= 30  # the account window, not 15 min


# --- Idempotency-Key -------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(
    edge: Gateway, echo: Echo
) -> None:
    token = await user_token(edge)
    m = marker()
    headers = {**bearer(token), "Idempotency-Key": f"k-{m}"}
    first = await edge.client.post(
        f"/v1/teams/{TEAM}/workspaces", params={"m": m}, json={"name": "a"}, headers=headers
    )
    again = await edge.client.post(
        f"/v1/teams/{TEAM}/workspaces", params={"m": m}, json={"name": "a"}, headers=headers
    )
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert again.headers["x-upstream-custom"] == "echo"
    seen = only(echo.requests_with(m))
    assert body_of(seen) == b'{"name":"a"}'
    assert not [k for k, _ in seen["headers"] if k.lower() == "idempotency-key"]


async def test_a_key_reused_with_another_body_is_422(edge: Gateway, echo: Echo) -> None:
    token = await user_token(edge)
    m = marker()
    headers = {**bearer(token), "Idempotency-Key": f"k-{m}"}
    path = f"/v1/teams/{TEAM}/workspaces"
    assert (
        await edge.client.post(path, params={"m": m}, json={"name": "a"}, headers=headers)
    ).status_code == 200
    other = await edge.client.post(path, params={"m": m}, json={"name": "b"}, headers=headers)
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"
    elsewhere = await edge.client.patch(path, params={"m": m}, json={"name": "a"}, headers=headers)
    assert error_code(elsewhere) == "idempotency_key_reused"
    assert len(echo.requests_with(m)) == 1


async def test_concurrent_retries_reach_the_service_once(edge: Gateway, echo: Echo) -> None:
    token = await user_token(edge)
    m = marker()
    headers = {**bearer(token), "Idempotency-Key": f"k-{m}"}
    path = f"/v1/teams/{TEAM}/workspaces/slow"  # the echo takes 0.5 s

    async def attempt() -> httpx.Response:
        return await edge.client.post(path, params={"m": m}, json={"n": 1}, headers=headers)

    answers = await asyncio.gather(*(attempt() for _ in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 7, statuses
    busy = [a for a in answers if a.status_code == 409]
    assert {error_code(a) for a in busy} == {"request_in_progress"}
    assert all(a.headers["retry-after"] == "1" for a in busy)
    replay = await attempt()
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(echo.requests_with(m)) == 1


async def test_keys_belong_to_their_user(edge: Gateway, echo: Echo) -> None:
    m = marker()
    for _ in range(2):
        token = await user_token(edge)
        response = await edge.client.post(
            f"/v1/teams/{TEAM}/workspaces",
            params={"m": m},
            json={"name": "a"},
            headers={**bearer(token), "Idempotency-Key": "shared-key"},
        )
        assert "idempotent-replayed" not in response.headers
    assert len(echo.requests_with(m)) == 2


async def test_a_failed_write_frees_its_key(start_gateway: GatewayFactory, echo: Echo) -> None:
    urls = {**echo_urls(echo), "workspace_url": dead_url()}
    async with start_gateway(**urls) as gw:
        token = await user_token(gw)
        headers = {**bearer(token), "Idempotency-Key": "retry-me"}
        for _ in range(2):  # not stored, not stuck "in progress": each try runs
            response = await gw.client.post(
                f"/v1/teams/{TEAM}/workspaces", json={"name": "a"}, headers=headers
            )
            assert response.status_code == 503
            assert "idempotent-replayed" not in response.headers


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\there", "é"])
async def test_an_unusable_key_is_422(edge: Gateway, echo: Echo, key: str) -> None:
    token = await user_token(edge)
    m = marker()
    response = await edge.client.post(
        f"/v1/teams/{TEAM}/workspaces",
        params={"m": m},
        json={},
        headers={**bearer(token), "Idempotency-Key": key.encode()},  # type: ignore[dict-item]
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    assert echo.requests_with(m) == []


async def test_reads_ignore_the_key(edge: Gateway, echo: Echo) -> None:
    token = await user_token(edge)
    m = marker()
    headers = {**bearer(token), "Idempotency-Key": "read-key"}
    for _ in range(2):
        response = await edge.client.get("/v1/plans", params={"m": m}, headers=headers)
        assert "idempotent-replayed" not in response.headers
    assert len(echo.requests_with(m)) == 2
