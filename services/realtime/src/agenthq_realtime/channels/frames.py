"""Frames of the realtime protocol (REALTIME.md) and their Redis stream form.

Each team's frames live in one Redis stream; the stream entry id is the
frame's ``id`` (``<ms>-<seq>``, monotonically increasing per team), which is
also the resume point.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

KEY_PREFIX = "rt"
MAX_FRAME_BYTES = 64 * 1024
RESERVED_NAMES = {"welcome", "auth", "error", "ping", "pong", "resume.failed"}
RESERVED_PREFIXES = ("presence.", "resume.")
# Domain event families (EVENTS.md): clients cannot forge them.
DOMAIN_PREFIXES = (
    "user.",
    "team.",
    "member.",
    "invitation.",
    "role.",
    "workspace.",
    "task.",
    "llm.",
    "api.",
    "storage.",
    "usage.",
    "invoice.",
)


def stream_key(prefix: str, team_id: uuid.UUID) -> str:
    return f"{prefix}{KEY_PREFIX}:team:{team_id}:frames"


def parse_id(frame_id: str | bytes) -> tuple[int, int]:
    text = frame_id.decode() if isinstance(frame_id, bytes) else frame_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def valid_id(frame_id: str) -> bool:
    try:
        ms, seq = parse_id(frame_id)
    except ValueError:
        return False
    return ms >= 0 and seq >= 0


def is_reserved(name: str) -> bool:
    return (
        name in RESERVED_NAMES
        or name.startswith(RESERVED_PREFIXES)
        or name.startswith(DOMAIN_PREFIXES)
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def entry(
    type_: str,
    team_id: uuid.UUID,
    user_id: uuid.UUID | None,
    data: Any,
    *,
    time: str | None = None,
    sender: str | None = None,
) -> dict[str, str]:
    """A frame as stored in the stream (its id is given by Redis)."""
    body = {
        "type": type_,
        "team_id": str(team_id),
        "user_id": str(user_id) if user_id else None,
        "data": data,
        "time": time or now_iso(),
    }
    fields = {"f": json.dumps(body, separators=(",", ":"), default=str)}
    if sender:
        fields["s"] = sender
    return fields


def wire(frame_id: str, fields: dict[bytes, bytes]) -> str:
    """The frame as a client receives it: the stored JSON with its id first."""
    return '{"id":"' + frame_id + '",' + fields[b"f"].decode()[1:]
