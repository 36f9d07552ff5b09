"""Verifying access tokens: signature against the gateway's JWKS (cached,
re-fetched when a token names a key we have not seen), ``iss``, ``aud``,
``exp``, and only the one asymmetric algorithm configured, so that neither
``alg: none`` nor an HMAC token signed with a public key can pass."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt
from fastapi import Request

from agenthq_common.errors import Unauthorized
from agenthq_common.logging import get_logger

log = get_logger(__name__)

REQUIRED_CLAIMS = ["sub", "iss", "aud", "iat", "exp", "jti"]


@dataclass(frozen=True)
class CurrentUser:
    id: uuid.UUID
    token_id: str
    claims: dict[str, Any] = field(repr=False)


class KeySource(Protocol):
    async def key(self, kid: str) -> Any | None: ...


class StaticKeys:
    """Keys held in process (the gateway verifies with its own public keys)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.replace(jwks)

    def replace(self, jwks: dict[str, Any]) -> None:
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks.get("keys", [])}

    async def key(self, kid: str) -> Any | None:
        return self._keys.get(kid)


class RemoteJwks:
    """The gateway's JWKS over HTTP, cached for ``ttl`` seconds.

    An unknown ``kid`` triggers a re-fetch (the gateway may have rotated keys),
    but at most once per ``min_refresh`` seconds so that tokens with made-up
    kids cannot turn every request into a call to the gateway.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refresh: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._client = client or httpx.AsyncClient(timeout=5.0)
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Any | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self.ttl
        if kid not in self._keys or stale:
            await self._refresh(force=stale)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            # Re-checked under the lock: the requests that queued behind one
            # refresh must not each fetch again.
            age = time.monotonic() - self._fetched_at
            if age < self.min_refresh or (force and age < self.ttl):
                return
            try:
                response = await self._client.get(self.url)
                response.raise_for_status()
                keys = {k["kid"]: jwt.PyJWK(k).key for k in response.json().get("keys", [])}
            except Exception as exc:
                # Keep serving with the keys we have; tokens with unknown kids fail.
                log.warning("jwks fetch failed", url=self.url, error=repr(exc))
                self._fetched_at = time.monotonic()
                return
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def aclose(self) -> None:
        await self._client.aclose()


class TokenVerifier:
    """Verifies access tokens, remembering the ones it has verified until they
    expire: a client sends the same token with every request for its 15
    minutes, and checking a signature costs more than the rest of a small
    request's authorization. (A key retired meanwhile does not evict them:
    retiring is for rotation, and the tokens expire within the TTL anyway.)"""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithm: str,
        cache_size: int = 10_000,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithm = algorithm
        self.cache_size = cache_size
        self._verified: dict[str, tuple[float, CurrentUser]] = {}

    async def verify(self, token: str) -> CurrentUser:
        cached = self._verified.get(token)
        if cached is not None:
            if cached[0] > time.time():
                return cached[1]
            del self._verified[token]
        user = await self._verify(token)
        if len(self._verified) >= self.cache_size:
            self._verified.clear()
        self._verified[token] = (float(user.claims["exp"]), user)
        return user

    async def _verify(self, token: str) -> CurrentUser:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed access token", code="invalid_token") from exc
        if header.get("alg") != self.algorithm:
            raise Unauthorized("Access token algorithm not accepted", code="invalid_token")
        kid = header.get("kid")
        key = await self.keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("Access token signed by an unknown key", code="invalid_token")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            user_id = uuid.UUID(claims["sub"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Access token expired", code="token_expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized("Invalid access token", code="invalid_token") from exc
        return CurrentUser(id=user_id, token_id=str(claims["jti"]), claims=claims)


MAX_TOKEN_CHARS = 8192


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'", code="invalid_token")
    if len(token) > MAX_TOKEN_CHARS:
        # Ours are under 1 KiB: a huge one is not worth decoding (or caching).
        raise Unauthorized("Token too large", code="invalid_token")
    return token.strip()
