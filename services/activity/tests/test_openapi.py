"""The service's OpenAPI document names every status each public route can
answer, errors in the contract's shape.

Found by fuzzing the gateway's merged document (tests/e2e/test_fuzz.py): the
routes documented only their success and a 422 in FastAPI's shape, while they
answer 401, 403, 404, 409, ... as API.md says."""

from __future__ import annotations

from typing import Any

import httpx

DOCUMENTED = {
    "GET /v1/teams/{team_id}/activity": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/activity/export": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/activity/verify": {"200", "401", "403", "404", "422"},
}


async def test_every_route_documents_the_statuses_it_answers(
    activity_client: httpx.AsyncClient,
) -> None:
    paths: dict[str, dict[str, Any]] = (await activity_client.get("/openapi.json")).json()["paths"]
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
