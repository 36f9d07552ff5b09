"""Property-based fuzzing of the whole public API (schemathesis) against the
gateway's merged OpenAPI document, with a real user's token and a real team.

Every operation of ``GET /openapi.json`` is a subtest of ``test_public_api``.
Each gets its explicit examples, the coverage cases (boundary and invalid
values, missing required fields, ...) and ``AGENTHQ_FUZZ_EXAMPLES`` (default
15) generated examples, valid and invalid. Requests carry the owner's bearer
token and ``team_id`` is the owner's real team, so they pass tenancy and reach
the services' real validation. The run is seeded (``AGENTHQ_FUZZ_SEED``) and
derandomized, so CI is reproducible. ``make fuzz`` runs it with more examples.

A response fails the run when it is a 5xx, when its status, content type,
headers or body are not the ones the document declares, or when the server
accepted (2xx) a request that violates the document. A summary (operations,
requests, failures) is printed at the end of the session, passing or not.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agenthq_devctl.supervisor import Stack

from .conftest import USAGE_CREDENTIAL, free_port
from .people import add_member, create_team, sign_up

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("AGENTHQ_FUZZ_EXAMPLES", "15"))
SEED = int(os.environ.get("AGENTHQ_FUZZ_SEED", "20250101"))
FUZZ_GATEWAY = "gateway-fuzz"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# Operations that act on a spare team each instead of the fuzzed one: with the
# owner's token they succeed, and the fuzzed team would then be gone (DELETE)
# or no longer the owner's (transfer-ownership), so every operation fuzzed
# after them would meet only 404s and 403s. Nothing is excluded: the
# operations that could end the owner's session are fuzzed like the others
# (POST /v1/auth/logout revokes only the refresh token it is given, and the
# fuzzer knows none of the owner's; access tokens live until they expire).
ON_SPARE_TEAM = ("DELETE /v1/teams/{team_id}", "POST /v1/teams/{team_id}/transfer-ownership")


@dataclass
class Tally:
    """What the run did, printed at the end of the session."""

    documented: set[str] = field(default_factory=set)  # operations of the document
    operations: set[str] = field(default_factory=set)  # those that were called
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    succeeded: set[str] = field(default_factory=set)  # operations with a 2xx answer
    failures: dict[str, set[str]] = field(default_factory=dict)

    def failed(self, operation: str, failure: Failure) -> None:
        self.failures.setdefault(operation, set()).add(f"{failure.title}: {failure.message}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        failures = sum(len(found) for found in self.failures.values())
        terminalreporter.section("schemathesis fuzz")
        terminalreporter.write_line(
            f"max_examples={MAX_EXAMPLES} seed={SEED}: {len(self.operations)} operations, "
            f"{self.requests} requests, {failures} distinct failures "
            f"in {len(self.failures)} operations"
        )
        terminalreporter.write_line(
            f"{len(self.succeeded)} operations answered 2xx at least once; statuses: "
            + ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        )
        if missed := sorted(self.operations - self.succeeded):
            terminalreporter.write_line("never a 2xx: " + ", ".join(missed))
        if untested := sorted(self.documented - self.operations):
            terminalreporter.write_line("NOT CALLED: " + ", ".join(untested))
        for operation, found in sorted(self.failures.items()):
            for failure in sorted(found):
                terminalreporter.write_line(f"  {operation}: {failure.splitlines()[0]}")


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Tally:
    found = Tally()
    request.config.pluginmanager.register(found, f"agenthq-fuzz-tally-{id(found)}")
    return found


@dataclass
class World:
    """The people and teams the fuzzed requests act on."""

    base_url: str
    document: dict[str, Any]
    token: str
    team_id: str
    spare_teams: dict[str, str]  # operation: the team it acts on instead
    # Real values (ids of the fuzzed team's things, ...) by parameter
    # ("path.workspace_id"), mixed into the generated ones.
    known: dict[str, list[str]]


@pytest.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    # A gateway of its own, beside the stack's: rate limits and the login
    # lock-out are off, so that generated requests reach the services' validation
    # instead of a 429 after the first few hundred (the stack's gateway keeps
    # them for the other tests; they are tested in the gateway's own tests);
    # access tokens that outlive a long ``make fuzz``.
    await stack.start_service(
        "gateway",
        name=FUZZ_GATEWAY,
        port=free_port(),
        extra_env={
            "AGENTHQ_RATE_LIMITS": "{}",
            "AGENTHQ_LOGIN_MAX_FAILURES": str(10**9),
            "AGENTHQ_LOGIN_ACCOUNT_MAX_FAILURES": str(10**9),
            "AGENTHQ_ACCESS_TOKEN_TTL_SECONDS": str(24 * 3600),
        },
    )
    try:
        await stack.wait_ready(only={FUZZ_GATEWAY}, timeout=60)
        base_url = stack.processes[FUZZ_GATEWAY].url
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as gateway:
            owner = await sign_up(gateway, "fuzz-owner")
            teammate = await sign_up(gateway, "fuzz-mate")
            team_id = await create_team(gateway, owner, "Fuzzed")
            await add_member(gateway, team_id, owner, teammate, "member")
            spare_teams = {}
            for operation in ON_SPARE_TEAM:
                spare_teams[operation] = await create_team(gateway, owner, f"Spare: {operation}")
                await add_member(gateway, spare_teams[operation], owner, teammate, "member")
            teammate_id = str(teammate["user"]["id"])
            today = datetime.now(UTC)
            known = {
                "path.user_id": [teammate_id],
                "body.user_id": [teammate_id],
                "body.role": ["admin", "member", "viewer", "fuzz-role"],
                "query.permission": ["workspace:create", "member:read", "billing:update"],
                "path.period": [f"{today.year:04d}-{today.month:02d}"],
                "path.workspace_id": await made(
                    gateway, owner, f"/v1/teams/{team_id}/workspaces", {"name": "Fuzzed"}
                ),
                "path.invitation_id": await made(
                    gateway,
                    owner,
                    f"/v1/teams/{team_id}/invitations",
                    {"email": f"fuzz-{uuid.uuid4().hex[:8]}@example.com", "role": "viewer"},
                ),
                "path.name": await made(
                    gateway,
                    owner,
                    f"/v1/teams/{team_id}/roles",
                    {"name": "fuzz-role", "permissions": ["workspace:read"]},
                    key="name",
                ),
            }
            document = (await gateway.get("/openapi.json")).json()
        assert not document["info"].get("x-missing-services"), document["info"]
        served = {
            operation.get("x-service")
            for item in document["paths"].values()
            for operation in item.values()
            if isinstance(operation, dict)
        }
        assert served >= {"team", "workspace", "activity", "usage", "realtime"}, served
        yield World(
            base_url=base_url,
            document=document,
            token=owner["headers"]["Authorization"].removeprefix("Bearer "),
            team_id=team_id,
            spare_teams=spare_teams,
            known=known,
        )
    finally:
        await stack.stop_service(FUZZ_GATEWAY)
        del stack.processes[FUZZ_GATEWAY]


async def made(
    gateway: httpx.AsyncClient, owner: dict[str, Any], path: str, body: Any, key: str = "id"
) -> list[str]:
    response = await gateway.post(path, json=body, headers=owner["headers"])
    assert response.status_code == 201, response.text
    return [str(response.json()[key])]


def fuzz_config(world: World) -> SchemathesisConfig:
    operations: list[dict[str, Any]] = [
        {"include-name": name, "parameters": {"path.team_id": team_id}}
        for name, team_id in world.spare_teams.items()
    ]
    # The usage ingestion route takes a service credential, not a user token:
    # with it, the requests reach the route's validation.
    operations.append(
        {
            "include-name": "POST /v1/usage/events",
            "headers": {"Authorization": f"Bearer {USAGE_CREDENTIAL}"},
        }
    )
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "base-url": world.base_url,
            "headers": {"Authorization": f"Bearer {world.token}", "User-Agent": "agenthq-fuzz"},
            "request-timeout": 15,
            # team_id is always the fuzzed team (else every request is a 404);
            # the other parameters are a real value half of the time.
            "parameters": {
                "path.team_id": world.team_id,
                **{key: {"dictionary": key, "probability": 0.5} for key in world.known},
            },
            "dictionaries": {key: {"values": values} for key, values in world.known.items()},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # Bearer tokens are the headers above, not generated.
                "with-security-parameters": False,
            },
            "operations": operations,
        }
    )


@pytest.fixture(scope="module")
def api_schema(world: World, tally: Tally) -> Any:
    schema = schemathesis.openapi.from_dict(world.document, config=fuzz_config(world))
    # The per-operation settings above apply to the named operations only.
    for result in schema.get_all_operations():
        operation = result.ok()
        tally.documented.add(operation.label)
        overrides = schema.config.operations.get_for_operation(operation)
        overridden = overrides is not None and bool(overrides.headers or overrides.parameters)
        expected = operation.label in (*ON_SPARE_TEAM, "POST /v1/usage/events")
        assert overridden == expected, operation.label
    return schema


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 names each operation's subtest through ``Node._nodeid``,
    an attribute pytest 9.2 no longer has (it keeps the id in ``Node._id``)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
# One test runs every operation: about a minute at 15 examples on two cores.
@pytest.mark.timeout(600 + 10 * MAX_EXAMPLES)
def test_public_api(case: Any, tally: Tally, http: requests.Session) -> None:
    tally.operations.add(case.operation.label)
    tally.requests += 1
    response = case.call(session=http)
    tally.statuses[response.status_code] += 1
    if 200 <= response.status_code < 300:
        tally.succeeded.add(case.operation.label)
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        for failure in group.exceptions:
            tally.failed(case.operation.label, failure)
        raise
    except Failure as failure:
        tally.failed(case.operation.label, failure)
        raise


def test_every_operation_was_called(tally: Tally) -> None:
    assert tally.documented, "no operation in the document"
    assert tally.operations == tally.documented, tally.documented - tally.operations


def test_the_fuzzed_team_is_still_there(world: World) -> None:
    """The operations that would delete the team or give it away acted on spare ones."""
    response = requests.get(
        f"{world.base_url}/v1/teams/{world.team_id}",
        headers={"Authorization": f"Bearer {world.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    team = response.json()
    assert uuid.UUID(team["id"]) == uuid.UUID(world.team_id), json.dumps(team)
