"""Request/response building blocks of the contract: strict request bodies,
list pages and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from agenthq_common.errors import Unprocessable

T = TypeVar("T")


class StrictModel(BaseModel):
    """Request bodies: unknown fields are a 422, strings are trimmed, and NUL
    characters (which PostgreSQL cannot store in text) are a 422, not a 500.

    Trimming comes before the model's own constraints, but the OpenAPI document
    states ``maxLength`` and ``pattern`` of what the client sends: a string
    field's raw value must meet them too ("x" * 255 + " " is too long where
    the limit is 255, " admin" does not match ``^[a-z]...``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="wrap")
    @classmethod
    def _as_documented(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        documented = _documented_strings(cls).get(info.field_name or "")
        if documented is not None and isinstance(value, str):
            try:
                documented.validate_python(value)
            except ValidationError as exc:
                error = exc.errors()[0]
                raise PydanticCustomError(error["type"], error["msg"]) from None
        return handler(value)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


@functools.cache
def _documented_strings(model: type[BaseModel]) -> dict[str, TypeAdapter[str]]:
    """A validator of each string property's documented ``maxLength`` and
    ``pattern`` (pydantic's own, so ``$`` means what it means in the schema)."""
    found = {}
    for name, schema in model.model_json_schema()["properties"].items():
        for option in (schema, *schema.get("anyOf", ())):
            if option.get("type") == "string" and ("maxLength" in option or "pattern" in option):
                found[name] = TypeAdapter(
                    Annotated[
                        str,
                        StringConstraints(
                            max_length=option.get("maxLength"), pattern=option.get("pattern")
                        ),
                    ]
                )
    return found


def refuse_null(value: Any) -> Any:
    """For PATCH fields that may be left out but not set to null."""
    if value is None:
        raise ValueError("may be omitted, but not null")
    return value


def _not_nullable(schema: dict[str, Any]) -> None:
    schema.pop("default", None)
    for option in schema.pop("anyOf", []):
        if option != {"type": "null"}:
            schema.update(option)


X = TypeVar("X")
# A PATCH field that may be left out but not set to null (``name:
# Omittable[Name] = None``): null is refused, and the document shows the field
# as not nullable (it said "string or null" once, and refused null).
Omittable = Annotated[
    X | None, BeforeValidator(refuse_null), Field(json_schema_extra=_not_nullable)
]


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    # Pydantic reads a number (or a string of digits) as seconds since 1970:
    # ?until=0.5 or "time": 0 would be accepted, where the contract says
    # RFC 3339 text.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 / RFC 3339 string, not a number")
    return value


def _in_utc(at: datetime) -> datetime:
    # Naive times are UTC. 0001-01-01T00:00+01:00 is valid ISO 8601 but before
    # year 1 in UTC: a 422 here, not an OverflowError (a 500) further on.
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is outside the years 1 to 9999 in UTC") from exc


# A time as the contract writes it (ISO 8601 text, never a number), in UTC.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_in_utc)]
# A day as the contract writes it (YYYY-MM-DD, never a number).
IsoDate = Annotated[date, BeforeValidator(_iso_text)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


Limit = Annotated[int, Query(ge=1, le=200, description="Page size (1..200)")]
Cursor = Annotated[str | None, Query(max_length=512, description="Opaque cursor from next_cursor")]


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The keyset position a cursor names; a forged or foreign cursor is a 422."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(values, dict) or set(values) != set(keys):
        raise _bad_cursor()
    return values


def _bad_cursor() -> Unprocessable:
    return Unprocessable(
        "Invalid cursor: pass back the next_cursor of a previous page unchanged",
        code="invalid_cursor",
        details=[{"field": "cursor", "in": "query", "message": "invalid cursor"}],
    )


def decode_time_id_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The common keyset position: a timestamp and an id to break its ties."""
    values = decode_cursor(cursor, ("t", "id"))
    if values is None:
        return None
    try:
        at = datetime.fromisoformat(values["t"])
        if at.tzinfo is None:
            raise ValueError("naive time")
        # In UTC, as the database compares it; out-of-range times are forgeries.
        return at.astimezone(UTC), uuid.UUID(values["id"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:  # forged cursors
        raise _bad_cursor() from exc


def encode_time_id_cursor(at: datetime, ident: uuid.UUID) -> str:
    return encode_cursor({"t": at.isoformat(), "id": str(ident)})


def paginate(
    rows: list[T], limit: int, cursor_of: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """Split ``limit + 1`` fetched rows into a page and the cursor of the next one."""
    if len(rows) > limit:
        return rows[:limit], cursor_of(rows[limit - 1])
    return rows, None


def decode_id_cursor(cursor: str | None) -> uuid.UUID | None:
    """A keyset position that is just an id (lists ordered by id)."""
    values = decode_cursor(cursor, ("id",))
    if values is None:
        return None
    try:
        return uuid.UUID(values["id"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise _bad_cursor() from exc


def encode_id_cursor(ident: uuid.UUID) -> str:
    return encode_cursor({"id": str(ident)})
