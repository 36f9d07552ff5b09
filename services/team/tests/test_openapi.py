"""The service's OpenAPI document names every status each public route can
answer, errors in the contract's shape.

Found by fuzzing the gateway's merged document (tests/e2e/test_fuzz.py): the
routes documented only their success and a 422 in FastAPI's shape, while they
answer 401, 403, 404, 409, ... as API.md says."""

from __future__ import annotations

import httpx

from agenthq_common.testing.openapi import documented_statuses

DOCUMENTED = {
    "POST /v1/teams": {"201", "400", "401", "422"},
    "GET /v1/teams": {"200", "401", "422"},
    "GET /v1/teams/{team_id}": {"200", "401", "404", "422"},
    "PATCH /v1/teams/{team_id}": {"200", "400", "401", "403", "404", "422"},
    "DELETE /v1/teams/{team_id}": {"204", "401", "403", "404", "422"},
    "POST /v1/teams/{team_id}/transfer-ownership": {"200", "400", "401", "403", "404", "422"},
    "PUT /v1/teams/{team_id}/plan": {"200", "400", "401", "403", "404", "409", "422"},
    "GET /v1/teams/{team_id}/members": {"200", "401", "403", "404", "422"},
    "POST /v1/teams/{team_id}/members": {"201", "400", "401", "403", "404", "409", "422"},
    "PATCH /v1/teams/{team_id}/members/{user_id}": {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "422",
    },
    "DELETE /v1/teams/{team_id}/members/{user_id}": {"204", "401", "403", "404", "409", "422"},
    "POST /v1/teams/{team_id}/invitations": {"201", "400", "401", "403", "404", "409", "422"},
    "GET /v1/teams/{team_id}/invitations": {"200", "401", "403", "404", "422"},
    "DELETE /v1/teams/{team_id}/invitations/{invitation_id}": {
        "204",
        "401",
        "403",
        "404",
        "409",
        "422",
    },
    "POST /v1/invitations/accept": {"200", "400", "401", "403", "404", "409", "410", "422"},
    "GET /v1/teams/{team_id}/roles": {"200", "401", "403", "404", "422"},
    "POST /v1/teams/{team_id}/roles": {"201", "400", "401", "403", "404", "409", "422"},
    "PATCH /v1/teams/{team_id}/roles/{name}": {"200", "400", "401", "403", "404", "409", "422"},
    "DELETE /v1/teams/{team_id}/roles/{name}": {"204", "401", "403", "404", "409", "422"},
    "GET /v1/permissions": {"200", "401"},
    "GET /v1/teams/{team_id}/permissions/check": {"200", "401", "403", "404", "422"},
}


async def test_every_route_documents_the_statuses_it_answers(
    team_client: httpx.AsyncClient,
) -> None:
    assert await documented_statuses(team_client) == DOCUMENTED


async def test_a_rename_documents_that_the_name_is_not_nullable(
    team_client: httpx.AsyncClient,
) -> None:
    """Found by fuzzing: ``{"name": null}`` was documented as valid, and refused."""
    schemas = (await team_client.get("/openapi.json")).json()["components"]["schemas"]
    name = schemas["TeamUpdate"]["properties"]["name"]
    assert name["type"] == "string" and "anyOf" not in name and "default" not in name
