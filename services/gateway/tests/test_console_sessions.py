"""Console sessions: the refresh token as an HttpOnly cookie, rotation,
logout, logout everywhere, and what a request from elsewhere cannot do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import pytest

from .conftest import PASSWORD, Gateway, bearer, error_code

CONSOLE = {"X-AgentHQ-Console": "1"}


@pytest.fixture
async def console(gateway: Gateway) -> AsyncIterator[Gateway]:
    """The shared gateway, its client's cookie jar empty before and after (each
    test handles the cookie itself)."""
    gateway.client.cookies.clear()
    yield gateway
    gateway.client.cookies.clear()


def session_cookie(response: Any) -> Any:
    header = response.headers.get("set-cookie")
    assert header, response.headers
    return SimpleCookie(header)["agenthq_refresh"]


async def console_login(gateway: Gateway) -> tuple[dict[str, Any], Any, str]:
    user = await gateway.register()
    response = await gateway.client.post(
        "/v1/auth/console/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    gateway.client.cookies.clear()
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}  # no refresh token
    return user, session_cookie(response), body["access_token"]


async def console_refresh(gateway: Gateway, cookie: str | None, **headers: str) -> Any:
    sent = {**CONSOLE, **headers}
    if cookie is not None:
        sent["Cookie"] = f"agenthq_refresh={cookie}"
    response = await gateway.client.post("/v1/auth/console/refresh", headers=sent)
    gateway.client.cookies.clear()
    return response


async def test_login_sets_an_http_only_strict_cookie_scoped_to_the_console_routes(
    console: Gateway,
) -> None:
    _, cookie, access = await console_login(console)
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/v1/auth/console"
    assert int(cookie["max-age"]) == console.settings.refresh_token_ttl_seconds
    assert not cookie["secure"]  # plain http here; https gets Secure
    me = await console.client.get("/v1/me", headers=bearer(access))
    assert me.status_code == 200


async def test_refresh_rotates_the_cookie_and_a_replayed_cookie_kills_the_session(
    console: Gateway,
) -> None:
    _, cookie, _ = await console_login(console)
    first = await console_refresh(console, cookie.value)
    assert first.status_code == 200, first.text
    rotated = session_cookie(first)
    assert rotated.value != cookie.value
    assert (
        await console.client.get("/v1/me", headers=bearer(first.json()["access_token"]))
    ).status_code == 200
    # The old cookie again: stolen. The whole session dies, the new cookie too.
    replayed = await console_refresh(console, cookie.value)
    assert replayed.status_code == 401
    assert error_code(replayed) == "refresh_token_reused"
    assert (await console_refresh(console, rotated.value)).status_code == 401


async def test_refresh_without_the_console_header_or_the_cookie_is_refused(
    console: Gateway,
) -> None:
    _, cookie, _ = await console_login(console)
    response = await console.client.post(
        "/v1/auth/console/refresh", headers={"Cookie": f"agenthq_refresh={cookie.value}"}
    )
    assert response.status_code == 401
    assert error_code(response) == "console_header_missing"
    missing = await console_refresh(console, None)
    assert missing.status_code == 401
    assert error_code(missing) == "invalid_refresh_token"
    garbage = await console_refresh(console, "x" * 40)
    assert garbage.status_code == 401
    # The cookie survived those attempts.
    assert (await console_refresh(console, cookie.value)).status_code == 200


async def test_bad_credentials_set_no_cookie(console: Gateway) -> None:
    user = await console.register()
    response = await console.client.post(
        "/v1/auth/console/login", json={"email": user["email"], "password": "wrong-password-1"}
    )
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    invalid = await console.client.post("/v1/auth/console/login", json={"email": user["email"]})
    assert invalid.status_code == 422


async def test_logout_ends_the_session_and_clears_the_cookie(console: Gateway) -> None:
    _, cookie, _ = await console_login(console)
    response = await console.client.post(
        "/v1/auth/console/logout",
        headers={**CONSOLE, "Cookie": f"agenthq_refresh={cookie.value}"},
    )
    console.client.cookies.clear()
    assert response.status_code == 204
    cleared = session_cookie(response)
    assert cleared.value == "" and int(cleared["max-age"]) == 0
    assert (await console_refresh(console, cookie.value)).status_code == 401
    # Idempotent, and harmless without a cookie.
    again = await console.client.post("/v1/auth/console/logout", headers=CONSOLE)
    assert again.status_code == 204


async def test_logout_everywhere_ends_console_and_api_sessions(console: Gateway) -> None:
    user, cookie, access = await console_login(console)
    api_tokens = await console.login(user["email"])
    response = await console.client.post("/v1/auth/logout-everywhere", headers=bearer(access))
    console.client.cookies.clear()
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 2
    assert (await console_refresh(console, cookie.value)).status_code == 401
    api = await console.client.post(
        "/v1/auth/refresh", json={"refresh_token": api_tokens["refresh_token"]}
    )
    assert api.status_code == 401
    unauthenticated = await console.client.post("/v1/auth/logout-everywhere")
    assert unauthenticated.status_code == 401


async def test_behind_a_tls_proxy_the_cookie_is_secure_by_setting(
    start_gateway: Any,
) -> None:
    async with start_gateway(console_cookie_secure=True) as gateway:
        _, cookie, _ = await console_login(gateway)
    assert cookie["secure"] is True
