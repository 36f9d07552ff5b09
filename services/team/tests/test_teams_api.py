"""POST/GET /v1/teams through HTTP, against the contract of API.md."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from agenthq_common.testing.tokens import TestSigner

TEAM_FIELDS = {
    "id",
    "name",
    "owner_id",
    "plan",
    "max_members",
    "member_count",
    "created_at",
    "updated_at",
}


async def create_team(
    client: httpx.AsyncClient, signer: TestSigner, user: uuid.UUID, **body: Any
) -> dict[str, Any]:
    response = await client.post("/v1/teams", json=body, headers=signer.headers(user))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """The contract's error shape; ``code=None`` accepts any snake_case code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    if code is None:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), error
    else:
        assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error  # type: ignore[no-any-return]


def error_fields(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error.get("details") or []}


def forged_cursor(values: Any) -> str:
    raw = json.dumps(values).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(("plan", "max_members"), [("free", 5), ("pro", 50), ("enterprise", None)])
async def test_create_team_for_each_plan(
    team_client: httpx.AsyncClient, signer: TestSigner, plan: str, max_members: int | None
) -> None:
    user = uuid.uuid4()
    response = await team_client.post(
        "/v1/teams", json={"name": f"Team {plan}", "plan": plan}, headers=signer.headers(user)
    )
    assert response.status_code == 201, response.text
    team = response.json()
    assert set(team) == TEAM_FIELDS
    uuid.UUID(team["id"])
    assert team["name"] == f"Team {plan}"
    assert team["owner_id"] == str(user)
    assert team["plan"] == plan
    assert team["max_members"] == max_members
    assert team["member_count"] == 1
    created = datetime.fromisoformat(team["created_at"])
    updated = datetime.fromisoformat(team["updated_at"])
    assert created.utcoffset() == timedelta(0)
    assert updated.utcoffset() == timedelta(0)
    assert updated >= created
    assert response.headers.get("x-request-id")


async def test_plan_defaults_to_free(team_client: httpx.AsyncClient, signer: TestSigner) -> None:
    team = await create_team(team_client, signer, uuid.uuid4(), name="Default plan")
    assert team["plan"] == "free"
    assert team["max_members"] == 5


async def test_name_is_trimmed(team_client: httpx.AsyncClient, signer: TestSigner) -> None:
    user = uuid.uuid4()
    team = await create_team(team_client, signer, user, name="  \t Acme Corp  \n")
    assert team["name"] == "Acme Corp"
    fetched = await team_client.get(f"/v1/teams/{team['id']}", headers=signer.headers(user))
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "Acme Corp"


async def test_name_of_255_characters_is_accepted(
    team_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    team = await create_team(team_client, signer, uuid.uuid4(), name="x" * 255)
    assert team["name"] == "x" * 255


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": " \t\n "}, "name"),
        ({"name": "x" * 256}, "name"),
        # Found by the fuzzer: trimmed first, padded names longer than the
        # documented maxLength were accepted.
        ({"name": "x" * 255 + " "}, "name"),
        ({"name": "4ö." + "\x85" * 300}, "name"),
        ({}, "name"),
        ({"name": None}, "name"),
        ({"name": 42}, "name"),
        ({"name": "Acme", "plan": "platinum"}, "plan"),
        ({"name": "Acme", "plan": "FREE"}, "plan"),
        ({"name": "Acme", "plan": None}, "plan"),
        ({"name": "Acme", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"name": "Acme", "colour": "blue"}, "colour"),
    ],
)
async def test_bad_create_body_is_422_naming_the_field(
    team_client: httpx.AsyncClient, signer: TestSigner, body: dict[str, Any], field: str
) -> None:
    user = uuid.uuid4()
    response = await team_client.post("/v1/teams", json=body, headers=signer.headers(user))
    error = assert_error(response, 422, "validation_error")
    assert field in error_fields(error), error
    assert field in error["message"]
    # Nothing was created.
    listed = await team_client.get("/v1/teams", headers=signer.headers(user))
    assert listed.json()["items"] == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b'"Acme"', b'{"name": "Acme"'], ids=repr)
async def test_non_json_or_non_object_body_is_422(
    team_client: httpx.AsyncClient, signer: TestSigner, raw: bytes
) -> None:
    response = await team_client.post(
        "/v1/teams",
        content=raw,
        headers=signer.headers(uuid.uuid4(), **{"Content-Type": "application/json"}),
    )
    error = assert_error(response, 422, "validation_error")
    assert error.get("details"), error


async def test_create_without_token_is_401(team_client: httpx.AsyncClient) -> None:
    response = await team_client.post("/v1/teams", json={"name": "Acme"})
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "bearer "],
)
async def test_malformed_token_is_401(team_client: httpx.AsyncClient, authorization: str) -> None:
    response = await team_client.post(
        "/v1/teams", json={"name": "Acme"}, headers={"Authorization": authorization}
    )
    assert_error(response, 401, None)


async def test_token_of_another_signer_is_401(team_client: httpx.AsyncClient) -> None:
    stranger = TestSigner(kid="test-key")  # same kid, different key
    response = await team_client.get("/v1/teams", headers=stranger.headers(uuid.uuid4()))
    assert_error(response, 401, None)


async def test_expired_token_is_401(team_client: httpx.AsyncClient, signer: TestSigner) -> None:
    token = signer.token(uuid.uuid4(), ttl=-120)
    response = await team_client.get("/v1/teams", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, None)


