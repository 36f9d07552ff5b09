"""Telling a dependency's outage from a bug.

A database, Redis or broker that cannot be reached is a passing state, not
a property of the request or message in hand: HTTP answers it with ``503``
and ``Retry-After`` (the client should simply retry), and consumers retry
the message until the dependency is back instead of spending the retries
meant for bad messages on it (which would dead-letter events that nothing
is wrong with: the failure drills lost hundreds that way in a 10 s outage).
"""

from __future__ import annotations

import asyncpg
import redis.exceptions
from sqlalchemy.exc import DBAPIError

_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # builtin: refused, reset, broken pipe
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,  # "connection is closed"
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says a dependency was unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False
