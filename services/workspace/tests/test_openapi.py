"""The service's OpenAPI document names every status each public route can
answer, errors in the contract's shape.

Found by fuzzing the gateway's merged document (tests/e2e/test_fuzz.py): the
routes documented only their success and a 422 in FastAPI's shape, while they
answer 401, 403, 404, 409, ... as API.md says."""

from __future__ import annotations

import httpx

from agenthq_common.testing.openapi import documented_statuses

DOCUMENTED = {
    "POST /v1/teams/{team_id}/workspaces": {"201", "400", "401", "403", "404", "409", "422"},
    "GET /v1/teams/{team_id}/workspaces": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/workspaces/{workspace_id}": {"200", "401", "403", "404", "422"},
    "PATCH /v1/teams/{team_id}/workspaces/{workspace_id}": {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "422",
    },
    "DELETE /v1/teams/{team_id}/workspaces/{workspace_id}": {"204", "401", "403", "404", "422"},
}


async def test_every_route_documents_the_statuses_it_answers(
    workspace_client: httpx.AsyncClient,
) -> None:
    assert await documented_statuses(workspace_client) == DOCUMENTED


async def test_an_update_documents_which_fields_are_not_nullable(
    workspace_client: httpx.AsyncClient,
) -> None:
    """Found by fuzzing: ``{"name": null}`` and ``{"archived": null}`` were
    documented as valid, and refused; a null description clears it."""
    schemas = (await workspace_client.get("/openapi.json")).json()["components"]["schemas"]
    fields = schemas["WorkspaceUpdate"]["properties"]
    assert fields["name"]["type"] == "string" and "anyOf" not in fields["name"]
    assert fields["archived"] == {"title": "Archived", "type": "boolean"}
    assert {"type": "null"} in fields["description"]["anyOf"]
