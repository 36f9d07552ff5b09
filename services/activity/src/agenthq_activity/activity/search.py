"""The activity listing's filters, as one parameterised SQL condition.

Every filter narrows a team's records (``team_id`` always comes first, so each
query can use an index that starts with it); see docs/activity.md for which
index serves which shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The text that ``q`` searches, exactly as the GIN index of the migration
# computes it (the planner uses that index only for this very expression; a
# test checks the plan). ``simple``: no stemming and no stop words, since the
# log is made of identifiers, e-mail addresses and names, not prose.
SEARCH_DOCUMENT = (
    "(to_tsvector('simple'::regconfig, (action::text || ' ' || "
    "coalesce(resource_type::text, '') || ' ' || coalesce(resource_id::text, ''))) || "
    "jsonb_to_tsvector('simple'::regconfig, coalesce(metadata, '{}'::jsonb), "
    '\'["string", "numeric"]\'::jsonb))'
)


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """``[prefix, upper)``: every string that starts with ``prefix``, in the C
    collation of the ``action`` column, as a range an index can scan (None:
    no upper bound)."""
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return prefix, None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters
        following = 0xE000
    return prefix, stem[:-1] + chr(following)


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    team_id: uuid.UUID
    user_id: uuid.UUID | None = None
    action: str | None = None
    action_prefix: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    q: str | None = None

    def where(self, args: list[Any]) -> str:
        """The SQL condition, appending its parameters to ``args``."""

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        conditions = [f"team_id = {param(self.team_id)}"]
        if self.user_id is not None:
            conditions.append(f"user_id = {param(self.user_id)}")
        if self.action is not None:
            conditions.append(f"action = {param(self.action)}")
        if self.action_prefix is not None:
            low, high = prefix_bounds(self.action_prefix)
            conditions.append(f"action >= {param(low)}")
            if high is not None:
                conditions.append(f"action < {param(high)}")
        if self.resource_type is not None:
            conditions.append(f"resource_type = {param(self.resource_type)}")
        if self.resource_id is not None:
            conditions.append(f"resource_id = {param(self.resource_id)}")
        if self.since is not None:
            conditions.append(f"created_at >= {param(self.since)}")
        if self.until is not None:
            conditions.append(f"created_at < {param(self.until)}")
        if self.q is not None:
            conditions.append(
                f"{SEARCH_DOCUMENT} @@ websearch_to_tsquery('simple'::regconfig, {param(self.q)})"
            )
        return " AND ".join(conditions)
