"""Who is online, across instances, in Redis.

Per team and user, a sorted set of that user's connections, scored by the
time their entry expires; each instance refreshes the entries of its own
connections (heart-beats), so the connections of an instance that crashed
expire on their own within the TTL. A user is present while they have one
live entry. ``presence.joined`` is published when a user's first connection
opens, ``presence.left`` when the last one closes or expires; the Lua scripts
make "first" and "last" exact when instances race.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from agenthq_realtime.channels.frames import KEY_PREFIX

HEARTBEAT_BATCH = 500  # users per pipeline

# KEYS: user's connections, team's users, teams with presence
# ARGV: now, expiry, member, user, team
_JOIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
return before
"""
# KEYS: user's connections, team's users;  ARGV: now, member (or ''), user
_LEAVE = """
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  local was = redis.call('SREM', KEYS[2], ARGV[3])
  return was
end
return 0
"""


@dataclass(frozen=True)
class Present:
    user_id: uuid.UUID
    connections: int
    since: float  # epoch seconds of the oldest live connection


class Presence:
    def __init__(self, redis: aioredis.Redis, *, prefix: str, ttl: float) -> None:
        self.redis = redis
        self.prefix = f"{prefix}{KEY_PREFIX}:presence"
        self.ttl = ttl
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)

    def _conns(self, team_id: uuid.UUID, user_id: uuid.UUID | str) -> str:
        return f"{self.prefix}:{team_id}:{user_id}"

    def _users(self, team_id: uuid.UUID | str) -> str:
        return f"{self.prefix}:{team_id}:users"

    @property
    def _teams(self) -> str:
        return f"{self.prefix}:teams"

    @staticmethod
    def member(connection_id: str, connected_at: float) -> str:
        return f"{connection_id}|{connected_at:.3f}"

    async def join(
        self, team_id: uuid.UUID, user_id: uuid.UUID, connection_id: str, connected_at: float
    ) -> bool:
        """Record a connection; True when it is the user's first (joined)."""
        now = time.time()
        before = await self._join(
            keys=[self._conns(team_id, user_id), self._users(team_id), self._teams],
            args=[
                now,
                now + self.ttl,
                self.member(connection_id, connected_at),
                str(user_id),
                str(team_id),
            ],
        )
        return int(before) == 0

    async def leave(self, team_id: uuid.UUID, user_id: uuid.UUID | str, member: str = "") -> bool:
        """Forget a connection (or only expired ones); True when the user left."""
        gone = await self._leave(
            keys=[self._conns(team_id, user_id), self._users(team_id)],
            args=[time.time(), member, str(user_id)],
        )
        return bool(gone)

    async def heartbeat(self, entries: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
        """Push back the expiry of this instance's connections: one ZADD per
        user with all of its connections here, in pipelines of a few hundred
        users, so that ten thousand sockets never hold the event loop for long."""
        expiry = time.time() + self.ttl
        by_user: dict[str, dict[str, float]] = {}
        for team_id, user_id, member in entries:
            by_user.setdefault(self._conns(team_id, user_id), {})[member] = expiry
        keys = list(by_user)
        for start in range(0, len(keys), HEARTBEAT_BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys[start : start + HEARTBEAT_BATCH]:
                    pipe.zadd(key, by_user[key], xx=True)
                await pipe.execute()

    async def expired(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Remove connections whose instance stopped heart-beating; returns the
        (team, user) pairs that left because of it."""
        left = []
        for raw_team in await self.redis.smembers(self._teams):
            team_id = uuid.UUID(raw_team.decode())
            users = await self.redis.smembers(self._users(team_id))
            if not users:
                await self.redis.srem(self._teams, raw_team)
                continue
            for raw_user in users:
                if await self.leave(team_id, raw_user.decode()):
                    left.append((team_id, uuid.UUID(raw_user.decode())))
        return left

    async def counts(self, team_id: uuid.UUID) -> dict[uuid.UUID, int]:
        """Every present user's live connections, for a socket's welcome: two
        round trips of counts (not of entries), whatever the team's size."""
        now = time.time()
        users = sorted(await self.redis.smembers(self._users(team_id)))
        if not users:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for raw_user in users:
                pipe.zcount(self._conns(team_id, raw_user.decode()), now, "+inf")
            live = await pipe.execute()
        return {
            uuid.UUID(raw_user.decode()): int(n)
            for raw_user, n in zip(users, live, strict=True)
            if n
        }

    async def of_team(self, team_id: uuid.UUID) -> list[Present]:
        """Every present user, with since when (reads every live entry: for the
        presence route, not for each socket's welcome)."""
        now = time.time()
        users = sorted(await self.redis.smembers(self._users(team_id)))
        if not users:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for raw_user in users:
                pipe.zrangebyscore(self._conns(team_id, raw_user.decode()), now, "+inf")
            live = await pipe.execute()
        present = []
        for raw_user, members in zip(users, live, strict=True):
            if members:
                since = min(float(m.decode().rsplit("|", 1)[1]) for m in members)
                present.append(Present(uuid.UUID(raw_user.decode()), len(members), since))
        return present
