"""``Idempotency-Key`` on writes: the same key and body within 24 h returns the
first response and does nothing twice (API.md).

A key belongs to the caller (``user``, key): two users cannot collide, nor
read each other's answers. The first request claims the key in Redis (``SET
NX``) with the request's fingerprint (method, path, query and body); its
answer is then stored under the key for 24 h. A retry:

- with the same fingerprint, after the answer is stored: the stored answer,
  marked ``Idempotent-Replayed: true``; the service never sees it;
- while the first is still running: ``409 request_in_progress``;
- with another fingerprint: ``422 idempotency_key_reused``.

Answers that say the write did not happen and may succeed later (``429``,
``5xx``, the gateway's own ``502``/``503``/``504``) release the key instead of
being stored, so the client's retry runs for real. The claim expires on its
own after ``claim_seconds`` if the gateway dies mid-request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.responses import Response

from agenthq_common.errors import Conflict, Unprocessable

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII without spaces: UUIDs, ULIDs, hashes, anything a client makes.
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Deletes the key only if it still holds this request's claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Headers of a stored answer that belong to its hop or its moment, not to it.
_NOT_STORED = {
    "x-request-id",
    "date",
    "content-length",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
}


def valid_key(key: str) -> str:
    if not _VALID_KEY.match(key):
        raise Unprocessable.field(
            "Idempotency-Key",
            "must be 1 to 255 printable ASCII characters without spaces",
            where="header",
        )
    return key


def fingerprint(method: str, target: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), target.encode("latin-1"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def storable(status: int) -> bool:
    """Answers that are the write's outcome (it happened, or never will as sent)."""
    return status < 500 and status != 429


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def response(self) -> Response:
        response = Response(content=self.body, status_code=self.status)
        response.raw_headers = [
            *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers],
            (b"content-length", str(len(self.body)).encode()),
            (REPLAYED_HEADER.lower().encode(), b"true"),
        ]
        return response


@dataclass(frozen=True)
class Claim:
    key: str  # the Redis key
    token: str  # what this request wrote there
    fingerprint: str


class IdempotencyStore:
    def __init__(
        self, redis: aioredis.Redis, *, prefix: str, ttl_seconds: int, claim_seconds: int
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}gateway:idempotency"
        self.ttl = ttl_seconds
        self.claim_seconds = claim_seconds
        self._release = redis.register_script(_RELEASE)

    def _key(self, user_id: uuid.UUID, key: str) -> str:
        # Hashed: the key is the client's text, of any printable characters.
        return f"{self.prefix}:{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def claim(self, user_id: uuid.UUID, key: str, fp: str) -> Claim | StoredAnswer:
        """This request's claim on the key, or the stored answer to replay;
        raises when the key is in use by a running or a different request."""
        redis_key = self._key(user_id, key)
        token = json.dumps({"state": "running", "fp": fp, "claim": uuid.uuid4().hex})
        for _ in range(3):  # a claim can expire between our SET and GET
            if await self.redis.set(redis_key, token, nx=True, ex=self.claim_seconds):
                return Claim(redis_key, token, fp)
            raw = await self.redis.get(redis_key)
            if raw is None:
                continue
            record = json.loads(raw)
            if record["fp"] != fp:
                raise Unprocessable(
                    "This Idempotency-Key was used with another request; use a new key",
                    code="idempotency_key_reused",
                )
            if record["state"] == "running":
                raise Conflict(
                    "A request with this Idempotency-Key is still running; retry shortly",
                    code="request_in_progress",
                    headers={"Retry-After": "1"},
                )
            return StoredAnswer(
                record["status"],
                [(k, v) for k, v in record["headers"]],
                base64.b64decode(record["body"]),
            )
        raise Conflict(
            "The Idempotency-Key is changing hands; retry shortly",
            code="request_in_progress",
            headers={"Retry-After": "1"},
        )

    async def store(
        self, claim: Claim, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        record = {
            "state": "done",
            "fp": claim.fingerprint,
            "status": status,
            "headers": [[k, v] for k, v in headers if k.lower() not in _NOT_STORED],
            "body": base64.b64encode(body).decode(),
        }
        await self.redis.set(claim.key, json.dumps(record), ex=self.ttl)

    async def release(self, claim: Claim) -> None:
        await self._release(keys=[claim.key], args=[claim.token])
