"""Identity through HTTP: registration, sign-in, refresh-token rotation, logout,
``/v1/me`` and the checks on access tokens."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import select, update

from agenthq_common.bus import Bus
from agenthq_common.events import registry
from agenthq_common.plumbing import outbox
from agenthq_common.testing.plugin import eventually
from agenthq_common.testing.tokens import TestSigner
from agenthq_common.tracing import trace_id_of
from agenthq_gateway.identity.tokens import hash_refresh_token
from agenthq_gateway.models import RefreshToken

from .conftest import (
    AUDIENCE,
    CLIENT_IP,
    ISSUER,
    PASSWORD,
    Gateway,
    GatewayFactory,
    bearer,
    claims_for,
    error_code,
    forged_tokens,
    jwt_parts,
    unique_email,
)


def details_fields(response: Any) -> set[str]:
    details = response.json()["error"]["details"]
    assert isinstance(details, list) and details, response.text
    return {str(d["field"]) for d in details}


# --- register ------------------------------------------------------------------------------


async def test_register_returns_the_user(gateway: Gateway) -> None:
    email = unique_email()
    response = await gateway.client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada Lovelace"}
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == {"id", "email", "name", "created_at"}
    uuid.UUID(user["id"])
    assert user["email"] == email
    assert user["name"] == "Ada Lovelace"
    created = datetime.fromisoformat(user["created_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert "password" not in response.text and "argon2" not in response.text
    assert response.headers.get("x-request-id")


async def test_register_lower_cases_the_email_and_refuses_duplicates_in_any_case(
    gateway: Gateway,
) -> None:
    local = f"Mixed.Case-{uuid.uuid4().hex[:10]}"
    user = await gateway.register(f"{local}@Example.COM")
    assert user["email"] == f"{local.lower()}@example.com"
    for variant in (
        f"{local}@Example.COM",
        f"{local.lower()}@example.com",
        f"{local.upper()}@EXAMPLE.COM",
    ):
        response = await gateway.client.post(
            "/v1/auth/register", json={"email": variant, "password": PASSWORD, "name": "Other"}
        )
        assert response.status_code == 409, (variant, response.text)
        assert error_code(response) == "email_taken"
    # The account signs in whatever the case of the email typed.
    tokens = await gateway.login(f"{local.upper()}@example.com")
    assert tokens["access_token"]


async def test_concurrent_registrations_of_one_email_create_one_account(gateway: Gateway) -> None:
    email = unique_email("race")
    responses = await asyncio.gather(
        *(
            gateway.client.post(
                "/v1/auth/register",
                json={
                    "email": email if i % 2 else email.upper(),
                    "password": PASSWORD,
                    "name": "R",
                },
            )
            for i in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    assert all(error_code(r) == "email_taken" for r in responses if r.status_code == 409)


async def test_register_refuses_a_short_password(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/auth/register",
        json={"email": unique_email(), "password": "123456789", "name": "Short"},
    )
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_error"
    assert "password" in details_fields(response)
    # Exactly ten characters is enough.
    await gateway.register(password="0123456789")


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "two@@example.com", ""])
async def test_register_refuses_an_invalid_email(gateway: Gateway, email: str) -> None:
    response = await gateway.client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bad"}
    )
    assert response.status_code == 422, response.text
    assert "email" in details_fields(response)


async def test_register_refuses_unknown_fields(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/auth/register",
        json={"email": unique_email(), "password": PASSWORD, "name": "X", "is_admin": True},
    )
    assert response.status_code == 422, response.text
    assert "is_admin" in details_fields(response)


async def test_register_names_every_missing_field(gateway: Gateway) -> None:
    response = await gateway.client.post("/v1/auth/register", json={})
    assert response.status_code == 422, response.text
    assert {"email", "password", "name"} <= details_fields(response)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (None, None),
        (b"", "application/json"),
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b'"a string"', "application/json"),
        (b"email=a@example.com&password=0123456789&name=x", "application/x-www-form-urlencoded"),
        (b"hello", "text/plain"),
        (b"\xff\xfe\x00garbage", "application/json"),
    ],
)
async def test_register_with_a_missing_or_unreadable_body_is_422(
    gateway: Gateway, content: bytes | None, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await gateway.client.post("/v1/auth/register", content=content, headers=headers)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_error"
    assert "Traceback" not in response.text


async def test_register_publishes_user_registered_through_the_outbox(gateway: Gateway) -> None:
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    user = await gateway.register(
        name="Grace Hopper",
        headers={"User-Agent": "agenthq-tests/1.0 (register)", "traceparent": traceparent},
    )

    async def outbox_rows() -> list[Any]:
        async with gateway.service.db.engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(outbox.c.payload, outbox.c.published_at).where(
                            outbox.c.event_type == "user.registered",
                            outbox.c.payload["data"]["user_id"].astext == user["id"],
                        )
                    )
                ).all()
            )

    rows = await outbox_rows()  # committed before the response was sent
    assert len(rows) == 1
    event = rows[0].payload
    assert event["type"] == "user.registered"
    assert event["specversion"] == "1.0"
    assert event["source"] == "agenthq/gateway"
    assert event["subject"] == f"user/{user['id']}"
    assert event["actorid"] == user["id"]
    assert event["actorip"] == CLIENT_IP
    assert event["actorua"] == "agenthq-tests/1.0 (register)"
    # The registration's span continues the caller's trace.
    assert trace_id_of(event["traceparent"]) == trace_id_of(traceparent)
    assert event["traceparent"] != traceparent
    assert event["data"] == {"user_id": user["id"], "email": user["email"], "name": "Grace Hopper"}
    assert "password" not in str(event).lower()

    # ... and the relay hands it to the broker.
    async def published() -> bool:
        return all(r.published_at is not None for r in await outbox_rows())

    await eventually(published, within=10)


async def test_register_does_not_believe_a_client_sent_x_forwarded_for(gateway: Gateway) -> None:
    """trusted_proxies is empty: the client's own X-Forwarded-For is not its address,
    so the audit trail must record the peer address, not the forged one."""
    user = await gateway.register(headers={"X-Forwarded-For": "203.0.113.66"})
    async with gateway.service.db.engine.connect() as conn:
        payload = (
            await conn.execute(
                select(outbox.c.payload).where(
                    outbox.c.event_type == "user.registered",
                    outbox.c.payload["data"]["user_id"].astext == user["id"],
                )
            )
        ).scalar_one()
    assert payload["actorip"] == CLIENT_IP


async def test_failed_registration_publishes_nothing(gateway: Gateway) -> None:
    user = await gateway.register()
    response = await gateway.client.post(
        "/v1/auth/register",
        json={"email": user["email"].upper(), "password": PASSWORD, "name": "Dup"},
    )
    assert response.status_code == 409
    async with gateway.service.db.engine.connect() as conn:
        count = len(
            (
                await conn.execute(
                    select(outbox.c.seq).where(
                        outbox.c.event_type == "user.registered",
                        outbox.c.payload["data"]["email"].astext == user["email"],
                    )
                )
            ).all()
        )
    assert count == 1


# --- login ---------------------------------------------------------------------------------


async def test_login_returns_tokens_signed_by_a_published_key(gateway: Gateway) -> None:
    user = await gateway.register()
    response = await gateway.client.post(
        "/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert isinstance(tokens["refresh_token"], str) and len(tokens["refresh_token"]) >= 32
    assert tokens["refresh_token"].count(".") == 0  # opaque, not a JWT

    header, unverified = jwt_parts(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    jwks = (await gateway.client.get("/.well-known/jwks.json")).json()
    by_kid = {k["kid"]: k for k in jwks["keys"]}
    assert header["kid"] in by_kid

    claims = jwt.decode(
        tokens["access_token"],
        jwt.PyJWK(by_kid[header["kid"]]).key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
    assert claims == unverified
    assert {"sub", "iss", "aud", "iat", "exp", "jti"} <= set(claims)
    assert claims["sub"] == user["id"]
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["jti"]

    # Two logins: two sessions, distinct token ids.
    again = await gateway.login(user["email"])
    assert jwt_parts(again["access_token"])[1]["jti"] != claims["jti"]
    assert again["refresh_token"] != tokens["refresh_token"]


async def test_jwks_publishes_public_keys_only(gateway: Gateway) -> None:
    response = await gateway.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
        assert key["alg"] == "EdDSA" and key["use"] == "sig"
        assert key["kid"] and key["x"]
        assert "d" not in key  # the private part never leaves


async def test_wrong_password_and_unknown_email_look_the_same(gateway: Gateway) -> None:
    user = await gateway.register()
    wrong = await gateway.client.post(
        "/v1/auth/login", json={"email": user["email"], "password": "not the password"}
    )
    unknown = await gateway.client.post(
        "/v1/auth/login", json={"email": unique_email("nobody"), "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert error_code(wrong) == "invalid_credentials"
    assert wrong.json() == unknown.json()
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


async def test_login_refuses_unknown_fields_and_empty_values(gateway: Gateway) -> None:
    user = await gateway.register()
    extra = await gateway.client.post(
        "/v1/auth/login", json={"email": user["email"], "password": PASSWORD, "otp": "1"}
    )
    assert extra.status_code == 422
    assert "otp" in details_fields(extra)
    empty = await gateway.client.post("/v1/auth/login", json={"email": "", "password": ""})
    assert empty.status_code == 422
    assert {"email", "password"} <= details_fields(empty)
    garbage = await gateway.client.post(
        "/v1/auth/login", content=b"{{", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422


async def test_repeated_failures_lock_the_account_until_the_window_passes(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(login_max_failures=3, login_failure_window_seconds=2) as gw:
        user = await gw.register()
        email = user["email"]
        # Failures count per account whatever the case of the email typed.
        for typed in (email, email.upper(), email.title()):
            response = await gw.client.post(
                "/v1/auth/login", json={"email": typed, "password": "wrong password!"}
            )
            assert response.status_code == 401, response.text
            assert error_code(response) == "invalid_credentials"

        locked = await gw.client.post(
            "/v1/auth/login", json={"email": email, "password": "wrong password!"}
        )
        assert locked.status_code == 429, locked.text
        assert error_code(locked) == "too_many_attempts"
        retry_after = int(locked.headers["retry-after"])
        assert 1 <= retry_after <= 2

        # While locked even the right password is refused.
        refused = await gw.client.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1

        # Another account is not affected.
        other = await gw.register()
        await gw.login(other["email"])

        # Once the window has passed, the right password works again.
        started = time.monotonic()

        async def signed_in() -> bool:
            response = await gw.client.post(
                "/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert response.status_code in (200, 429), response.text
            return response.status_code == 200

        await eventually(signed_in, within=6, interval=0.25)
        assert time.monotonic() - started < 5

        # A success resets the count: two more failures are not yet a lock-out.
        for _ in range(2):
            response = await gw.client.post(
                "/v1/auth/login", json={"email": email, "password": "wrong password!"}
            )
            assert response.status_code == 401
        await gw.login(email)


async def test_unknown_accounts_lock_like_real_ones(start_gateway: GatewayFactory) -> None:
    async with start_gateway(login_max_failures=2, login_failure_window_seconds=30) as gw:
        email = unique_email("ghost")
        statuses = []
        for _ in range(3):
            response = await gw.client.post(
                "/v1/auth/login", json={"email": email, "password": "whatever123"}
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 429]


# --- refresh and logout --------------------------------------------------------------------


async def refresh(gateway: Gateway, token: str) -> Any:
    return await gateway.client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_refresh_token(gateway: Gateway) -> None:
    user, first = await gateway.signed_in_user()
    response = await refresh(gateway, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert second["token_type"] == "bearer" and second["expires_in"] == 900
    assert second["refresh_token"] != first["refresh_token"]
    assert jwt_parts(second["access_token"])[1]["sub"] == user["id"]
    me = await gateway.client.get("/v1/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    # The successor rotates too.
    third = await refresh(gateway, second["refresh_token"])
    assert third.status_code == 200, third.text


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(gateway: Gateway) -> None:
    _, first = await gateway.signed_in_user()
    rotated = await refresh(gateway, first["refresh_token"])
    assert rotated.status_code == 200
    successor = rotated.json()["refresh_token"]

    reused = await refresh(gateway, first["refresh_token"])
    assert reused.status_code == 401, reused.text
    assert error_code(reused) == "refresh_token_reused"

    # The revocation stuck although the answer was a 401: the successor is dead too.
    dead = await refresh(gateway, successor)
    assert dead.status_code == 401, dead.text
    again = await refresh(gateway, first["refresh_token"])
    assert again.status_code == 401


async def test_reuse_does_not_touch_other_sessions(gateway: Gateway) -> None:
    user, session_a = await gateway.signed_in_user()
    session_b = await gateway.login(user["email"])
    assert (await refresh(gateway, session_a["refresh_token"])).status_code == 200
    assert (await refresh(gateway, session_a["refresh_token"])).status_code == 401
    assert (await refresh(gateway, session_b["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_of_one_token_issue_one_successor(gateway: Gateway) -> None:
    _, tokens = await gateway.signed_in_user()
    responses = await asyncio.gather(*(refresh(gateway, tokens["refresh_token"]) for _ in range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401, 401, 401], [r.text for r in responses]


async def test_unknown_refresh_token_is_401(gateway: Gateway) -> None:
    response = await refresh(gateway, "this-token-was-never-issued")
    assert response.status_code == 401
    assert error_code(response) == "invalid_refresh_token"


async def test_expired_refresh_token_is_401(gateway: Gateway) -> None:
    _, tokens = await gateway.signed_in_user()
    async with gateway.service.db.engine.begin() as conn:
        await conn.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(tokens["refresh_token"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await refresh(gateway, tokens["refresh_token"])
    assert response.status_code == 401
    assert error_code(response) == "refresh_token_expired"


async def test_refresh_validates_its_body(gateway: Gateway) -> None:
    for body in ({}, {"refresh_token": ""}, {"refresh_token": "x", "extra": 1}):
        response = await gateway.client.post("/v1/auth/refresh", json=body)
        assert response.status_code == 422, (body, response.text)
    response = await gateway.client.post("/v1/auth/refresh")
    assert response.status_code == 422


async def test_logout_ends_the_session(gateway: Gateway) -> None:
    _, tokens = await gateway.signed_in_user()
    response = await gateway.client.post(
        "/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    assert response.content == b""
    denied = await refresh(gateway, tokens["refresh_token"])
    assert denied.status_code == 401
    # Logging out twice is fine.
    again = await gateway.client.post(
        "/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 204


async def test_logout_revokes_tokens_rotated_from_the_session(gateway: Gateway) -> None:
    _, tokens = await gateway.signed_in_user()
    rotated = (await refresh(gateway, tokens["refresh_token"])).json()
    # Logging out with the spent token ends the session it belongs to.
    response = await gateway.client.post(
        "/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    assert (await refresh(gateway, rotated["refresh_token"])).status_code == 401


async def test_logout_of_an_unknown_token_is_204(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/auth/logout", json={"refresh_token": f"unknown-{uuid.uuid4().hex}"}
    )
    assert response.status_code == 204


# --- /v1/me and access tokens --------------------------------------------------------------


async def test_me_with_a_token(gateway: Gateway) -> None:
    user, tokens = await gateway.signed_in_user()
    response = await gateway.client.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json() == {**user, "teams": []}


async def test_me_without_a_token_is_401(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/me")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert response.headers.get("x-request-id")


async def test_me_refuses_bad_tokens(gateway: Gateway, signer: TestSigner) -> None:
    user = await gateway.register()
    forged = forged_tokens(gateway, user["id"], signer)
    for name, token in forged.items():
        response = await gateway.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"]["code"] in (
            "unauthorized",
            "invalid_token",
            "token_expired",
        ), name
    expired = await gateway.client.get("/v1/me", headers=bearer(forged["expired"]))
    assert error_code(expired) == "token_expired"
    # A well-made token from the gateway's own key is accepted (the checks above are not vacuous).
    good = gateway.context.keys.sign(claims_for(user["id"]))
    assert (await gateway.client.get("/v1/me", headers=bearer(good))).status_code == 200


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "bearer"]
)
async def test_me_refuses_malformed_authorization_headers(
    gateway: Gateway, authorization: str
) -> None:
    response = await gateway.client.get("/v1/me", headers={"Authorization": authorization})
    assert response.status_code == 401, response.text


async def test_me_of_a_user_that_does_not_exist_is_404(gateway: Gateway) -> None:
    token = gateway.context.keys.sign(claims_for(uuid.uuid4()))
    response = await gateway.client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 404
    assert error_code(response) == "user_not_found"


async def test_me_lists_the_teams_from_membership_events(
    gateway: Gateway, infra: Any, bus_namespace: str
) -> None:
    user, tokens = await gateway.signed_in_user()
    team_id, gone_id = uuid.uuid4(), uuid.uuid4()
    bus = Bus(infra.broker_url, namespace=bus_namespace)
    await bus.connect()
    try:
        for tid, name in ((team_id, "Alpha team"), (gone_id, "Beta team")):
            await bus.publish(
                registry.create(
                    "team.created",
                    {
                        "team_id": tid,
                        "name": name,
                        "owner_id": user["id"],
                        "plan": "free",
                        "max_members": 5,
                    },
                    source="agenthq/team",
                    subject=f"team/{tid}",
                    team_id=tid,
                )
            )
            await bus.publish(
                registry.create(
                    "member.added",
                    {"team_id": tid, "user_id": user["id"], "role": "admin"},
                    source="agenthq/team",
                    subject=f"member/{user['id']}",
                    team_id=tid,
                )
            )
        await bus.publish(
            registry.create(
                "team.deleted",
                {"team_id": gone_id},
                source="agenthq/team",
                subject=f"team/{gone_id}",
                team_id=gone_id,
            )
        )

        async def teams() -> list[dict[str, Any]] | None:
            response = await gateway.client.get("/v1/me", headers=bearer(tokens["access_token"]))
            assert response.status_code == 200
            listed = response.json()["teams"]
            return (
                listed
                if listed == [{"id": str(team_id), "name": "Alpha team", "role": "admin"}]
                else None
            )

        await eventually(teams, within=10)
    finally:
        await bus.close()
