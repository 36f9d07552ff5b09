"""The service's OpenAPI document names every status each public route can
answer, errors in the contract's shape.

Found by fuzzing the gateway's merged document (tests/e2e/test_fuzz.py): the
routes documented only their success and a 422 in FastAPI's shape, while they
answer 401, 403, 404, 409, ... as API.md says."""

from __future__ import annotations

from typing import Any

import httpx

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
    paths: dict[str, dict[str, Any]] = (await workspace_client.get("/openapi.json")).json()["paths"]
    documented = {
        f"{method.upper()} {path}": operation["responses"]
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    }
    assert {label: set(responses) for label, responses in documented.items()} == DOCUMENTED
    for label, responses in documented.items():
        for status, response in responses.items():
            if not status.startswith("2"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (label, status)


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
