"""The local read model of teams and memberships.

Every service that serves team-scoped routes keeps its own copy, fed by
``team.*`` and ``member.*`` events, so that checking a caller's membership is
one indexed lookup in its own database and never a network call.

Events of one team may arrive out of order, so each row remembers the time of
the event that last wrote it and older events do not overwrite newer state.
Removals and deletions are kept as tombstones for the same reason: a late
``member.added`` must not resurrect a member whose removal was already seen.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import BaseModel
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, func, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from agenthq_common import deps
from agenthq_common.db import UnitOfWork
from agenthq_common.errors import NotFound
from agenthq_common.events import catalog
from agenthq_common.events.envelope import CloudEvent
from agenthq_common.inbox import EventConsumer
from agenthq_common.plumbing import NAMING_CONVENTION

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
    """Feed the read model from ``consumer`` (bind it to ``team.*`` and ``member.*``)."""

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

    @consumer.on("member.added", "member.role_changed", "member.removed")
    async def on_member(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
        keys = {"team_id": data.team_id, "user_id": data.user_id}
        if isinstance(data, catalog.MemberRoleChanged):
            values = {"role": data.new_role, "active": True}
        else:
            values = {"role": data.role, "active": event.type != "member.removed"}
        await _upsert(uow.session, rm_members, keys, values, event.time)


class Membership(BaseModel):
    team_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    is_owner: bool


async def find_membership(
    session: AsyncSession, team_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    row = (
        await session.execute(
            select(rm_members.c.role, rm_teams.c.owner_id)
            .join(rm_teams, rm_teams.c.team_id == rm_members.c.team_id)
            .where(
                rm_members.c.team_id == team_id,
                rm_members.c.user_id == user_id,
                rm_members.c.active.is_(True),
                rm_teams.c.deleted.is_(False),
            )
        )
    ).first()
    if row is None:
        return None
    return Membership(
        team_id=team_id, user_id=user_id, role=row.role, is_owner=row.owner_id == user_id
    )


async def require_member(
    team_id: Annotated[uuid.UUID, Path()],
    user: deps.User,
    uow: deps.Uow,
) -> Membership:
    """The caller's membership of ``{team_id}``; 404 for non-members (never reveal a team)."""
    membership = await find_membership(uow.session, team_id, user.id)
    if membership is None:
        raise NotFound("Team not found", code="team_not_found")
    return membership


Member = Annotated[Membership, Depends(require_member)]
