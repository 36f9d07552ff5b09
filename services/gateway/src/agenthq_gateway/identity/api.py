from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from agenthq_common.deps import Uow, User
from agenthq_common.errors import NotFound
from agenthq_common.events import Actor
from agenthq_common.openapi import error_responses, raises
from agenthq_common.tracing import current_traceparent
from agenthq_gateway.context import GatewayContext, get_gateway
from agenthq_gateway.identity import service
from agenthq_gateway.identity.repository import IdentityRepository
from agenthq_gateway.identity.schemas import (
    LoginIn,
    MeOut,
    RefreshIn,
    RegisterIn,
    TeamRef,
    TokensOut,
    UserOut,
)
from agenthq_gateway.proxy import forwarded_for

Gateway = Annotated[GatewayContext, Depends(get_gateway)]


def _client_ip(request: Request) -> str:
    # The gateway faces clients: their X-Forwarded-For is believed only from
    # trusted proxies (services behind it can trust the one it writes).
    return forwarded_for(request, get_gateway(request).upstreams.trusted_proxies)


@raises(429)
async def _rate_limited(request: Request, response: Response) -> None:
    """The auth routes' limit, per client address (no caller is known yet)."""
    verdict = await get_gateway(request).limiter.admit("auth", ip=_client_ip(request))
    if verdict is not None:
        verdict.enforce()
        response.headers.update(verdict.headers())


router = APIRouter(tags=["identity"])
auth_router = APIRouter(tags=["identity"], dependencies=[Depends(_rate_limited)])


def _anonymous_actor(request: Request) -> Actor:
    return Actor(
        ip=_client_ip(request),
        user_agent=request.headers.get("user-agent"),
        traceparent=current_traceparent(),
    )


@auth_router.post(
    "/v1/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=error_responses(409),
)
async def register(body: RegisterIn, request: Request, uow: Uow) -> UserOut:
    user = await service.register(
        uow,
        _anonymous_actor(request),
        email=str(body.email),
        password=body.password,
        name=body.name,
    )
    return UserOut.model_validate(user, from_attributes=True)


@auth_router.post("/v1/auth/login", response_model=TokensOut, responses=error_responses(401))
async def login(body: LoginIn, request: Request, uow: Uow, gateway: Gateway) -> TokensOut:
    return await service.login(
        uow,
        gateway.issuer,
        gateway.login_guard,
        email=body.email,
        password=body.password,
        ip=_client_ip(request),
    )


@auth_router.post("/v1/auth/refresh", response_model=TokensOut, responses=error_responses(401))
async def refresh(body: RefreshIn, uow: Uow, gateway: Gateway) -> TokensOut:
    try:
        return await service.refresh(uow, gateway.issuer, token=body.refresh_token)
    except service.RefreshReused:
        await uow.commit()  # the family's revocation must stick although we answer 401
        raise


@auth_router.post("/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshIn, uow: Uow) -> Response:
    await service.logout(uow, token=body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/me", response_model=MeOut, responses=error_responses(404))
async def me(user: User, uow: Uow) -> MeOut:
    repo = IdentityRepository(uow.session)
    found = await repo.user_by_id(user.id)
    if found is None:
        raise NotFound("User not found", code="user_not_found")
    teams = [TeamRef(id=t, name=n, role=r) for t, n, r in await repo.teams_of(user.id)]
    return MeOut(**UserOut.model_validate(found, from_attributes=True).model_dump(), teams=teams)


@router.get("/.well-known/jwks.json", tags=["identity"])
async def jwks(gateway: Gateway) -> dict[str, Any]:
    return gateway.keys.jwks
