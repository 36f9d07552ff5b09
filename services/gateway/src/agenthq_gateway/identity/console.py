"""Sessions of the web console: the refresh token lives in a cookie.

A browser script never sees the console's refresh token: it is set as an
``HttpOnly; SameSite=Strict`` cookie scoped to these routes, so an injected
script cannot steal it and another site cannot make the browser send it. The
access token (short-lived) is answered in the body and kept in memory only.
Refresh and logout also require the ``X-AgentHQ-Console`` header: a form on
another site cannot set it, and a script on another origin cannot send it
without a CORS preflight that the gateway refuses (defence in depth beside
SameSite). API clients use the body-based ``/v1/auth/*`` routes instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Header, Request, Response, status
from pydantic import BaseModel

from agenthq_common.deps import Uow, User
from agenthq_common.errors import Unauthorized
from agenthq_common.openapi import error_responses, raises
from agenthq_gateway.identity import service
from agenthq_gateway.identity.api import Gateway, _client_ip, _rate_limited
from agenthq_gateway.identity.schemas import LoginIn, TokensOut

COOKIE = "agenthq_refresh"
COOKIE_PATH = "/v1/auth/console"
CONSOLE_HEADER = "X-AgentHQ-Console"


class ConsoleTokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class LoggedOutOut(BaseModel):
    revoked: int


@raises(401)
async def _from_console(
    x_agenthq_console: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    if x_agenthq_console != "1":
        raise Unauthorized(
            f"Console session routes need the {CONSOLE_HEADER}: 1 header",
            code="console_header_missing",
        )


router = APIRouter(tags=["identity"], dependencies=[Depends(_rate_limited)])
RefreshCookie = Annotated[str | None, Cookie(alias=COOKIE, include_in_schema=False)]


def _answer(
    request: Request, response: Response, tokens: TokensOut, max_age: int, secure: bool
) -> ConsoleTokenOut:
    response.set_cookie(
        COOKIE,
        tokens.refresh_token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        # Over TLS the cookie never travels in clear. Behind a proxy that
        # ends TLS the request looks like http: console_cookie_secure says so.
        secure=secure or request.url.scheme == "https",
    )
    return ConsoleTokenOut(access_token=tokens.access_token, expires_in=tokens.expires_in)


def _forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


@router.post(
    "/v1/auth/console/login",
    response_model=ConsoleTokenOut,
    responses=error_responses(401),
    summary="Sign in to the console: access token in the body, refresh token as a cookie",
)
async def console_login(
    body: LoginIn, request: Request, response: Response, uow: Uow, gateway: Gateway
) -> ConsoleTokenOut:
    tokens = await service.login(
        uow,
        gateway.issuer,
        gateway.login_guard,
        email=body.email,
        password=body.password,
        ip=_client_ip(request),
    )
    return _answer(request, response, tokens, gateway.issuer.refresh_ttl, gateway.cookie_secure)


@router.post(
    "/v1/auth/console/refresh",
    response_model=ConsoleTokenOut,
    responses=error_responses(401),
    dependencies=[Depends(_from_console)],
    summary="A new access token from the session cookie (which rotates)",
)
async def console_refresh(
    request: Request, response: Response, uow: Uow, gateway: Gateway, cookie: RefreshCookie = None
) -> ConsoleTokenOut:
    if not cookie:
        raise Unauthorized("No console session", code="invalid_refresh_token")
    try:
        tokens = await service.refresh(uow, gateway.issuer, token=cookie)
    except service.RefreshReused:
        await uow.commit()  # the family's revocation must stick although we answer 401
        raise
    return _answer(request, response, tokens, gateway.issuer.refresh_ttl, gateway.cookie_secure)


@router.post(
    "/v1/auth/console/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(_from_console)],
    summary="End this console session (idempotent)",
)
async def console_logout(uow: Uow, cookie: RefreshCookie = None) -> Response:
    answer = Response(status_code=status.HTTP_204_NO_CONTENT)
    if cookie:
        await service.logout(uow, token=cookie)
    _forget(answer)
    return answer


@router.post(
    "/v1/auth/logout-everywhere",
    response_model=LoggedOutOut,
    responses=error_responses(),
    summary="End every session of the caller, console and API alike",
)
async def logout_everywhere(user: User, uow: Uow, response: Response) -> LoggedOutOut:
    revoked = await service.logout_everywhere(uow, user_id=user.id)
    _forget(response)
    return LoggedOutOut(revoked=revoked)
