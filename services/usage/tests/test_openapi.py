"""The service's OpenAPI document names every status each public route can
answer, errors in the contract's shape.

Found by fuzzing the gateway's merged document (tests/e2e/test_fuzz.py): the
routes documented only their success and a 422 in FastAPI's shape, while they
answer 401, 403, 404, 409, ... as API.md says."""

from __future__ import annotations

import httpx

from agenthq_common.testing.openapi import documented_statuses

DOCUMENTED = {
    "GET /v1/teams/{team_id}/usage": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/usage/monthly": {"200", "401", "403", "404", "422"},
    "POST /v1/usage/events": {"202", "400", "401", "403", "422"},
    "GET /v1/plans": {"200", "401"},
    "GET /v1/teams/{team_id}/quotas": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/invoices": {"200", "401", "403", "404", "422"},
    "GET /v1/teams/{team_id}/invoices/{period}": {"200", "401", "403", "404", "422"},
}


async def test_every_route_documents_the_statuses_it_answers(
    usage_client: httpx.AsyncClient,
) -> None:
    assert await documented_statuses(usage_client) == DOCUMENTED
