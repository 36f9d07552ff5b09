"""Access-token verification: signature, claims, algorithm pinning, JWKS caching,
and the ``Authorization: Bearer`` header parsing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI

from agenthq_common import auth as auth_module
from agenthq_common.auth import (
    CurrentUser,
    RemoteJwks,
    StaticKeys,
    TokenVerifier,
    bearer_token,
)
from agenthq_common.errors import Unauthorized
from agenthq_common.http import install_error_handlers
from agenthq_common.testing.tokens import AUDIENCE, ISSUER, TestSigner

ALGORITHM = "EdDSA"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(user_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": str(user_id),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    return {k: v for k, v in values.items() if v is not None}


def sign(signer: TestSigner, payload: dict[str, Any], kid: str | None = None) -> str:
    return jwt.encode(
        payload, signer.private, algorithm=ALGORITHM, headers={"kid": kid or signer.kid}
    )


def verifier_for(keys: Any) -> TokenVerifier:
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, algorithm=ALGORITHM)


@pytest.fixture
def verifier(signer: TestSigner) -> TokenVerifier:
    return verifier_for(signer.keys)


async def assert_rejected(verifier: TokenVerifier, token: str, code: str = "invalid_token") -> None:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401
    assert caught.value.code == code
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}


# --- TokenVerifier with StaticKeys -------------------------------------------------------


async def test_valid_token_gives_current_user(signer: TestSigner, verifier: TokenVerifier) -> None:
    user_id = uuid.uuid4()
    token = signer.token(user_id)
    user = await verifier.verify(token)
    assert isinstance(user, CurrentUser)
    assert user.id == user_id
    assert user.token_id == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert user.claims["sub"] == str(user_id)
    # The claims (which hold the token's contents) stay out of reprs and logs.
    assert "claims" not in repr(user)


async def test_audience_list_containing_ours_is_accepted(
    signer: TestSigner, verifier: TokenVerifier
) -> None:
    user_id = uuid.uuid4()
    token = sign(signer, claims(user_id, aud=["other", AUDIENCE]))
    assert (await verifier.verify(token)).id == user_id


async def test_expired_token(signer: TestSigner, verifier: TokenVerifier) -> None:
    token = signer.token(uuid.uuid4(), ttl=-60)
    await assert_rejected(verifier, token, code="token_expired")


async def test_wrong_audience(signer: TestSigner, verifier: TokenVerifier) -> None:
    await assert_rejected(verifier, signer.token(uuid.uuid4(), aud="somebody-else"))


async def test_wrong_issuer(signer: TestSigner, verifier: TokenVerifier) -> None:
    await assert_rejected(verifier, signer.token(uuid.uuid4(), iss="https://evil.example"))


@pytest.mark.parametrize("claim", ["jti", "sub", "exp", "iat", "aud", "iss"])
async def test_missing_required_claim(
    signer: TestSigner, verifier: TokenVerifier, claim: str
) -> None:
    token = sign(signer, claims(uuid.uuid4(), **{claim: None}))
    assert claim not in jwt.decode(token, options={"verify_signature": False})
    await assert_rejected(verifier, token)


async def test_subject_that_is_not_a_uuid(signer: TestSigner, verifier: TokenVerifier) -> None:
    await assert_rejected(verifier, sign(signer, claims(uuid.uuid4(), sub="alice")))


async def test_unknown_kid(signer: TestSigner, verifier: TokenVerifier) -> None:
    await assert_rejected(verifier, sign(signer, claims(uuid.uuid4()), kid="not-a-key"))


async def test_missing_kid(signer: TestSigner, verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(uuid.uuid4()), signer.private, algorithm=ALGORITHM)
    assert "kid" not in jwt.get_unverified_header(token)
    await assert_rejected(verifier, token)


async def test_signed_by_another_key_with_our_kid(
    signer: TestSigner, verifier: TokenVerifier
) -> None:
    impostor = TestSigner(kid=signer.kid)
    await assert_rejected(verifier, impostor.token(uuid.uuid4()))


async def test_tampered_payload(signer: TestSigner, verifier: TokenVerifier) -> None:
    header, _, signature = signer.token(uuid.uuid4()).split(".")
    forged = b64json(claims(uuid.uuid4()))
    await assert_rejected(verifier, f"{header}.{forged}.{signature}")


async def test_alg_none_token(signer: TestSigner, verifier: TokenVerifier) -> None:
    header = b64json({"alg": "none", "typ": "JWT", "kid": signer.kid})
    payload = b64json(claims(uuid.uuid4()))
    await assert_rejected(verifier, f"{header}.{payload}.")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_variants(signer: TestSigner, verifier: TokenVerifier, alg: str) -> None:
    header = b64json({"alg": alg, "typ": "JWT", "kid": signer.kid})
    payload = b64json(claims(uuid.uuid4()))
    await assert_rejected(verifier, f"{header}.{payload}.")


@pytest.mark.parametrize("encoding", ["pem", "raw"])
async def test_hs256_signed_with_the_public_key(
    signer: TestSigner, verifier: TokenVerifier, encoding: str
) -> None:
    public = signer.private.public_key()
    secret = (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if encoding == "pem"
        else public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    signing_input = (
        f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': signer.kid})}."
        f"{b64json(claims(uuid.uuid4()))}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    await assert_rejected(verifier, f"{signing_input}.{b64url(mac)}")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJ.eyJ.",
        f"{b64url(b'[]')}.{b64json({'sub': 'x'})}.",
        f"{b64url(b'not json')}.{b64json({'sub': 'x'})}.sig",
        "Bearer abc.def.ghi",
    ],
)
async def test_garbage_is_unauthorized(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(garbage)
    assert caught.value.status == 401


async def test_payload_that_is_not_an_object(signer: TestSigner, verifier: TokenVerifier) -> None:
    header = b64json({"alg": ALGORITHM, "typ": "JWT", "kid": signer.kid})
    body = b64url(b'"just a string"')
    signature = signer.private.sign(f"{header}.{body}".encode())
    await assert_rejected(verifier, f"{header}.{body}.{b64url(signature)}")


# --- RemoteJwks ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


class FakeJwksServer:
    """Serves a JWKS through ``httpx.MockTransport`` and counts the fetches."""

    def __init__(self, jwks: dict[str, Any], delay: float = 0.0) -> None:
        self.jwks = jwks
        self.fetches = 0
        self.fail: Exception | int | None = None
        self.delay = delay

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.fail, Exception):
            raise self.fail
        if isinstance(self.fail, int):
            return httpx.Response(self.fail, text="oops")
        return httpx.Response(200, json=self.jwks)

    def remote(self, **kw: Any) -> RemoteJwks:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return RemoteJwks("http://gateway.test/.well-known/jwks.json", client=client, **kw)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    # Replace only the module's view of ``time``: the event loop keeps the real clock.
    monkeypatch.setattr(auth_module, "time", fake)
    return fake


async def test_remote_jwks_cached_within_ttl(signer: TestSigner, clock: FakeClock) -> None:
    server = FakeJwksServer(signer.jwks)
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        assert await remote.key(signer.kid) is not None
        assert server.fetches == 1
        for _ in range(5):
            clock.now += 50
            assert await remote.key(signer.kid) is not None
        assert server.fetches == 1  # 250 s later: still cached
        clock.now += 60
        assert await remote.key(signer.kid) is not None
        assert server.fetches == 2  # past the ttl: re-fetched
    finally:
        await remote.aclose()


async def test_remote_jwks_unknown_kid_refetch_is_rate_limited(
    signer: TestSigner, clock: FakeClock
) -> None:
    server = FakeJwksServer(signer.jwks)
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        assert await remote.key(signer.kid) is not None
        assert server.fetches == 1
        # Made-up kids right after a fetch: no call to the gateway.
        for i in range(10):
            assert await remote.key(f"made-up-{i}") is None
        assert server.fetches == 1
        clock.now += 6
        assert await remote.key("made-up-again") is None
        assert server.fetches == 2
        for i in range(10):
            clock.now += 0.4
            assert await remote.key(f"more-{i}") is None
        assert server.fetches == 2  # 4 s since the last fetch: still rate limited
        clock.now += 2
        assert await remote.key("one-more") is None
        assert server.fetches == 3
    finally:
        await remote.aclose()


async def test_remote_jwks_picks_up_a_rotated_key(signer: TestSigner, clock: FakeClock) -> None:
    server = FakeJwksServer(signer.jwks)
    remote = server.remote(ttl=300, min_refresh=5)
    rotated = TestSigner(kid="rotated-key")
    try:
        verifier = verifier_for(remote)
        assert (await verifier.verify(signer.token(uuid.uuid4()))).id
        server.jwks = {"keys": [*signer.jwks["keys"], *rotated.jwks["keys"]]}
        clock.now += 10
        user_id = uuid.uuid4()
        assert (await verifier.verify(rotated.token(user_id))).id == user_id
        assert server.fetches == 2
    finally:
        await remote.aclose()


@pytest.mark.parametrize(
    "failure",
    [503, 404, httpx.ConnectError("gateway down"), httpx.ReadTimeout("slow")],
    ids=["503", "404", "connect-error", "timeout"],
)
async def test_remote_jwks_keeps_old_keys_when_fetch_fails(
    signer: TestSigner, clock: FakeClock, failure: Exception | int
) -> None:
    server = FakeJwksServer(signer.jwks)
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        verifier = verifier_for(remote)
        user_id = uuid.uuid4()
        assert (await verifier.verify(signer.token(user_id))).id == user_id
        server.fail = failure
        clock.now += 301
        assert (await verifier.verify(signer.token(user_id))).id == user_id
        assert server.fetches == 2
        # A failed fetch counts as a fetch: no hammering of a gateway that is down.
        clock.now += 1
        assert await remote.key(signer.kid) is not None
        assert await remote.key("unknown") is None
        assert server.fetches == 2
        # Once the gateway is back, the next refresh succeeds.
        server.fail = None
        clock.now += 301
        assert await remote.key(signer.kid) is not None
        assert server.fetches == 3
    finally:
        await remote.aclose()


async def test_remote_jwks_malformed_document_keeps_old_keys(
    signer: TestSigner, clock: FakeClock
) -> None:
    server = FakeJwksServer(signer.jwks)
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        assert await remote.key(signer.kid) is not None
        server.jwks = {"keys": [{"kty": "nonsense", "kid": "bad"}]}
        clock.now += 301
        assert await remote.key(signer.kid) is not None
        assert server.fetches == 2
    finally:
        await remote.aclose()


async def test_remote_jwks_first_fetch_failure_rejects_tokens(
    signer: TestSigner, clock: FakeClock
) -> None:
    server = FakeJwksServer(signer.jwks)
    server.fail = 500
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        await assert_rejected(verifier_for(remote), signer.token(uuid.uuid4()))
        assert server.fetches == 1
    finally:
        await remote.aclose()


async def test_remote_jwks_concurrent_unknown_kids_fetch_once(
    signer: TestSigner, clock: FakeClock
) -> None:
    server = FakeJwksServer(signer.jwks, delay=0.01)
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        assert await remote.key(signer.kid) is not None
        clock.now += 10
        results = await asyncio.gather(*(remote.key(f"kid-{i}") for i in range(10)))
        assert results == [None] * 10
        assert server.fetches == 2
    finally:
        await remote.aclose()


async def test_remote_jwks_concurrent_requests_at_expiry_fetch_once(
    signer: TestSigner, clock: FakeClock
) -> None:
    """When the cache expires under load, the requests waiting for the refresh must
    reuse its result rather than each fetching the JWKS again, one after the other
    (with the gateway down that would be N sequential timeouts)."""
    server = FakeJwksServer(signer.jwks, delay=0.01)
    remote = server.remote(ttl=300, min_refresh=5)
    try:
        assert await remote.key(signer.kid) is not None
        clock.now += 301
        results = await asyncio.gather(*(remote.key(signer.kid) for _ in range(10)))
        assert all(r is not None for r in results)
        assert server.fetches == 2
    finally:
        await remote.aclose()


# --- bearer_token through a FastAPI app ---------------------------------------------------


def bearer_app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/token")
    async def token(value: str = Depends(bearer_token)) -> dict[str, str]:
        return {"token": value}

    async def current_user(value: str = Depends(bearer_token)) -> CurrentUser:
        return await verifier.verify(value)

    @app.get("/me")
    async def me(user: CurrentUser = Depends(current_user)) -> dict[str, str]:
        return {"id": str(user.id)}

    return app


@pytest.fixture
async def bearer_client(verifier: TokenVerifier) -> Any:
    transport = httpx.ASGITransport(app=bearer_app(verifier), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer   abc", "abc"),
    ],
)
async def test_bearer_token_parsed(
    bearer_client: httpx.AsyncClient, header: str, expected: str
) -> None:
    response = await bearer_client.get("/token", headers={"Authorization": header})
    assert response.status_code == 200
    assert response.json() == {"token": expected}


async def test_bearer_token_missing(bearer_client: httpx.AsyncClient) -> None:
    response = await bearer_client.get("/token")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc", "abc", "Bearerabc"]
)
async def test_bearer_token_malformed(bearer_client: httpx.AsyncClient, header: str) -> None:
    response = await bearer_client.get("/token", headers={"Authorization": header})
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "invalid_token"
    assert isinstance(body["error"]["message"], str)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bearer_token_verified_end_to_end(
    bearer_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    user_id = uuid.uuid4()
    response = await bearer_client.get("/me", headers=signer.headers(user_id))
    assert response.status_code == 200
    assert response.json() == {"id": str(user_id)}

    expired = signer.token(user_id, ttl=-5)
    response = await bearer_client.get("/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"

    response = await bearer_client.get("/me", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_static_keys_replace(signer: TestSigner) -> None:
    keys = StaticKeys({"keys": []})
    assert await keys.key(signer.kid) is None
    keys.replace(signer.jwks)
    assert await keys.key(signer.kid) is not None
