"""The local read model of teams and memberships.

Every service that serves team-scoped routes keeps its own copy, fed by
``team.*``, ``member.*`` and ``role.*`` events, so that checking a caller's
permissions is one indexed lookup in its own database, not a network call.

Events of one team may arrive out of order, so each row remembers the time of
the event that last wrote it and older events do not overwrite newer state.
Removals and deletions are kept as tombstones for the same reason: a late
``member.added`` must not resurrect a member whose removal was already seen.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common.auth import CurrentUser
from agenthq_common.authz import BUILT_IN_ROLES, Membership, permissions_of
from agenthq_common.db import UnitOfWork, driver_connection
from agenthq_common.events import catalog
from agenthq_common.events.envelope import CloudEvent
from agenthq_common.inbox import EventConsumer
from agenthq_common.logging import get_logger
from agenthq_common.plumbing import NAMING_CONVENTION

log = get_logger(__name__)

membership_metadata = MetaData(naming_convention=NAMING_CONVENTION)

rm_teams = Table(
    "rm_teams",
    membership_metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(255)),
    Column("owner_id", UUID(as_uuid=True)),
    Column("plan", String(50)),
    Column("max_members", Integer),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

rm_members = Table(
    "rm_members",
    membership_metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True, index=True),
    Column("role", String(100), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)


rm_roles = Table(
    "rm_roles",
    membership_metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("permissions", ARRAY(String(100)), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)


async def _upsert(
    session: AsyncSession, table: Table, keys: dict[str, Any], values: dict[str, Any], at: datetime
) -> None:
    """Insert, or overwrite only if this event is not older than what is stored."""
    stmt = insert(table).values(**keys, **values, changed_at=at)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={**values, "changed_at": at},
        where=table.c.changed_at <= at,
    )
    await session.execute(stmt)


def register_membership_handlers(consumer: EventConsumer) -> None:
    """Feed the read model from ``consumer`` (bound to ``team.*``, ``member.*``, ``role.*``)."""

    @consumer.on(
        "team.created",
        "team.updated",
        "team.plan_changed",
        "team.ownership_transferred",
        "team.deleted",
    )
    async def on_team(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
        values: dict[str, Any] = {}
        if isinstance(data, catalog.TeamCreated):
            values = {
                "name": data.name,
                "owner_id": data.owner_id,
                "plan": data.plan,
                "max_members": data.max_members,
            }
        elif isinstance(data, catalog.TeamUpdated):
            values = {"name": data.name}
        elif isinstance(data, catalog.TeamPlanChanged):
            values = {"plan": data.new_plan, "max_members": data.max_members}
        elif isinstance(data, catalog.TeamOwnershipTransferred):
            values = {"owner_id": data.new_owner_id}
        if event.type == "team.deleted":
            # A deletion is final and wins over any other event, whatever its time.
            stmt = insert(rm_teams).values(
                team_id=data.team_id, changed_at=event.time, deleted=True
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["team_id"],
                set_={
                    "deleted": True,
                    "changed_at": func.greatest(rm_teams.c.changed_at, event.time),
                },
            )
            await uow.session.execute(stmt)
            return
        # A deletion is final: no later-arriving earlier event may revive the team.
        stmt = insert(rm_teams).values(
            team_id=data.team_id, changed_at=event.time, deleted=False, **values
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["team_id"],
            set_={**values, "changed_at": event.time},
            where=(rm_teams.c.changed_at <= event.time) & (rm_teams.c.deleted.is_(False)),
        )
        await uow.session.execute(stmt)

    @consumer.on("role.created", "role.updated", "role.deleted")
    async def on_role(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
        values = {"permissions": list(data.permissions), "deleted": event.type == "role.deleted"}
        await _upsert(
            uow.session, rm_roles, {"team_id": data.team_id, "name": data.name}, values, event.time
        )

    @consumer.on("member.added", "member.role_changed", "member.removed")
    async def on_member(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
        keys = {"team_id": data.team_id, "user_id": data.user_id}
        if isinstance(data, catalog.MemberRoleChanged):
            values = {"role": data.new_role, "active": True}
        else:
            values = {"role": data.role, "active": event.type != "member.removed"}
        await _upsert(uow.session, rm_members, keys, values, event.time)


# One indexed lookup (the primary keys of rm_members, rm_teams and rm_roles),
# sent as plain SQL on the session's own connection: on this path, building and
# compiling a SQLAlchemy statement costs more than running the query.
_RESOLVE = """
SELECT m.role, m.active, t.owner_id, t.deleted, r.permissions, r.deleted AS role_deleted
FROM rm_members m
LEFT JOIN rm_teams t ON t.team_id = m.team_id
LEFT JOIN rm_roles r ON r.team_id = m.team_id AND r.name = m.role
WHERE m.team_id = $1 AND m.user_id = $2
"""


class ReadModelResolver:
    """Memberships from the local read model, with read-your-writes.

    When the read model has never heard of a (team, user) pair, the events
    may simply not have arrived yet (a client that creates a team and at once
    calls another service). Then the team service is asked once, with the
    caller's own token, and the answer is cached for ``fallback_ttl`` seconds:
    short, so a removal still takes effect everywhere within a second. A pair
    the read model knows as removed (or whose team it knows as deleted) is
    never overridden by the fallback; one whose team or custom role it has
    not seen yet is asked about.
    """

    def __init__(
        self,
        team_url: str | None,
        *,
        fallback_ttl: float = 1.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.team_url = team_url.rstrip("/") if team_url else None
        self.fallback_ttl = fallback_ttl
        self._client = client or httpx.AsyncClient(timeout=2.0)
        self._cache: dict[tuple[uuid.UUID, uuid.UUID], tuple[float, Membership | None]] = {}

    async def resolve(
        self, session: AsyncSession, team_id: uuid.UUID, user: CurrentUser, token: str
    ) -> Membership | None:
        row = await (await driver_connection(session)).fetchrow(_RESOLVE, team_id, user.id)
        if row is not None:
            if not row["active"] or row["deleted"]:
                return None  # removed, or the team is gone: final, whatever else lags
            team_known = row["deleted"] is not None
            role_known = row["role"] in BUILT_IN_ROLES or row["role_deleted"] is not None
            if team_known and role_known:
                custom = None if row["role_deleted"] else frozenset(row["permissions"] or ())
                return Membership(
                    team_id=team_id,
                    user_id=user.id,
                    role=row["role"],
                    is_owner=row["owner_id"] == user.id,
                    permissions=permissions_of(row["role"], custom),
                )
            # The member is known but its team or custom role is still on its
            # way: ask, rather than answer from half a picture.
        return await self._ask_team_service(team_id, user.id, token)

    async def _ask_team_service(
        self, team_id: uuid.UUID, user_id: uuid.UUID, token: str
    ) -> Membership | None:
        if self.team_url is None:
            return None
        key = (team_id, user_id)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        membership: Membership | None = None
        try:
            response = await self._client.get(
                f"{self.team_url}/internal/v1/teams/{team_id}/membership",
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 200:
                body = response.json()
                membership = Membership(
                    team_id=team_id,
                    user_id=user_id,
                    role=body["role"],
                    is_owner=bool(body["is_owner"]),
                    permissions=frozenset(body["permissions"]),
                )
            elif response.status_code != 404:
                log.warning("membership fallback failed", status=response.status_code)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("membership fallback failed", error=repr(exc))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self.fallback_ttl, membership)
        return membership

    async def aclose(self) -> None:
        await self._client.aclose()
