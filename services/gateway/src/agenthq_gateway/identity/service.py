"""Identity rules: registration, password login, refresh-token rotation with
reuse detection, logout. Raises domain errors; never commits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from agenthq_common.db import UnitOfWork
from agenthq_common.errors import Conflict, TooManyRequests, Unauthorized
from agenthq_common.events import Actor, registry
from agenthq_gateway.identity.repository import IdentityRepository
from agenthq_gateway.identity.schemas import TokensOut
from agenthq_gateway.identity.tokens import TokenIssuer, hash_refresh_token
from agenthq_gateway.models import RefreshToken, User

SOURCE = "agenthq/gateway"
_hasher = PasswordHasher()
# Verifying against this when the email is unknown makes an unknown account
# take as long as a wrong password, so timing does not reveal who has one.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


def _now() -> datetime:
    return datetime.now(UTC)


async def register(uow: UnitOfWork, actor: Actor, *, email: str, password: str, name: str) -> User:
    repo = IdentityRepository(uow.session)
    email = email.strip().lower()
    if await repo.user_by_email(email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    user = User(id=uuid.uuid4(), email=email, name=name, password_hash=password_hash)
    try:
        async with uow.session.begin_nested():
            await repo.add_user(user)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    uow.publish(
        registry.create(
            "user.registered",
            {"user_id": user.id, "email": user.email, "name": user.name},
            source=SOURCE,
            actor=Actor(user.id, actor.ip, actor.user_agent, actor.traceparent),
            subject=f"user/{user.id}",
        )
    )
    return user


class LoginGuard:
    """Counts failed logins in Redis, twice: per account and address, and per
    account from everywhere.

    Past ``max_failures`` from one address, that address is refused (429) for
    the account until its window passes: a brute force is stopped while the
    owner, elsewhere, still signs in. Past ``account_max_failures`` from all
    addresses together (a distributed attack), everyone is refused, but only
    for the short ``account_window``. A success clears the address's count.
    Requests per address over all accounts are the rate limiter's job.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_failures: int,
        window: int,
        account_max_failures: int,
        account_window: int,
        prefix: str = "",
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}gateway:login-failures"
        self.max_failures = max_failures
        self.window = window
        self.account_max_failures = account_max_failures
        self.account_window = account_window

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        account = f"{self.prefix}:{email.lower()}"
        return f"{account}:{ip}", account

    async def check(self, email: str, ip: str) -> None:
        from_here, everywhere = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (from_here, everywhere):
                pipe.get(key)
                pipe.ttl(key)
            here, here_ttl, total, total_ttl = await pipe.execute()
        for count, limit, ttl in (
            (here, self.max_failures, here_ttl),
            (total, self.account_max_failures, total_ttl),
        ):
            if int(count or 0) >= limit:
                raise TooManyRequests(
                    "Too many failed sign-in attempts; try again later",
                    code="too_many_attempts",
                    headers={"Retry-After": str(max(int(ttl), 1))},
                )

    async def failed(self, email: str, ip: str) -> None:
        from_here, everywhere = self._keys(email, ip)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, window in ((from_here, self.window), (everywhere, self.account_window)):
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            await pipe.execute()

    async def succeeded(self, email: str, ip: str) -> None:
        await self.redis.delete(self._keys(email, ip)[0])


async def _issue(
    repo: IdentityRepository, issuer: TokenIssuer, user: User, family_id: uuid.UUID
) -> TokensOut:
    refresh, refresh_hash = issuer.refresh_token()
    await repo.add_refresh_token(
        RefreshToken(
            id=uuid.uuid4(),
            family_id=family_id,
            user_id=user.id,
            token_hash=refresh_hash,
            expires_at=_now() + timedelta(seconds=issuer.refresh_ttl),
        )
    )
    return TokensOut(
        access_token=issuer.access_token(user.id, user.email),
        refresh_token=refresh,
        expires_in=issuer.access_ttl,
    )


async def login(
    uow: UnitOfWork, issuer: TokenIssuer, guard: LoginGuard, *, email: str, password: str, ip: str
) -> TokensOut:
    await guard.check(email, ip)
    repo = IdentityRepository(uow.session)
    user = await repo.user_by_email(email)
    try:
        await asyncio.to_thread(
            _hasher.verify, user.password_hash if user else _DUMMY_HASH, password
        )
        ok = user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        await guard.failed(email, ip)
        raise Unauthorized("Email or password is wrong", code="invalid_credentials")
    await guard.succeeded(email, ip)
    return await _issue(repo, issuer, user, uuid.uuid4())


class RefreshReused(Unauthorized):
    code = "refresh_token_reused"


async def refresh(uow: UnitOfWork, issuer: TokenIssuer, *, token: str) -> TokensOut:
    """Rotate: spend ``token``, issue its successor. A spent token used again
    means it was stolen: revoke its whole family, so the thief's successor dies too.
    (The caller must commit that revocation although it answers 401.)"""
    repo = IdentityRepository(uow.session)
    row = await repo.refresh_token_for_update(hash_refresh_token(token))
    now = _now()
    if row is None:
        raise Unauthorized("Unknown refresh token", code="invalid_refresh_token")
    if row.revoked_at is not None:
        raise Unauthorized("Refresh token revoked", code="invalid_refresh_token")
    if row.used_at is not None:
        await repo.revoke_family(row.family_id, now)
        raise RefreshReused(
            "Refresh token was already used; every session of it is revoked",
            details={"family_revoked": True},
        )
    if row.expires_at <= now:
        raise Unauthorized("Refresh token expired", code="refresh_token_expired")
    user = await repo.user_by_id(row.user_id)
    if user is None:
        raise Unauthorized("The account no longer exists", code="invalid_refresh_token")
    row.used_at = now
    return await _issue(repo, issuer, user, row.family_id)


async def logout(uow: UnitOfWork, *, token: str) -> None:
    """Revoke the session (the token's family). Unknown tokens are ignored: logout is idempotent."""
    repo = IdentityRepository(uow.session)
    row = await repo.refresh_token_for_update(hash_refresh_token(token))
    if row is not None:
        await repo.revoke_family(row.family_id, _now())


async def logout_everywhere(uow: UnitOfWork, *, user_id: uuid.UUID) -> int:
    """Revoke every session of the user (every refresh token family); access
    tokens already issued live out their short TTL. Returns how many tokens."""
    return await IdentityRepository(uow.session).revoke_all_of_user(user_id, _now())
