"""Issuing tokens: short-lived signed access tokens, opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from agenthq_gateway.keys import KeyStore


def hash_refresh_token(token: str) -> str:
    # Refresh tokens are 256 random bits: a plain SHA-256 is enough (no brute
    # force to slow down), and it lets us look a token up by its hash.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TokenIssuer:
    keys: KeyStore
    issuer: str
    audience: str
    access_ttl: int
    refresh_ttl: int

    def access_token(self, user_id: uuid.UUID, email: str) -> str:
        now = int(time.time())
        return self.keys.sign(
            {
                "sub": str(user_id),
                # Lets a service that has not yet seen the user's events match an
                # invitation's email right after sign-up.
                "email": email,
                "iss": self.issuer,
                "aud": self.audience,
                "iat": now,
                "nbf": now,
                "exp": now + self.access_ttl,
                "jti": uuid.uuid4().hex,
            }
        )

    @staticmethod
    def refresh_token() -> tuple[str, str]:
        token = secrets.token_urlsafe(32)
        return token, hash_refresh_token(token)
