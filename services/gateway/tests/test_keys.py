"""Token signing keys: persisted in the database (a restart or another replica
signs and verifies with the same keys) and rotated by adding a key."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from agenthq_common.auth import StaticKeys
from agenthq_common.db import Database
from agenthq_gateway.keys import KeyStore
from agenthq_gateway.models import SigningKey

from .conftest import GatewayFactory, bearer, jwt_parts


async def jwks_kids(gw: Any) -> list[str]:
    response = await gw.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return [k["kid"] for k in response.json()["keys"]]


async def count_keys(url: str) -> int:
    db = Database(url, service="gateway")
    try:
        async with db.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(SigningKey))).scalar_one()
            )
    finally:
        await db.dispose()


async def test_keys_survive_a_restart(databases: Any, start_gateway: GatewayFactory) -> None:
    url = await databases.fresh("gateway", "_restart")
    async with start_gateway(database_url=url) as first:
        first_kids = await jwks_kids(first)
        assert len(first_kids) == 1
        user, tokens = await first.signed_in_user()
        assert jwt_parts(tokens["access_token"])[0]["kid"] == first_kids[0]
    async with start_gateway(database_url=url) as second:
        assert await jwks_kids(second) == first_kids
        # A token issued before the restart still verifies ...
        me = await second.client.get("/v1/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user["id"]
        # ... and new tokens are signed with the same key.
        again = await second.login(user["email"])
        assert jwt_parts(again["access_token"])[0]["kid"] == first_kids[0]
    assert await count_keys(url) == 1


async def test_two_replicas_share_the_keys(databases: Any, start_gateway: GatewayFactory) -> None:
    url = await databases.fresh("gateway", "_replicas")
    async with start_gateway(database_url=url) as a, start_gateway(database_url=url) as b:
        assert await jwks_kids(a) == await jwks_kids(b)
        _, tokens = await a.signed_in_user()
        assert (
            await b.client.get("/v1/me", headers=bearer(tokens["access_token"]))
        ).status_code == 200


async def test_replicas_starting_together_on_an_empty_database_create_one_key(
    databases: Any,
) -> None:
    url = await databases.fresh("gateway", "_race")
    dbs = [Database(url, service="gateway") for _ in range(4)]
    try:
        stores = [KeyStore(db, StaticKeys({"keys": []})) for db in dbs]
        await asyncio.gather(*(s.load() for s in stores))
        assert len({tuple(k["kid"] for k in s.jwks["keys"]) for s in stores}) == 1
        assert await count_keys(url) == 1
    finally:
        for db in dbs:
            await db.dispose()


async def test_rotation_adds_a_key_and_old_tokens_keep_verifying(
    databases: Any, start_gateway: GatewayFactory
) -> None:
    url = await databases.fresh("gateway", "_rotate")
    async with start_gateway(database_url=url) as gw:
        (old_kid,) = await jwks_kids(gw)
        user, old_tokens = await gw.signed_in_user()
        assert jwt_parts(old_tokens["access_token"])[0]["kid"] == old_kid

        new_kid = await gw.context.keys.rotate()
        assert new_kid != old_kid

        kids = await jwks_kids(gw)
        assert len(kids) == 2
        assert set(kids) == {old_kid, new_kid}

        new_tokens = await gw.login(user["email"])
        assert jwt_parts(new_tokens["access_token"])[0]["kid"] == new_kid

        for tokens in (old_tokens, new_tokens):
            me = await gw.client.get("/v1/me", headers=bearer(tokens["access_token"]))
            assert me.status_code == 200, me.text
        # Refresh tokens are not tied to a signing key.
        refreshed = await gw.client.post(
            "/v1/auth/refresh", json={"refresh_token": old_tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
        assert jwt_parts(refreshed.json()["access_token"])[0]["kid"] == new_kid

    # A gateway started after the rotation signs with the newest key and knows both.
    async with start_gateway(database_url=url) as later:
        assert set(await jwks_kids(later)) == {old_kid, new_kid}
        fresh = await later.login(user["email"])
        assert jwt_parts(fresh["access_token"])[0]["kid"] == new_kid
        me = await later.client.get("/v1/me", headers=bearer(old_tokens["access_token"]))
        assert me.status_code == 200, me.text
