"""The service's OpenAPI document names every status each public route can
answer, errors in the contract's shape.

Found by fuzzing the gateway's merged document (tests/e2e/test_fuzz.py): the
routes documented only their success and a 422 in FastAPI's shape, while they
answer 401, 403, 404, 409, ... as API.md says."""

from __future__ import annotations

import httpx

from agenthq_common.testing.openapi import documented_statuses

DOCUMENTED = {
    "GET /v1/teams/{team_id}/activity": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/activity/export": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/activity/verify": {"200", "401", "403", "404", "422"},
}


async def test_every_route_documents_the_statuses_it_answers(
    activity_client: httpx.AsyncClient,
) -> None:
    assert await documented_statuses(activity_client) == DOCUMENTED