async def test_read_routes_without_token_are_401(team_client: httpx.AsyncClient) -> None:
    assert_error(await team_client.get("/v1/teams"), 401, "unauthorized")
    assert_error(await team_client.get(f"/v1/teams/{uuid.uuid4()}"), 401, "unauthorized")


async def test_list_shows_only_the_callers_teams(
    team_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    mine = [await create_team(team_client, signer, alice, name=f"Alice {i}") for i in range(2)]
    theirs = await create_team(team_client, signer, bob, name="Bob's")

    response = await team_client.get("/v1/teams", headers=signer.headers(alice))
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert page["items"] == mine
    assert page["next_cursor"] is None

    response = await team_client.get("/v1/teams", headers=signer.headers(bob))
    assert response.json()["items"] == [theirs]

    response = await team_client.get("/v1/teams", headers=signer.headers(uuid.uuid4()))
    assert response.json() == {"items": [], "next_cursor": None}


async def test_list_pagination_returns_each_team_once_in_created_order(
    team_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    user = uuid.uuid4()
    created = [await create_team(team_client, signer, user, name=f"T{i}") for i in range(5)]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await team_client.get("/v1/teams", params=params, headers=signer.headers(user))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert pages == 3
    assert [t["id"] for t in seen] == [t["id"] for t in created]
    assert len({t["id"] for t in seen}) == 5
    assert seen == created


async def test_list_page_of_exact_size_ends_with_null_cursor(
    team_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    user = uuid.uuid4()
    created = [await create_team(team_client, signer, user, name=f"E{i}") for i in range(2)]
    response = await team_client.get("/v1/teams", params={"limit": 2}, headers=signer.headers(user))
    assert response.json() == {"items": created, "next_cursor": None}


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc"])
async def test_list_limit_out_of_range_is_422(
    team_client: httpx.AsyncClient, signer: TestSigner, limit: str
) -> None:
    response = await team_client.get(
        "/v1/teams", params={"limit": limit}, headers=signer.headers(uuid.uuid4())
    )
    error = assert_error(response, 422, "validation_error")
    assert "limit" in error_fields(error)


@pytest.mark.parametrize("limit", ["1", "200"])
async def test_list_limit_bounds_are_accepted(
    team_client: httpx.AsyncClient, signer: TestSigner, limit: str
) -> None:
    response = await team_client.get(
        "/v1/teams", params={"limit": limit}, headers=signer.headers(uuid.uuid4())
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "not-a-cursor",
        forged_cursor({"t": "yesterday", "id": str(uuid.uuid4())}),
        forged_cursor({"t": "2026-01-01T00:00:00+00:00", "id": "nope"}),
        forged_cursor({"t": "2026-01-01T00:00:00+00:00"}),
        forged_cursor([1, 2]),
        forged_cursor({"t": 5, "id": 7}),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    ],
)
async def test_list_garbage_cursor_is_422_invalid_cursor(
    team_client: httpx.AsyncClient, signer: TestSigner, cursor: str
) -> None:
    response = await team_client.get(
        "/v1/teams", params={"cursor": cursor}, headers=signer.headers(uuid.uuid4())
    )
    error = assert_error(response, 422, "invalid_cursor")
    assert "cursor" in error_fields(error)


async def test_get_team_as_member(team_client: httpx.AsyncClient, signer: TestSigner) -> None:
    user = uuid.uuid4()
    team = await create_team(team_client, signer, user, name="Mine", plan="pro")
    response = await team_client.get(f"/v1/teams/{team['id']}", headers=signer.headers(user))
    assert response.status_code == 200, response.text
    assert response.json() == team


async def test_get_team_as_non_member_is_404(
    team_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    team = await create_team(team_client, signer, uuid.uuid4(), name="Private")
    response = await team_client.get(
        f"/v1/teams/{team['id']}", headers=signer.headers(uuid.uuid4())
    )
    error = assert_error(response, 404, "team_not_found")
    assert team["id"] not in response.text
    # Indistinguishable from a team that does not exist at all.
    missing = await team_client.get(
        f"/v1/teams/{uuid.uuid4()}", headers=signer.headers(uuid.uuid4())
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == error


@pytest.mark.parametrize("team_id", ["not-a-uuid", "123", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
async def test_get_team_with_malformed_id_is_422(
    team_client: httpx.AsyncClient, signer: TestSigner, team_id: str
) -> None:
    response = await team_client.get(f"/v1/teams/{team_id}", headers=signer.headers(uuid.uuid4()))
    error = assert_error(response, 422, "validation_error")
    assert "team_id" in error_fields(error)


@pytest.mark.parametrize("name", ["Acme\u0000Corp", "\u0000"])
async def test_name_with_a_nul_character_is_422_not_500(
    team_client: httpx.AsyncClient, signer: TestSigner, name: str
) -> None:
    """Valid JSON, but no text column can hold it: bad input, never a 500."""
    response = await team_client.post(
        "/v1/teams", json={"name": name}, headers=signer.headers(uuid.uuid4())
    )
    error = assert_error(response, 422, "validation_error")
    assert "name" in error_fields(error)


async def test_duplicate_json_key_takes_the_last_value(
    team_client: httpx.AsyncClient, signer: TestSigner
) -> None:
    response = await team_client.post(
        "/v1/teams",
        content=b'{"name": "First", "name": "  Second "}',
        headers=signer.headers(uuid.uuid4(), **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Second"


async def test_missing_token_401_carries_www_authenticate(team_client: httpx.AsyncClient) -> None:
    response = await team_client.get("/v1/teams")
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
