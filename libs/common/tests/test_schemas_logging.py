"""Cursors and pages, log redaction, and the settings' environment variable names."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar

import pytest
from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from agenthq_common.errors import Unprocessable
from agenthq_common.logging import redact
from agenthq_common.schemas import (
    IsoDate,
    IsoDateTime,
    Omittable,
    Page,
    StrictModel,
    decode_cursor,
    decode_time_id_cursor,
    encode_cursor,
    encode_time_id_cursor,
    paginate,
)
from agenthq_common.settings import ServiceSettings, env_names

# --- cursors ------------------------------------------------------------------------------


def raw_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def assert_invalid_cursor(exc: Unprocessable) -> None:
    assert exc.status == 422
    assert exc.code == "invalid_cursor"
    body = exc.body()
    assert body["error"]["code"] == "invalid_cursor"
    assert body["error"]["details"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    "values",
    [
        {"t": "2026-11-24T10:00:00+00:00", "id": str(uuid.uuid4())},
        {"name": "ünïcödé ✓", "n": 42},
        {"a": None, "b": [1, 2], "c": {"d": True}},
        {"x": "?&=/+"},
    ],
)
async def test_cursor_round_trip(values: dict[str, Any]) -> None:
    cursor = encode_cursor(values)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL-safe
    assert decode_cursor(cursor, tuple(values)) == values


async def test_decode_cursor_none() -> None:
    assert decode_cursor(None, ("t", "id")) is None
    assert decode_time_id_cursor(None) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!!",
        "%%%%",
        "a",
        "é",
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        raw_cursor([1, 2]),
        raw_cursor("string"),
        raw_cursor(None),
        raw_cursor(5),
        raw_cursor({"t": "x"}),  # missing a key
        raw_cursor({"t": "x", "id": "y", "extra": 1}),  # one too many
        raw_cursor({"a": 1, "b": 2}),  # another list's cursor
    ],
)
async def test_decode_cursor_garbage_or_wrong_keys(cursor: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_cursor(cursor, ("t", "id"))
    assert_invalid_cursor(caught.value)


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
        datetime.now(UTC),
    ],
)
async def test_time_id_cursor_round_trip(at: datetime) -> None:
    ident = uuid.uuid4()
    decoded = decode_time_id_cursor(encode_time_id_cursor(at, ident))
    assert decoded == (at, ident)
    assert decoded is not None and decoded[0].utcoffset() == timedelta(0)  # normalised to UTC


@pytest.mark.parametrize(
    "values",
    [
        {"t": "yesterday", "id": str(uuid.uuid4())},
        {"t": "2026-11-24T10:00:00+00:00", "id": "not-a-uuid"},
        {"t": None, "id": str(uuid.uuid4())},
        {"t": 5, "id": str(uuid.uuid4())},
        {"t": "2026-11-24T10:00:00+00:00", "id": None},
        # Forged cursors whose id is JSON but not a string must be a 422, never a 500.
        {"t": "2026-11-24T10:00:00+00:00", "id": 12345},
        {"t": "2026-11-24T10:00:00+00:00", "id": ["a"]},
        {"t": "2026-11-24T10:00:00+00:00", "id": {"x": 1}},
    ],
    ids=[
        "t-not-iso",
        "id-not-uuid",
        "t-null",
        "t-int",
        "id-null",
        "id-int",
        "id-list",
        "id-object",
    ],
)
async def test_time_id_cursor_with_bad_values(values: dict[str, Any]) -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_time_id_cursor(encode_cursor(values))
    assert_invalid_cursor(caught.value)


async def test_time_id_cursor_of_another_shape() -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_time_id_cursor(encode_cursor({"name": "a", "id": str(uuid.uuid4())}))
    assert_invalid_cursor(caught.value)


async def test_paginate() -> None:
    rows = list(range(11))
    page, cursor = paginate(rows, 10, lambda r: f"c{r}")
    assert page == list(range(10))
    assert cursor == "c9"  # the last row of the page, not the extra one

    page, cursor = paginate(rows[:10], 10, lambda r: f"c{r}")
    assert page == list(range(10))
    assert cursor is None

    page, cursor = paginate(rows[:3], 10, lambda r: f"c{r}")
    assert (page, cursor) == ([0, 1, 2], None)

    assert paginate([], 10, str) == ([], None)
    assert paginate([1, 2], 1, str) == ([1], "1")


async def test_paginate_walks_every_row_once() -> None:
    ids = sorted(uuid.uuid4() for _ in range(23))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(start + timedelta(seconds=i // 3), ident) for i, ident in enumerate(ids)]
    rows.sort()
    seen: list[tuple[datetime, uuid.UUID]] = []
    cursor: str | None = None
    for _ in range(10):
        position = decode_time_id_cursor(cursor)
        after = [r for r in rows if position is None or r > position]
        page, cursor = paginate(after[:6], 5, lambda r: encode_time_id_cursor(*r))
        seen.extend(page)
        if cursor is None:
            break
    assert seen == rows


async def test_page_model() -> None:
    page = Page[int](items=[1, 2], next_cursor=None)
    assert page.model_dump() == {"items": [1, 2], "next_cursor": None}


# --- request bodies and parameters (found by fuzzing the OpenAPI document) ---------------


class Named(StrictModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5)]
    slug: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")] | None = None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": " abc "}, Named(name="abc")),  # trimmed
        ({"name": "abcde"}, Named(name="abcde")),
        ({"name": "a", "slug": "ok"}, Named(name="a", slug="ok")),
    ],
)
async def test_strict_model_trims_what_the_document_allows(
    body: dict[str, Any], expected: Named
) -> None:
    assert Named.model_validate(body) == expected


@pytest.mark.parametrize(
    ("body", "error"),
    [
        # Longer than the documented maxLength as sent, however short once trimmed.
        ({"name": "abcde "}, "string_too_long"),
        ({"name": "a" + "\x85" * 10}, "string_too_long"),
        ({"name": "   "}, "string_too_short"),
        ({"name": "a", "slug": "ok\n"}, "string_pattern_mismatch"),
    ],
)
async def test_strict_model_refuses_what_the_document_refuses(
    body: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Named.model_validate(body)
    [found] = raised.value.errors()
    assert found["type"] == error
    assert found["loc"] == (next(iter(body)) if len(body) == 1 else "slug",)


class Patch(StrictModel):
    name: Omittable[Annotated[str, StringConstraints(max_length=5)]] = None
    note: str | None = None


async def test_an_omittable_field_may_be_left_out_but_not_null() -> None:
    assert Patch.model_validate({}).model_fields_set == set()
    assert Patch.model_validate({"name": "x"}).name == "x"
    with pytest.raises(ValidationError) as raised:
        Patch.model_validate({"name": None})
    assert [e["loc"] for e in raised.value.errors()] == [("name",)]
    properties = Patch.model_json_schema()["properties"]
    assert properties["name"] == {"maxLength": 5, "title": "Name", "type": "string"}
    assert {"type": "null"} in properties["note"]["anyOf"]  # a plain optional stays nullable


@pytest.mark.parametrize("value", [0, 1.5, True, "0", "0.5", "1700000000", " -1 ", "1e9"])
async def test_times_and_days_are_text_not_numbers(value: Any) -> None:
    for kind in (IsoDateTime, IsoDate):
        with pytest.raises(ValidationError):
            TypeAdapter(kind).validate_python(value)


async def test_times_are_in_utc_and_within_the_calendar() -> None:
    times = TypeAdapter(IsoDateTime)
    assert times.validate_python("2026-09-01T09:00:00+09:00") == datetime(2026, 9, 1, tzinfo=UTC)
    assert times.validate_python("2026-09-01") == datetime(2026, 9, 1, tzinfo=UTC)
    for beyond in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):
        with pytest.raises(ValidationError, match="outside the years 1 to 9999"):
            times.validate_python(beyond)
    assert TypeAdapter(IsoDate).validate_python("2026-09-01") == date(2026, 9, 1)
    assert TypeAdapter(IsoDateTime).json_schema() == {"type": "string", "format": "date-time"}
    assert TypeAdapter(IsoDate).json_schema() == {"type": "string", "format": "date"}


# --- redaction ----------------------------------------------------------------------------

JWT = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6InRlc3Qta2V5IiwidHlwIjoiSldUIn0"
    ".eyJzdWIiOiIxMjMiLCJleHAiOjE3MDAwMDAwMDB9"
    ".c2lnbmF0dXJlLWJ5dGVzLWdvLWhlcmUtYW5kLWhlcmU"
)
UNSIGNED_JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ."


async def test_redact_jwt_in_strings() -> None:
    assert redact(f"Bearer {JWT}") == "Bearer [redacted-jwt]"
    assert JWT not in redact(f"token was {JWT}, then {JWT}!")
    assert redact(f"unsigned {UNSIGNED_JWT} here") == "unsigned [redacted-jwt] here"
    assert redact("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ws?token=abc123&x=1", "/ws?token=[redacted]&x=1"),
        ("GET /ws?team=1&token=s3cr3t HTTP/1.1", "GET /ws?team=1&token=[redacted] HTTP/1.1"),
        ("/cb?access_token=zzz", "/cb?access_token=[redacted]"),
        ("/cb?refresh_token=zzz&a=b", "/cb?refresh_token=[redacted]&a=b"),
        ("/ws?TOKEN=abc", "/ws?TOKEN=[redacted]"),
    ],
)
async def test_redact_token_query_params(value: str, expected: str) -> None:
    assert redact(value) == expected


async def test_redact_secret_keys_recursively() -> None:
    event = {
        "event": "request",
        "Authorization": f"Bearer {JWT}",
        "password": "hunter2",
        "refresh_token": "opaque-refresh",
        "user": {"name": "ann", "password": "p@ss", "nested": [{"refresh_token": "r1"}]},
        "headers": [("x", "y"), {"authorization": "Basic abc"}],
        "url": f"/ws?token={JWT}",
        "count": 3,
        "none": None,
    }
    out = redact(event)
    assert out["event"] == "request"
    assert out["Authorization"] == "[redacted]"
    assert out["password"] == "[redacted]"
    assert out["refresh_token"] == "[redacted]"
    assert out["user"]["name"] == "ann"
    assert out["user"]["password"] == "[redacted]"
    assert out["user"]["nested"] == [{"refresh_token": "[redacted]"}]
    assert out["headers"][1] == {"authorization": "[redacted]"}
    assert out["headers"][0] == ["x", "y"]
    assert out["url"] == "/ws?token=[redacted]"
    assert out["count"] == 3
    assert out["none"] is None
    text = json.dumps(out)
    for secret in ("hunter2", "p@ss", "opaque-refresh", "r1", "Basic abc", JWT):
        assert secret not in text
    # The input is left as it was.
    assert event["password"] == "hunter2"


async def test_redact_lists_of_strings() -> None:
    assert redact([JWT, "ok", ("/a?token=t",)]) == ["[redacted-jwt]", "ok", ["/a?token=[redacted]"]]


# --- settings -----------------------------------------------------------------------------


class ExampleSettings(ServiceSettings):
    service_name: ClassVar[str] = "example"
    database_url: str | None = Field(default=None, validation_alias="AGENTHQ_EXAMPLE_DATABASE_URL")


async def test_env_names() -> None:
    names = env_names(ExampleSettings)
    assert "AGENTHQ_EXAMPLE_DATABASE_URL" in names
    assert "AGENTHQ_DATABASE_URL" not in names
    assert "AGENTHQ_BROKER_URL" in names
    for name in ("AGENTHQ_REDIS_URL", "AGENTHQ_JWKS_URL", "AGENTHQ_POSTGRES_URL"):
        assert name in names
    assert all(n.startswith("AGENTHQ_") and n == n.upper() for n in names)


async def test_settings_read_from_those_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHQ_EXAMPLE_DATABASE_URL", "postgresql+asyncpg://db/example_x")
    monkeypatch.setenv("AGENTHQ_BROKER_URL", "amqp://u:p@broker:5672/")
    settings = ExampleSettings()
    assert settings.database_url == "postgresql+asyncpg://db/example_x"
    assert settings.broker_url == "amqp://u:p@broker:5672/"


async def test_settings_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTHQ_EXAMPLE_DATABASE_URL", raising=False)
    monkeypatch.setenv("AGENTHQ_POSTGRES_URL", "postgresql+asyncpg://pg:5432/")
    assert ExampleSettings().database_url == "postgresql+asyncpg://pg:5432/agenthq_example"
