"""Rendering a stream of activity rows as CSV or NDJSON, in chunks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator
from enum import StrEnum
from typing import Any

from agenthq_activity.activity.schemas import iso_time

CHUNK_BYTES = 64 * 1024
COLUMNS = (
    "id",
    "team_id",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "metadata",
    "ip_address",
    "user_agent",
    "created_at",
)


class ExportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8" if self is ExportFormat.csv else "application/x-ndjson"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _csv_row(row: Any) -> list[str]:
    # Empty cells for absent values; metadata as its JSON text, so that a
    # reader gets back exactly the object the API returns.
    return [
        str(row["id"]),
        _text(row["team_id"]) or "",
        _text(row["user_id"]) or "",
        row["action"],
        row["resource_type"] or "",
        row["resource_id"] or "",
        row["metadata"] or "",
        row["ip_address"] or "",
        row["user_agent"] or "",
        iso_time(row["created_at"]),
    ]


def _ndjson_line(row: Any) -> str:
    metadata = row["metadata"]
    return (
        json.dumps(
            {
                "id": str(row["id"]),
                "team_id": _text(row["team_id"]),
                "user_id": _text(row["user_id"]),
                "action": row["action"],
                "resource_type": row["resource_type"],
                "resource_id": row["resource_id"],
                "metadata": json.loads(metadata) if metadata is not None else None,
                "ip_address": row["ip_address"],
                "user_agent": row["user_agent"],
                "created_at": iso_time(row["created_at"]),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )


async def render(rows: AsyncIterable[Any], fmt: ExportFormat) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n") if fmt is ExportFormat.csv else None
    if writer is not None:
        writer.writerow(COLUMNS)
    async for row in rows:
        if writer is not None:
            writer.writerow(_csv_row(row))
        else:
            buffer.write(_ndjson_line(row))
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
