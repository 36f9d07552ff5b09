"""Access tokens for tests, signed by a key the test controls."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from agenthq_common.auth import StaticKeys

ISSUER = "agenthq-gateway"
AUDIENCE = "agenthq"


class TestSigner:
    __test__ = False  # not a test class

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwks: dict[str, Any] = {"keys": [{**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}]}
        self.keys = StaticKeys(self.jwks)

    def token(self, user_id: uuid.UUID, *, ttl: int = 900, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, user_id: uuid.UUID, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}", **extra}
