"""One event end to end: through the gateway into the team service, out of its
outbox over RabbitMQ, into the activity log, and back out through the gateway."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from agenthq_common.testing.plugin import eventually
from agenthq_devctl.supervisor import Stack

from .people import sign_up

pytestmark = pytest.mark.e2e

CLIENT_IP = "203.0.113.9"  # what the gateway sees as the peer is 127.0.0.1; see below
USER_AGENT = "agenthq-e2e/1.0 (walking skeleton)"


@pytest.fixture
async def gateway(stack: Stack) -> httpx.AsyncClient:
    async with httpx.AsyncClient(
        base_url=stack.public_url("gateway"), headers={"User-Agent": USER_AGENT}, timeout=10
    ) as client:
        yield client  # type: ignore[misc]


async def test_team_created_through_gateway_shows_in_activity_log(
    gateway: httpx.AsyncClient,
) -> None:
    alice = await sign_up(gateway, "alice")
    mallory = await sign_up(gateway, "mallory")

    created = await gateway.post("/v1/teams", json={"name": "Platform"}, headers=alice["headers"])
    assert created.status_code == 201, created.text
    team = created.json()
    assert team["owner_id"] == alice["user"]["id"]
    assert team["member_count"] == 1 and team["plan"] == "free" and team["max_members"] == 5

    listed = await gateway.get("/v1/teams", headers=alice["headers"])
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["items"]] == [team["id"]]
    fetched = await gateway.get(f"/v1/teams/{team['id']}", headers=alice["headers"])
    assert fetched.status_code == 200 and fetched.json()["name"] == "Platform"

    async def activity_has_both() -> list[dict[str, Any]] | None:
        response = await gateway.get(f"/v1/teams/{team['id']}/activity", headers=alice["headers"])
        if response.status_code != 200:  # the activity service has not seen the team yet
            return None
        items = response.json()["items"]
        actions = {a["action"] for a in items}
        return items if {"team.created", "member.added"} <= actions else None

    items = await eventually(activity_has_both, within=20.0, interval=0.2)
    by_action = {a["action"]: a for a in items}
    for action in ("team.created", "member.added"):
        record = by_action[action]
        assert record["team_id"] == team["id"]
        assert record["user_id"] == alice["user"]["id"]
        assert record["ip_address"] == "127.0.0.1"  # the client's address as the gateway saw it
        assert record["user_agent"] == USER_AGENT
    assert by_action["team.created"]["resource_type"] == "team"
    assert by_action["team.created"]["resource_id"] == team["id"]
    assert by_action["member.added"]["metadata"]["role"] == "admin"

    # Tenancy: someone else's team does not exist for mallory.
    for path in (f"/v1/teams/{team['id']}", f"/v1/teams/{team['id']}/activity"):
        response = await gateway.get(path, headers=mallory["headers"])
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "team_not_found"

    me = await eventually(lambda: _me_with_team(gateway, alice["headers"], team["id"]))
    assert me["teams"] == [{"id": team["id"], "name": "Platform", "role": "admin"}]


async def _me_with_team(
    gateway: httpx.AsyncClient, headers: dict[str, str], team_id: str
) -> dict[str, Any] | None:
    me = (await gateway.get("/v1/me", headers=headers)).json()
    return me if any(t["id"] == team_id for t in me["teams"]) else None


async def test_gateway_refuses_unauthenticated_requests_itself(gateway: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/v1/teams"),
        ("POST", "/v1/teams"),
        ("GET", f"/v1/teams/{uuid.uuid4()}/activity"),
        ("GET", "/v1/me"),
    ):
        response = await gateway.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] in ("unauthorized", "invalid_token")
    bad = await gateway.get("/v1/teams", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401
    assert "x-request-id" in bad.headers


async def test_merged_openapi_covers_every_service(gateway: httpx.AsyncClient) -> None:
    doc = (await gateway.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in (
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/me",
        "/v1/teams",
        "/v1/teams/{team_id}",
        "/v1/teams/{team_id}/activity",
    ):
        assert path in paths, path
    assert "x-missing-services" not in doc["info"]
    assert not any(p in paths for p in ("/healthz", "/readyz", "/metrics"))


async def test_request_id_is_echoed_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/teams", headers={"X-Request-ID": "e2e-trace-123"})
    assert response.headers["x-request-id"] == "e2e-trace-123"
