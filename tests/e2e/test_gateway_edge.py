"""The gateway at the edge, as real processes: what every answer carries, and
an Idempotency-Key that makes concurrent retries of a real write one write."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .people import create_team, sign_up

pytestmark = pytest.mark.e2e


async def test_answers_carry_no_banner_and_the_security_headers(
    gateway: httpx.AsyncClient,
) -> None:
    owner = await sign_up(gateway, "edge")
    team_id = await create_team(gateway, owner, "Edge")
    for response in (
        await gateway.get(f"/v1/teams/{team_id}/workspaces", headers=owner["headers"]),
        await gateway.get("/v1/me"),
        await gateway.get("/healthz"),
    ):
        assert "server" not in response.headers, response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]
    listed = await gateway.get(f"/v1/teams/{team_id}/workspaces", headers=owner["headers"])
    assert int(listed.headers["ratelimit-limit"]) > 0
    assert int(listed.headers["ratelimit-remaining"]) < int(listed.headers["ratelimit-limit"])


async def test_concurrent_retries_with_one_key_create_one_workspace(
    gateway: httpx.AsyncClient,
) -> None:
    owner = await sign_up(gateway, "idem")
    team_id = await create_team(gateway, owner, "Idempotent")
    headers = {**owner["headers"], "Idempotency-Key": "create-roadmap-1"}

    async def create() -> httpx.Response:
        return await gateway.post(
            f"/v1/teams/{team_id}/workspaces", json={"name": "Roadmap"}, headers=headers
        )

    answers = await asyncio.gather(*(create() for _ in range(6)))
    created = [a for a in answers if a.status_code == 201]
    assert len(created) >= 1
    assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
    # Once done, every retry replays the one answer.
    replay = await create()
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    ids = {a.json()["id"] for a in [*created, replay]}
    assert len(ids) == 1
    listed = await gateway.get(f"/v1/teams/{team_id}/workspaces", headers=owner["headers"])
    assert [w["name"] for w in listed.json()["items"]] == ["Roadmap"]
    # The same key with another body is refused, and writes nothing.
    other = await gateway.post(
        f"/v1/teams/{team_id}/workspaces", json={"name": "Other"}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
