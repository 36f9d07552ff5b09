"""Event handlers of the team service: names and emails of users."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert

from agenthq_common.db import UnitOfWork
from agenthq_common.events import CloudEvent
from agenthq_common.inbox import EventConsumer
from agenthq_team.models import KnownUser


def register_user_handlers(consumer: EventConsumer) -> None:
    @consumer.on("user.registered", "user.updated")
    async def remember_user(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
        values = {"email": data.email.lower(), "name": data.name, "changed_at": event.time}
        stmt = insert(KnownUser).values(id=data.user_id, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[KnownUser.id],
            set_=values,
            where=KnownUser.changed_at <= event.time,  # an older update arriving late loses
        )
        await uow.session.execute(stmt)
