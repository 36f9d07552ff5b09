"""Request rate limits in Redis, shared by every gateway replica.

Each route class (``auth``, ``reads``, ``writes``) has limits per scope: the
client's address for the unauthenticated ``auth`` routes, the caller and the
team for the others. A request consumes one unit of every limit that applies
to it and is refused (``429 rate_limited``) when any is spent. The strategy
is the ``limits`` library's sliding window counter: two counters per limit
and window, weighted, so a burst at a window's edge cannot double the rate
as it could with fixed windows, at a fraction of a moving log's memory.

Responses carry the tightest limit that applied as ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``
(draft-ietf-httpapi-ratelimit-headers); a refusal also ``Retry-After``.

When Redis cannot be reached the limiter lets requests through (and logs):
rate limits protect the service, they must not be what takes it down.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from agenthq_common.errors import TooManyRequests
from agenthq_common.logging import get_logger

log = get_logger(__name__)

ROUTE_CLASSES = ("auth", "reads", "writes")
SCOPES = ("ip", "user", "team")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def route_class(method: str) -> str:
    return "writes" if method in WRITE_METHODS else "reads"


def parse_limits(specs: Mapping[str, Mapping[str, str]]) -> dict[tuple[str, str], RateLimitItem]:
    """``{"reads": {"user": "1200/minute"}}`` -> items; raises ValueError on
    an unknown class or scope or an unreadable limit."""
    items = {}
    for klass, scoped in specs.items():
        if klass not in ROUTE_CLASSES:
            raise ValueError(f"unknown route class {klass!r} (known: {', '.join(ROUTE_CLASSES)})")
        for scope, spec in scoped.items():
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")
            items[(klass, scope)] = parse(spec)
    return items


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window has room again
    window: int  # seconds

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset, 1))
        return headers

    def enforce(self) -> None:
        if not self.allowed:
            raise TooManyRequests(
                f"Rate limit of {self.limit} requests per {self.window} s reached; "
                f"retry in {max(self.reset, 1)} s",
                code="rate_limited",
                headers=self.headers(),
            )


class RateLimiter:
    def __init__(
        self, redis_url: str, *, prefix: str, limits: Mapping[str, Mapping[str, str]]
    ) -> None:
        self.items = parse_limits(limits)
        self.storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=f"{prefix}gateway:ratelimit",
            wrap_exceptions=True,
        )
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

    async def admit(
        self, klass: str, *, ip: str | None = None, user: object = None, team: object = None
    ) -> Verdict | None:
        """Consume one unit of the caller's limits of ``klass`` (by address or
        user) and look at the team's: the verdict of the tightest, or None when
        none applies (or Redis is away). The team's unit is taken by
        ``charge`` once the team has answered, so that requests a team refuses
        (someone else's calls to it) cannot spend its budget."""
        calls = [
            self._one(item, klass, scope, str(subject), consume=scope != "team")
            for scope, subject in (("ip", ip), ("user", user), ("team", team))
            if subject is not None and (item := self.items.get((klass, scope))) is not None
        ]
        if not calls:
            return None
        try:
            verdicts = await asyncio.gather(*calls)
        except Exception as exc:
            log.warning("rate limiter unavailable; letting the request through", error=repr(exc))
            return None
        return min(verdicts, key=lambda v: (v.allowed, v.remaining))

    async def charge(self, klass: str, *, team: object) -> None:
        item = self.items.get((klass, "team"))
        if item is None:
            return
        try:
            await self.strategy.hit(item, klass, "team", str(team))
        except Exception as exc:
            log.warning("rate limiter unavailable; team not charged", error=repr(exc))

    async def _one(self, item: RateLimitItem, *identifiers: str, consume: bool) -> Verdict:
        if consume:
            allowed = await self.strategy.hit(item, *identifiers)
            stats = await self.strategy.get_window_stats(item, *identifiers)
        else:
            stats = await self.strategy.get_window_stats(item, *identifiers)
            allowed = stats.remaining > 0
        return Verdict(
            allowed=allowed,
            limit=item.amount,
            remaining=max(int(stats.remaining), 0),
            reset=max(math.ceil(stats.reset_time - time.time()), 0),
            window=item.get_expiry(),
        )

    async def aclose(self) -> None:
        # The storage owns its connection pool.
        await self.storage.bridge.storage.aclose()  # type: ignore[attr-defined]
