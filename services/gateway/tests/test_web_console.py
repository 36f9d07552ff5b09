"""The web console served at ``/``: hashed assets cached for a year,
``index.html`` never, client routes falling back to it, the API untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agenthq_gateway.web import ASSETS_CACHE, CONSOLE_POLICY

from .conftest import Gateway, GatewayFactory, error_code

INDEX = '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>'


@pytest.fixture(scope="module")
async def with_console(
    start_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    dist = tmp_path_factory.mktemp("dist")
    (dist / "assets").mkdir()
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-abc123.js").write_text("console.log('app')")
    (dist / "favicon.svg").write_text("<svg/>")
    async with start_gateway(web_dist=str(dist)) as gateway:
        yield gateway


async def test_index_is_served_at_the_root_and_never_cached(with_console: Gateway) -> None:
    response = await with_console.client.get("/")
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONSOLE_POLICY
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/teams", "/teams/123/workspaces", "/invite/abc.def", "/x/y/z"])
async def test_client_routes_fall_back_to_the_index(with_console: Gateway, path: str) -> None:
    response = await with_console.client.get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_cached_for_a_year(with_console: Gateway) -> None:
    response = await with_console.client.get("/assets/index-abc123.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == ASSETS_CACHE
    assert "javascript" in response.headers["content-type"]
    missing = await with_console.client.get("/assets/index-gone.js")
    assert missing.status_code == 404  # never the index in place of a script


async def test_other_files_of_the_build_are_served(with_console: Gateway) -> None:
    response = await with_console.client.get("/favicon.svg")
    assert response.status_code == 200 and response.text == "<svg/>"


@pytest.mark.parametrize("path", ["/../secret", "/assets/../../etc/passwd", "/%2e%2e/etc/passwd"])
async def test_no_path_leaves_the_build(with_console: Gateway, path: str) -> None:
    response = await with_console.client.get(path)
    assert "root:" not in response.text
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert response.text == INDEX


async def test_the_api_keeps_its_own_answers(with_console: Gateway) -> None:
    unknown = await with_console.client.get("/v1/nothing-here")
    assert unknown.status_code in (401, 404)
    assert "error" in unknown.json()
    assert (await with_console.client.get("/healthz")).status_code == 200
    jwks = await with_console.client.get("/.well-known/jwks.json")
    assert jwks.headers["content-type"].startswith("application/json")
    openapi = await with_console.client.get("/openapi.json")
    assert openapi.headers["content-type"].startswith("application/json")


async def test_without_a_build_the_root_says_how_to_build_it(gateway: Gateway) -> None:
    response = await gateway.client.get("/")
    assert response.status_code == 404
    assert error_code(response) == "console_not_built"
    assert "make web" in response.json()["error"]["message"]


async def test_the_console_learns_where_the_realtime_sockets_are(
    with_console: Gateway, start_gateway: GatewayFactory
) -> None:
    default = await with_console.client.get("/console-config.json")
    assert default.status_code == 200
    assert default.json() == {"realtime_url": "ws://service.test:8005"}  # the host asked
    async with start_gateway(realtime_public_url="wss://rt.example.com") as configured:
        answer = await configured.client.get("/console-config.json")
    assert answer.json() == {"realtime_url": "wss://rt.example.com"}
