"""Every status a route can answer is in its OpenAPI document, with the
contract's error body: the shared plumbing's (401, 403, 404, 400, 422) from the
route's dependencies, the route's own (409, 410, ...) from ``responses=``.

Found by fuzzing the merged document: the routes documented only their
success and FastAPI's 422 (in FastAPI's ``{"detail": [...]}`` shape, not ours)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel

from agenthq_common.authz import Member, require
from agenthq_common.deps import Uow, User
from agenthq_common.openapi import document_errors, error_responses, raises
from agenthq_common.schemas import Limit

CanCreate = require("workspace:create")


class Body(BaseModel):
    name: str


@raises(401, 403)
def service_credential(request: Request) -> None:
    """A dependency of a service's own that answers 401 and 403."""


def documented() -> dict[str, dict[str, Any]]:
    router = APIRouter()

    @router.get("/v1/plain")
    async def plain() -> dict[str, str]:
        return {}

    @router.get("/v1/me")
    async def me(_: User) -> dict[str, str]:
        return {}

    @router.get("/v1/teams")
    async def teams(_: User, uow: Uow, limit: Limit = 50) -> dict[str, str]:
        return {}

    @router.get("/v1/teams/{team_id}")
    async def team(member: Member) -> dict[str, str]:
        return {}

    @router.post("/v1/teams/{team_id}/things", status_code=201, responses=error_responses(409))
    async def create_thing(body: Body, member: CanCreate) -> None:
        return None

    @router.delete("/v1/teams/{team_id}", status_code=204, responses={"403": {"description": "x"}})
    async def delete_team(member: Member) -> None:
        return None

    @router.post("/v1/events", status_code=202, dependencies=[Depends(service_credential)])
    async def events(body: list[Body]) -> None:
        return None

    document_errors(router)
    document_errors(router)  # twice (an app per test): the same document
    app = FastAPI()
    app.include_router(router)
    return app.openapi()["paths"]  # type: ignore[no-any-return]


def statuses(paths: dict[str, dict[str, Any]], method: str, path: str) -> list[str]:
    return list(paths[path][method]["responses"])


def test_each_route_documents_the_statuses_of_its_dependencies() -> None:
    paths = documented()
    assert statuses(paths, "get", "/v1/plain") == ["200"]
    assert statuses(paths, "get", "/v1/me") == ["200", "401"]
    assert statuses(paths, "get", "/v1/teams") == ["200", "401", "422"]
    assert statuses(paths, "get", "/v1/teams/{team_id}") == ["200", "401", "404", "422"]
    assert statuses(paths, "post", "/v1/teams/{team_id}/things") == [
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "422",
    ]
    # A status the route declares itself (here as a string) is kept, not doubled.
    assert statuses(paths, "delete", "/v1/teams/{team_id}") == ["204", "401", "403", "404", "422"]
    assert paths["/v1/teams/{team_id}"]["delete"]["responses"]["403"]["description"] == "x"
    assert statuses(paths, "post", "/v1/events") == ["202", "400", "401", "403", "422"]


def test_error_statuses_have_the_contract_s_error_body() -> None:
    paths = documented()
    responses = paths["/v1/teams/{team_id}/things"]["post"]["responses"]
    for status in ("400", "401", "403", "404", "409", "422"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, status
        assert responses[status]["description"]


def test_the_error_body_schema() -> None:
    router = APIRouter()

    @router.get("/v1/me")
    async def me(_: User) -> dict[str, str]:
        return {}

    document_errors(router)
    app = FastAPI()
    app.include_router(router)
    schemas = app.openapi()["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "details"}
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is not ours
