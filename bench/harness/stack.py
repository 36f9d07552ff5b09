"""The whole system as real processes on scratch databases, for a benchmark
(``agenthq_devctl.scratch``), and the users and teams a benchmark starts from."""

from __future__ import annotations

import uuid

import httpx

from agenthq_devctl.scratch import BROKER, POSTGRES, REDIS, free_port, scratch_stack

__all__ = [
    "BROKER",
    "PASSWORD",
    "POSTGRES",
    "REDIS",
    "free_port",
    "owner_with_team",
    "scratch_stack",
]

PASSWORD = "benchmark-password"


async def owner_with_team(gateway: str) -> tuple[dict[str, str], str]:
    """A new user's auth headers and a team they own, through the public API."""
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        registered = await client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        registered.raise_for_status()
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        team = await client.post("/v1/teams", json={"name": "Bench"}, headers=headers)
        team.raise_for_status()
        return headers, str(team.json()["id"])
