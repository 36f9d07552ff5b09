"""Request rate limits in Redis, shared by every gateway replica.

Each route class (``auth``, ``reads``, ``writes``) has limits per scope: the
client's address for the unauthenticated ``auth`` routes, the caller and the
team for the others. A request consumes one unit of every limit that applies
to it and is refused (``429 rate_limited``) when any is spent.

The strategy is a sliding window counter (as the ``limits`` library, whose
notation the settings use, calls it): one counter per window, and the rate
over the last window length weighted from the current and previous counters,
so a burst at a window's edge cannot double the rate as it can with fixed
windows, at a fraction of a request log's memory. It runs as one Lua script
for all the limits of a request: one round trip, all or nothing. (The
``limits`` library's own strategy needs two round trips per limit, a hit and
then the stats the headers need: 0.78 ms of the gateway's CPU per request
against 0.15 ms here, measured in the same run.)

Responses carry the tightest limit that applied as ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``
(draft-ietf-httpapi-ratelimit-headers); a refusal also ``Retry-After``.

When Redis cannot be reached the limiter lets requests through (and logs):
rate limits protect the service, they must not be what takes it down.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from redis.asyncio.client import Pipeline

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


# KEYS: per limit, its current and its previous window's counter.
# ARGV: per limit, its amount, its window (s), the seconds elapsed in the
#   current window, and whether to consume a unit (1) or only look (0).
# Nothing is consumed unless every consuming limit has room (all or nothing).
# Returns per limit: allowed (0/1), remaining, seconds until one more fits.
_SLIDING_WINDOWS = """
local results, allowed_all = {}, true
local n = #KEYS / 2
for i = 1, n do
  local limit = tonumber(ARGV[4 * i - 3])
  local window = tonumber(ARGV[4 * i - 2])
  local elapsed = tonumber(ARGV[4 * i - 1])
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local weighted = previous * (1 - elapsed / window) + current
  local allowed = weighted + 1 <= limit
  if ARGV[4 * i] == '1' and not allowed then allowed_all = false end
  results[i] = {allowed, current, previous, weighted, limit, window, elapsed}
end
local out = {}
for i = 1, n do
  local r = results[i]
  local allowed, current, previous, weighted, limit, window, elapsed =
    r[1], r[2], r[3], r[4], r[5], r[6], r[7]
  if ARGV[4 * i] == '1' and allowed_all then
    redis.call('INCR', KEYS[2 * i - 1])
    redis.call('EXPIRE', KEYS[2 * i - 1], 2 * window)
    weighted = weighted + 1
    current = current + 1
  end
  local wait = 0
  if weighted + 1 > limit then
    if current + 1 <= limit and previous > 0 then
      -- the previous window's share shrinks enough within this window
      wait = (1 - (limit - current - 1) / previous) * window - elapsed
    else
      -- only after this window, once its count weighs less
      wait = (window - elapsed) + (1 - (limit - 1) / math.max(current, 1)) * window
    end
  else
    wait = window - elapsed
  end
  out[3 * i - 2] = (allowed and 1) or 0
  out[3 * i - 1] = math.max(math.floor(limit - weighted), 0)
  out[3 * i] = math.max(math.ceil(wait), 0)
end
return out
"""


class RateLimiter:
    def __init__(
        self, redis: aioredis.Redis, *, prefix: str, limits: Mapping[str, Mapping[str, str]]
    ) -> None:
        self.items = parse_limits(limits)
        self.redis = redis
        self.prefix = f"{prefix}gateway:ratelimit"
        self._script = redis.register_script(_SLIDING_WINDOWS)

    def _keys(
        self, item: RateLimitItem, klass: str, scope: str, subject: str, now: float
    ) -> list[str]:
        window = item.get_expiry()
        index = int(now // window)
        base = f"{self.prefix}:{klass}:{scope}:{subject}:{item.amount}/{window}"
        return [f"{base}:{index}", f"{base}:{index - 1}"]

    async def admit(
        self, klass: str, *, ip: str | None = None, user: object = None, team: object = None
    ) -> Verdict | None:
        """Consume one unit of the caller's limits of ``klass`` (by address or
        user) and look at the team's: the verdict of the tightest, or None when
        none applies (or Redis is away). The team's unit is taken by
        ``charge`` once the team has answered, so that requests a team refuses
        (someone else's calls to it) cannot spend its budget."""
        limits = [
            (item, scope, str(subject))
            for scope, subject in (("ip", ip), ("user", user), ("team", team))
            if subject is not None and (item := self.items.get((klass, scope))) is not None
        ]
        if not limits:
            return None
        now = time.time()
        keys: list[str] = []
        args: list[object] = []
        for item, scope, subject in limits:
            keys += self._keys(item, klass, scope, subject, now)
            window = item.get_expiry()
            args += [item.amount, window, now % window, 0 if scope == "team" else 1]
        try:
            flat = await self._script(keys=keys, args=args)
        except Exception as exc:
            log.warning("rate limiter unavailable; letting the request through", error=repr(exc))
            return None
        verdicts = [
            Verdict(
                allowed=bool(flat[3 * i]),
                limit=item.amount,
                remaining=int(flat[3 * i + 1]),
                reset=int(flat[3 * i + 2]),
                window=item.get_expiry(),
            )
            for i, (item, _, _) in enumerate(limits)
        ]
        return min(verdicts, key=lambda v: (v.allowed, v.remaining))

    def charge_in(self, pipe: Pipeline, klass: str, *, team: object) -> None:
        """Spend a unit of the team's limit, as commands of the caller's
        pipeline (after the team answered; see ``admit``)."""
        item = self.items.get((klass, "team"))
        if item is None:
            return
        current, _ = self._keys(item, klass, "team", str(team), time.time())
        pipe.incr(current)
        pipe.expire(current, 2 * item.get_expiry())
