"""The Ed25519 keys that sign access tokens, persisted in the gateway's database
so that tokens survive a restart and every gateway replica signs with the same
keys. Rotation adds a key; the old one stays in the JWKS until retired."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from agenthq_common.auth import StaticKeys
from agenthq_common.db import Database
from agenthq_common.logging import get_logger
from agenthq_gateway.models import SigningKey

log = get_logger(__name__)

# Serialises key creation across gateway replicas starting on an empty database.
_KEY_LOCK = 0x61676B79  # "agky"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _public_jwk(private: Ed25519PrivateKey) -> dict[str, Any]:
    x = _b64url(
        private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    )
    # RFC 7638 thumbprint: the kid is derived from the key, not invented.
    thumbprint = hashlib.sha256(
        json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":")).encode()
    ).digest()
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": _b64url(thumbprint),
        "alg": "EdDSA",
        "use": "sig",
    }


@dataclass
class _ActiveKey:
    kid: str
    private: Ed25519PrivateKey


class KeyStore:
    def __init__(self, db: Database, verifier_keys: StaticKeys) -> None:
        self.db = db
        self.verifier_keys = verifier_keys
        self._active: _ActiveKey | None = None
        self._jwks: dict[str, Any] = {"keys": []}

    @property
    def jwks(self) -> dict[str, Any]:
        return self._jwks

    async def load(self) -> None:
        """Load the unretired keys, creating the first one if there is none."""
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEY_LOCK})
            keys = list(
                (
                    await uow.session.execute(
                        select(SigningKey)
                        .where(SigningKey.retired_at.is_(None))
                        .order_by(SigningKey.created_at.desc())
                    )
                ).scalars()
            )
            if not keys:
                keys = [self._new_key()]
                uow.session.add(keys[0])
                log.info("created the first token signing key", kid=keys[0].kid)
        self._use(keys)

    async def rotate(self) -> str:
        """Add a new signing key; tokens signed by older keys keep verifying."""
        key = self._new_key()
        async with self.db.unit_of_work() as uow:
            uow.session.add(key)
        await self.load()
        return key.kid

    def _new_key(self) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        jwk = _public_jwk(private)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return SigningKey(kid=jwk["kid"], private_pem=pem, public_jwk=jwk)

    def _use(self, keys: list[SigningKey]) -> None:
        newest = keys[0]
        private = serialization.load_pem_private_key(newest.private_pem.encode(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        self._active = _ActiveKey(newest.kid, private)
        self._jwks = {"keys": [k.public_jwk for k in keys]}
        self.verifier_keys.replace(self._jwks)

    def sign(self, claims: dict[str, Any]) -> str:
        if self._active is None:
            raise RuntimeError("signing keys not loaded")
        return jwt.encode(
            claims, self._active.private, algorithm="EdDSA", headers={"kid": self._active.kid}
        )
