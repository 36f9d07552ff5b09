"""Error answers in each service's OpenAPI document.

Every status a route can answer is documented, with the contract's error body
(``{"error": {"code", "message", "details"}}``):

- the statuses that shared plumbing answers are declared by that plumbing:
  a dependency marked ``@raises(401)`` (the bearer token), ``@raises(404)``
  (tenancy), ``@raises(403)`` (a role's permission); a route with a JSON body
  may get 400 (a body that cannot be read) and a route with parameters 422.
  ``document_errors`` adds them to every route of a router from its
  dependencies, so the document follows the code;
- the statuses of a route's own domain (409 conflicts, 410, an owner-only 403)
  are declared where the route is, with ``responses=error_responses(409)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

F = TypeVar("F", bound=Callable[..., Any])

ERRORS_ATTRIBUTE = "__agenthq_errors__"

DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (a body that cannot be read as JSON)",
    401: "Missing, malformed, expired or otherwise invalid credentials",
    403: "The caller may not do this (their role lacks the permission)",
    404: "Not found (also: the caller is not a member of the team)",
    409: "Conflict with the current state",
    410: "Gone (no longer usable)",
    413: "Request body too large",
    422: "Invalid input: the details name each bad field",
    429: "Rate limited (or over a quota): retry after Retry-After seconds",
    431: "Request headers too large",
    502: "The service behind the gateway failed or answered outside the contract",
    503: "A service or dependency is unavailable: retry after Retry-After seconds",
    504: "The service behind the gateway did not answer in time",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case code clients can branch on")
    message: str = Field(description="Human-readable explanation")
    details: Any = Field(
        default=None, description="Optional: per-field problems for 422, context otherwise"
    )


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route for the error statuses of its own domain."""
    return {
        status: {"model": ErrorResponse, "description": DESCRIPTIONS.get(status, "Error")}
        for status in statuses
    }


def raises(*statuses: int) -> Callable[[F], F]:
    """Mark a dependency with the error statuses it answers, for ``document_errors``."""

    def mark(dependency: F) -> F:
        known = getattr(dependency, ERRORS_ATTRIBUTE, ())
        setattr(dependency, ERRORS_ATTRIBUTE, (*known, *statuses))
        return dependency

    return mark


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _has_parameters(dependant: Dependant) -> bool:
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    ):
        return True
    return any(_has_parameters(sub) for sub in dependant.dependencies)


def statuses_of(route: APIRoute) -> set[int]:
    """The error statuses the shared plumbing of ``route`` can answer."""
    found: set[int] = set()
    for call in _calls(route.dependant):
        found.update(getattr(call, ERRORS_ATTRIBUTE, ()))
    if route.body_field is not None:
        found.add(400)
    if _has_parameters(route.dependant):
        found.add(422)  # in the contract's shape, not FastAPI's default {"detail": [...]}
    return found


def document_errors(router: APIRouter) -> None:
    """Add the statuses of ``statuses_of`` to each route's declared responses
    (those a route declares itself are kept). Call before the router is included."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            responses = dict(route.responses)
            for status, response in error_responses(*statuses_of(route)).items():
                if status not in responses and str(status) not in responses:
                    responses[status] = response
            route.responses = dict(sorted(responses.items(), key=lambda item: str(item[0])))
