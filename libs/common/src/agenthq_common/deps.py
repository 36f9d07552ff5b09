"""FastAPI dependencies shared by every service's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from agenthq_common.auth import CurrentUser, bearer_token
from agenthq_common.db import UnitOfWork
from agenthq_common.events.envelope import Actor
from agenthq_common.http import client_ip
from agenthq_common.openapi import raises
from agenthq_common.tracing import current_traceparent

if TYPE_CHECKING:
    from agenthq_common.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


@raises(401)
async def get_current_user(request: Request) -> CurrentUser:
    user: CurrentUser = await get_service(request).verifier.verify(bearer_token(request))
    request.state.user = user
    return user


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async with get_service(request).db.unit_of_work() as uow:
        yield uow


def get_actor(request: Request, user: Annotated[CurrentUser, Depends(get_current_user)]) -> Actor:
    return Actor(
        id=user.id,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        traceparent=current_traceparent(),
    )


User = Annotated[CurrentUser, Depends(get_current_user)]
# scope="function": the unit of work commits before the response is sent, so
# a client that reads right after a write sees it, and a failed commit is the
# response the client gets.
Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
ActorDep = Annotated[Actor, Depends(get_actor)]
