"""Users, teams and members made through the gateway's public API, as the
end-to-end tests need them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from agenthq_common.testing.plugin import eventually

PASSWORD = "correct horse battery"


async def sign_up(gateway: httpx.AsyncClient, name: str) -> dict[str, Any]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    registered = await gateway.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert registered.status_code == 201, registered.text
    tokens = await gateway.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return {
        "user": registered.json(),
        "email": email,
        "headers": {"Authorization": f"Bearer {tokens.json()['access_token']}"},
    }


async def create_team(gateway: httpx.AsyncClient, owner: dict[str, Any], name: str) -> str:
    created = await gateway.post("/v1/teams", json={"name": name}, headers=owner["headers"])
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def add_member(
    gateway: httpx.AsyncClient, team_id: str, admin: dict[str, Any], who: dict[str, Any], role: str
) -> dict[str, Any]:
    """Add ``who`` by email once the team service has heard of them (user.registered)."""

    async def added() -> dict[str, Any] | None:
        response = await gateway.post(
            f"/v1/teams/{team_id}/members",
            json={"email": who["email"], "role": role},
            headers=admin["headers"],
        )
        if response.status_code == 404:
            assert response.json()["error"]["code"] == "user_not_found", response.text
            return None
        assert response.status_code == 201, response.text
        return dict(response.json())

    member = await eventually(added, within=20.0, interval=0.2)
    assert member["user_id"] == who["user"]["id"] and member["role"] == role
    return member
