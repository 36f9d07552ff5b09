"""Searching a team's activity: every filter alone and combined, checked against
an oracle computed from the published events; ``q`` full-text semantics; action
prefixes; keyset pages while records keep arriving; validation; query plans.

Everything goes through the real bus and HTTP: the events are published onto
the exchange the running service consumes from, and read back through
``GET /v1/teams/{team_id}/activity``.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from agenthq_activity.activity.repository import ActivityRepository
from agenthq_activity.activity.search import ActivityFilter
from agenthq_common.bus import Bus
from agenthq_common.events import CloudEvent
from agenthq_common.service import Service
from agenthq_common.testing.tokens import TestSigner

from .conftest import AUDIT_QUEUE, ActivityHarness

PAGE = 7  # small, so that almost every query spans several pages

# Words the seed puts into metadata. None of them can come out of a UUID (each
# has a letter after 'f'), so the oracle never has to model how PostgreSQL's
# parser splits UUIDs. "velvet" is only ever in the *other* team's records.
WORDS = ("zebra", "quokka", "amber", "falcon", "nimbus", "lantern")
NESTED_WORD = "orchid"  # only ever deep inside a nested object
OTHER_TEAM_WORD = "velvet"
EMAILS = ("zoe.quill@example.org", "max.ray@example.net")
OTHER_TEAM_EMAIL = "bob.only@example.com"
# Five digits: no token of a UUID's 8/4/12-digit groups can equal them.
NUMBERS = (31337, 27182)
WORKSPACES = ("ws1", "ws2", "ws3", "ws4")
TASKS = ("t1", "t2", "t3", "t4", "t5", "t6")
ACTIONS = (
    "member.added",
    "member.removed",
    "member.role_changed",
    "workspace.created",
    "workspace.updated",
    "task.created",
    "task.completed",
    "agent.run.started",  # not in the catalogue
    "members.synced",  # not in the catalogue; shares "member" but not "member."
)

BOUNDARY = datetime(2026, 9, 1, tzinfo=UTC)  # a month (and partition) boundary
TIE = datetime(2026, 7, 15, 12, 0, 0, 250000, tzinfo=UTC)  # three records share it

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EMAIL_RE = re.compile(r"^[a-z.]+@[a-z]+\.[a-z]+$")
TEXT_RE = re.compile(r"^[A-Za-z0-9]+( [A-Za-z0-9]+)*$")
HOST_RE = re.compile(r"^[a-z]+(\.[a-z]+)+$")
ALNUM_RE = re.compile(r"^[a-z0-9]+$")


# ---------------------------------------------------------------- helpers


def assert_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    assert "Traceback" not in response.text
    return error  # type: ignore[no-any-return]


def error_fields(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error.get("details") or []}


def forged_cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def searchable_values(value: Any) -> Iterator[str | int]:
    """The values ``jsonb_to_tsvector(..., '["string", "numeric"]')`` indexes:
    strings and numbers at any depth; never keys, booleans or nulls."""
    if isinstance(value, dict):
        for item in value.values():
            yield from searchable_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from searchable_values(item)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | str):
        yield value
    else:
        raise AssertionError(f"the seed uses no {type(value).__name__} values")


@dataclass(frozen=True)
class Spec:
    """What the oracle knows of one published event."""

    event: CloudEvent
    who: str | None  # the actor's name: "owner", "u1".. (None: no actor or a stranger)
    texts: tuple[tuple[str, ...], ...]  # the words of each plain-text value, in order
    words: frozenset[str]  # every word the search can find in it
    numbers: frozenset[int]
    emails: frozenset[str]

    @classmethod
    def of(cls, event: CloudEvent, names: dict[uuid.UUID, str]) -> Spec:
        """The seed uses only UUIDs, e-mail addresses, integers and runs of
        plain alphanumeric words as metadata values (checked here): for those,
        PostgreSQL's ``simple`` parsing is just "lower-case, split on spaces"."""
        texts: list[tuple[str, ...]] = []
        numbers: set[int] = set()
        emails: set[str] = set()
        for value in searchable_values(event.data):
            if isinstance(value, int):
                numbers.add(value)
            elif UUID_RE.match(value):
                pass  # tokens no query of this file looks for
            elif EMAIL_RE.match(value):
                emails.add(value)
            else:
                assert TEXT_RE.match(value), value
                texts.append(tuple(value.lower().split()))
        words = {w for text in texts for w in text}
        kind, _, ident = (event.subject or "").partition("/")
        words |= {part for part in (kind, ident) if ALNUM_RE.match(part)}
        if HOST_RE.match(event.type):  # "task.completed" is one token (a host name)
            words.add(event.type)
        who = names.get(event.actorid) if event.actorid else None
        return cls(
            event, who, tuple(texts), frozenset(words), frozenset(numbers), frozenset(emails)
        )

    @property
    def time(self) -> datetime:
        return self.event.time.astimezone(UTC)

    @property
    def user(self) -> uuid.UUID | None:
        return self.event.actorid

    @property
    def action(self) -> str:
        return self.event.type

    @property
    def resource_type(self) -> str | None:
        return self.event.resource[0]

    @property
    def resource_id(self) -> str | None:
        return self.event.resource[1]

    def has(self, *words: str) -> bool:
        return all(w in self.words for w in words)

    def phrase(self, *words: str) -> bool:
        n = len(words)
        return any(text[i : i + n] == words for text in self.texts for i in range(len(text)))


Predicate = Callable[[Spec], bool]


def event_of(
    type_: str,
    data: dict[str, Any],
    *,
    team_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    subject: str | None,
    at: datetime,
) -> CloudEvent:
    # Built directly (not through the registry, which would drop the extra
    # metadata fields the search looks into); known types still carry every
    # field their catalogue model requires, so every consumer accepts them.
    return CloudEvent(
        source="agenthq/tests",
        type=type_,
        subject=subject,
        teamid=team_id,
        actorid=actor_id,
        actorip="203.0.113.9",
        actorua="search-tests",
        time=at,
        data=data,
    )


class Generator:
    """Deterministic, varied events: every action, actor, resource and kind of
    metadata value, over several months."""

    def __init__(self, seed: int, users: list[uuid.UUID | None], words: tuple[str, ...]) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.words = words
        self.member_subjects = [uuid.uuid4() for _ in range(3)]
        self.workspace_ids = {ws: uuid.uuid4() for ws in WORKSPACES}

    def note(self) -> str:
        picked = [self.rng.choice(self.words) for _ in range(self.rng.randint(1, 3))]
        return " ".join(w.capitalize() if self.rng.random() < 0.3 else w for w in picked)

    def event(
        self,
        n: int,
        team_id: uuid.UUID | None,
        at: datetime,
        *,
        action: str | None = None,
        actor: uuid.UUID | None = None,
        workspace: str | None = None,
    ) -> CloudEvent:
        rng = self.rng
        action = action or ACTIONS[n % len(ACTIONS)]
        data_team = str(team_id or uuid.uuid4())  # the catalogue wants one
        data: dict[str, Any]
        subject: str | None
        if action.startswith("member."):
            member = rng.choice(self.member_subjects)
            subject = f"member/{member}"
            data = {"team_id": data_team, "user_id": str(member)}
            if action == "member.role_changed":
                data |= {"old_role": "viewer", "new_role": "member"}
            else:
                data["role"] = rng.choice(["member", "viewer"])
        elif action.startswith("workspace."):
            ws = workspace or rng.choice(WORKSPACES)
            subject = f"workspace/{ws}"
            data = {
                "workspace_id": str(self.workspace_ids[ws]),
                "team_id": data_team,
                "name": f"Workspace {ws}",
                "description": None,
                "archived": False,
            }
        elif action.startswith("task."):
            task = rng.choice(TASKS)
            subject = f"task/{task}"
            data = {"task_id": str(uuid.uuid4()), "workspace_id": None}
            if action == "task.completed":
                data["status"] = rng.choice(["done", "failed"])
        elif action == "agent.run.started":
            subject = f"run/r{n}" if n % 2 else None
            data = {"run": f"r{n}", "model": "gpt"}
        else:
            subject = None
            data = {"source": "directory", "synced": rng.randint(1, 9)}
        data["note"] = self.note()
        if rng.random() < 0.35:
            data["contact"] = {"email": rng.choice(EMAILS)}
        if rng.random() < 0.4:
            data["count"] = rng.choice(NUMBERS)
        if rng.random() < 0.3:
            data["details"] = {
                "tag": rng.choice(self.words),
                "levels": [1, {"deep": NESTED_WORD, "ok": True}],
            }
        return event_of(
            action,
            data,
            team_id=team_id,
            actor_id=actor or rng.choice(self.users),
            subject=subject,
            at=at,
        )

    def times(self, count: int) -> list[datetime]:
        """Spread over June to October 2026 (five monthly partitions)."""
        start = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
        return [
            start
            + timedelta(
                minutes=self.rng.randrange(150 * 24 * 60),
                microseconds=self.rng.randrange(1_000_000),
            )
            for _ in range(count)
        ]


@dataclass
class Seeded:
    h: ActivityHarness
    team: uuid.UUID
    owner: uuid.UUID
    users: list[uuid.UUID]
    other_team: uuid.UUID
    other_owner: uuid.UUID
    specs: list[Spec]  # the team's records, as events
    other_specs: list[Spec]  # the other team's (and team-less) records
    record_of: dict[uuid.UUID, uuid.UUID]  # event id -> record id
    spec_of: dict[uuid.UUID, Spec]  # record id -> spec

    def expected(self, predicate: Predicate) -> list[uuid.UUID]:
        """Record ids of the matching records, newest first: (created_at, id) desc."""
        keyed = [(s.time, self.record_of[s.event.id]) for s in self.specs if predicate(s)]
        return [ident for _, ident in sorted(keyed, reverse=True)]

    async def listing(self, limit: int = PAGE, **params: Any) -> list[dict[str, Any]]:
        items, pages = await self.h.all_pages(self.team, self.owner, limit=limit, **params)
        assert pages == max(1, math.ceil(len(items) / limit)), (pages, len(items))
        return items

    async def check(self, params: dict[str, Any], predicate: Predicate) -> list[uuid.UUID]:
        """All pages of the query (limit 7) are exactly the oracle's records, in order."""
        items = await self.listing(**params)
        got = [uuid.UUID(i["id"]) for i in items]
        expected = self.expected(predicate)
        assert got == expected, (params, len(got), len(expected))
        for item in items:
            spec = self.spec_of[uuid.UUID(item["id"])]
            assert item["team_id"] == str(self.team)
            assert item["action"] == spec.action
            assert item["user_id"] == (str(spec.user) if spec.user else None)
            assert item["resource_type"] == spec.resource_type
            assert item["resource_id"] == spec.resource_id
            assert item["metadata"] == spec.event.data
            assert datetime.fromisoformat(item["created_at"]) == spec.time
        return got


@pytest.fixture(scope="module")
async def seeded(
    activity_service: Service,
    activity_client: httpx.AsyncClient,
    activity_bus: Bus,
    signer: TestSigner,
) -> Seeded:
    """One team with 80 records over five months, a second team whose records
    share its users, actions, resources and words, and some team-less records."""
    h = ActivityHarness(activity_service, activity_client, activity_bus, signer)
    owner, u1, u2, u3 = (uuid.uuid4() for _ in range(4))
    users = [owner, u1, u2, u3]
    team, setup = await h.create_team(owner, at=datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC))

    gen = Generator(1125, [owner, u1, u2, u3, u1, u2, None], WORDS)
    times = gen.times(70)
    times += [BOUNDARY, BOUNDARY - timedelta(microseconds=1), TIE, TIE, TIE]
    times += [BOUNDARY + timedelta(microseconds=1)]
    events = [gen.event(n, team, at) for n, at in enumerate(times)]
    # Two that some combinations below are about.
    events.append(
        gen.event(
            76, team, utc(2026, 10, 5, 7), action="workspace.updated", actor=u1, workspace="ws1"
        )
    )
    events.append(gen.event(77, team, utc(2026, 8, 3, 15), action="task.completed", actor=u2))
    # Phrases both ways round, and the one key-only / boolean-only word.
    events[3].data["note"] = "amber falcon rises"
    events[10].data["note"] = "The Amber Falcon"
    events[17].data["note"] = "falcon amber"
    events[24].data["note"] = "amber then falcon"
    events[30].data["walrus"] = True
    events[31].data["flags"] = {"walrus": False, "nothing": None}
    assert len(setup) + len(events) == 80

    other_owner = uuid.uuid4()
    other_team, other_setup = await h.create_team(
        other_owner, at=datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)
    )
    other = Generator(7, [other_owner, u1, u2, u3], (*WORDS, OTHER_TEAM_WORD))
    other_events = [other.event(n, other_team, at) for n, at in enumerate(other.times(24))]
    other_events += [
        other.event(n, other_team, at) for n, at in enumerate([BOUNDARY, TIE], start=24)
    ]
    other_events[0].data["contact"] = {"email": OTHER_TEAM_EMAIL}
    other_events[1].data["note"] = f"amber falcon {OTHER_TEAM_WORD}"
    # Records of no team at all (an actor of the team, the same words).
    teamless = [other.event(n, None, at) for n, at in enumerate(other.times(4), start=40)]

    for event in [*events, *other_events, *teamless]:
        await h.bus.publish(event)
    await h.wait_applied(
        AUDIT_QUEUE, *setup, *events, *other_setup, *other_events, *teamless, within=30.0
    )

    names = {owner: "owner", u1: "u1", u2: "u2", u3: "u3"}
    specs = [Spec.of(e, names) for e in [*setup, *events]]
    rows = await h.rows(team_id=team)
    assert len(rows) == len(specs) == 80
    record_of = {row.event_id: row.id for row in rows}
    async with activity_service.db.driver_connection() as conn:
        partitions = await conn.fetchval(
            "SELECT count(DISTINCT tableoid) FROM activity_logs WHERE team_id = $1", team
        )
    assert partitions == 5  # June .. October
    return Seeded(
        h=h,
        team=team,
        owner=owner,
        users=users,
        other_team=other_team,
        other_owner=other_owner,
        specs=specs,
        other_specs=[Spec.of(e, names) for e in [*other_setup, *other_events, *teamless]],
        record_of=record_of,
        spec_of={record_of[s.event.id]: s for s in specs},
    )


# ---------------------------------------------------------------- the oracle


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def in_range(since: datetime | None, until: datetime | None) -> Predicate:
    return lambda s: (since is None or s.time >= since) and (until is None or s.time < until)


# (id, query parameters with the seeded team's users as "owner"/"u1".., predicate)
CASES: list[tuple[str, dict[str, Any], Predicate]] = [
    ("everything", {}, lambda s: True),
    # --- one filter
    ("user-owner", {"user_id": "owner"}, lambda s: s.who == "owner"),
    ("user-u1", {"user_id": "u1"}, lambda s: s.who == "u1"),
    ("user-u2", {"user_id": "u2"}, lambda s: s.who == "u2"),
    ("user-u3", {"user_id": "u3"}, lambda s: s.who == "u3"),
    ("user-uppercase", {"user_id": "U1"}, lambda s: s.who == "u1"),
    ("user-stranger", {"user_id": "stranger"}, lambda s: False),
    *((f"action-{a}", {"action": a}, lambda s, a=a: s.action == a) for a in ACTIONS),
    ("action-team.created", {"action": "team.created"}, lambda s: s.action == "team.created"),
    ("action-unknown", {"action": "task.nothing"}, lambda s: False),
    ("prefix-member.", {"action": "member."}, lambda s: s.action.startswith("member.")),
    ("prefix-member.*", {"action": "member.*"}, lambda s: s.action.startswith("member.")),
    ("prefix-member*", {"action": "member*"}, lambda s: s.action.startswith("member")),
    ("prefix-mem*", {"action": "mem*"}, lambda s: s.action.startswith("mem")),
    ("prefix-task.", {"action": "task."}, lambda s: s.action.startswith("task.")),
    ("prefix-agent.run.*", {"action": "agent.run.*"}, lambda s: s.action == "agent.run.started"),
    ("prefix-t*", {"action": "t*"}, lambda s: s.action[0] == "t"),
    ("prefix-wildcard-like", {"action": "member_*"}, lambda s: False),
    ("exact-mem", {"action": "mem"}, lambda s: False),
    ("exact-member", {"action": "member"}, lambda s: False),
    *(
        (f"type-{t}", {"resource_type": t}, lambda s, t=t: s.resource_type == t)
        for t in ("member", "workspace", "task", "run", "team")
    ),
    ("type-none", {"resource_type": "nothing"}, lambda s: False),
    ("resource-ws3", {"resource_id": "ws3"}, lambda s: s.resource_id == "ws3"),
    ("resource-t2", {"resource_id": "t2"}, lambda s: s.resource_id == "t2"),
    ("resource-T2", {"resource_id": "T2"}, lambda s: False),  # exact, case-sensitive
    ("since-date", {"since": "2026-09-01"}, in_range(BOUNDARY, None)),
    ("since-naive", {"since": "2026-09-01T00:00:00"}, in_range(BOUNDARY, None)),
    ("since-Z", {"since": "2026-09-01T00:00:00Z"}, in_range(BOUNDARY, None)),
    ("since-+09", {"since": "2026-09-01T09:00:00+09:00"}, in_range(BOUNDARY, None)),
    ("since--04", {"since": "2026-08-31T20:00:00-04:00"}, in_range(BOUNDARY, None)),
    (
        "since-micro",
        {"since": "2026-08-31T23:59:59.999999Z"},
        in_range(BOUNDARY - timedelta(microseconds=1), None),
    ),
    ("until-date", {"until": "2026-09-01"}, in_range(None, BOUNDARY)),
    ("until-+09", {"until": "2026-09-01T09:00:00+09:00"}, in_range(None, BOUNDARY)),
    ("until-tie", {"until": TIE.isoformat()}, in_range(None, TIE)),
    ("since-tie", {"since": TIE.isoformat()}, in_range(TIE, None)),
    ("since-future", {"since": "2027-01-01"}, lambda s: False),
    ("until-past", {"until": "2026-01-01"}, lambda s: False),
    ("q-word", {"q": "zebra"}, lambda s: s.has("zebra")),
    ("q-word-2", {"q": "quokka"}, lambda s: s.has("quokka")),
    # --- pairs
    (
        "range-month",
        {"since": "2026-07-01", "until": "2026-08-01"},
        in_range(utc(2026, 7, 1), utc(2026, 8, 1)),
    ),
    (
        "range-tie-exact",
        {"since": TIE.isoformat(), "until": (TIE + timedelta(microseconds=1)).isoformat()},
        lambda s: s.time == TIE,
    ),
    (
        "user+prefix",
        {"user_id": "u1", "action": "member."},
        lambda s: s.who == "u1" and s.action.startswith("member."),
    ),
    (
        "user+exact",
        {"user_id": "u2", "action": "task.completed"},
        lambda s: s.who == "u2" and s.action == "task.completed",
    ),
    (
        "q+range",
        {"q": "zebra", "since": "2026-07-10", "until": "2026-09-20T12:00:00+02:00"},
        lambda s: s.has("zebra") and utc(2026, 7, 10) <= s.time < utc(2026, 9, 20, 10),
    ),
    (
        "resource+range",
        {"resource_type": "workspace", "resource_id": "ws2", "since": "2026-08-01"},
        lambda s: s.resource_id == "ws2" and s.time >= utc(2026, 8, 1),
    ),
    (
        "type+id",
        {"resource_type": "task", "resource_id": "t4"},
        lambda s: s.resource_type == "task" and s.resource_id == "t4",
    ),
    (
        "type+id-mismatch",
        {"resource_type": "member", "resource_id": "t4"},
        lambda s: False,
    ),
    ("user+q", {"user_id": "u3", "q": "amber"}, lambda s: s.who == "u3" and s.has("amber")),
    (
        "prefix+q",
        {"action": "workspace.*", "q": "nimbus OR lantern"},
        lambda s: s.action.startswith("workspace.") and (s.has("nimbus") or s.has("lantern")),
    ),
    (
        "exact+range",
        {"action": "agent.run.started", "until": "2026-08-15"},
        lambda s: s.action == "agent.run.started" and s.time < utc(2026, 8, 15),
    ),
    (
        "type+q",
        {"resource_type": "task", "q": "31337"},
        lambda s: s.resource_type == "task" and 31337 in s.numbers,
    ),
    # --- triples
    (
        "user+prefix+range",
        {"user_id": "u1", "action": "task.", "since": "2026-07-01", "until": "2026-10-01"},
        lambda s: (
            s.who == "u1"
            and s.action.startswith("task.")
            and utc(2026, 7, 1) <= s.time < utc(2026, 10, 1)
        ),
    ),
    (
        "q+type+until",
        {"q": "falcon", "resource_type": "member", "until": "2026-09-01T00:00:00.000001Z"},
        lambda s: s.has("falcon") and s.resource_type == "member" and s.time <= BOUNDARY,
    ),
    (
        "type+user+since",
        {"resource_type": "workspace", "user_id": "owner", "since": "2026-06-20"},
        lambda s: (
            s.resource_type == "workspace" and s.who == "owner" and s.time >= utc(2026, 6, 20)
        ),
    ),
    (
        "q-or+user+prefix",
        {"q": "zebra OR quokka", "user_id": "u2", "action": "member.*"},
        lambda s: (
            (s.has("zebra") or s.has("quokka")) and s.who == "u2" and s.action.startswith("member.")
        ),
    ),
    # --- everything at once
    (
        "all-filters",
        {
            "user_id": "u1",
            "action": "workspace.",
            "resource_type": "workspace",
            "resource_id": "ws1",
            "since": "2026-06-01",
            "until": "2026-11-01T09:00:00+09:00",
            "q": "workspace",
        },
        lambda s: (
            s.who == "u1"
            and s.action.startswith("workspace.")
            and s.resource_id == "ws1"
            and s.has("workspace")
        ),
    ),
]

# Queries whose answer is empty by design (every other one must find something,
# or it would not check much).
EMPTY = {
    "user-stranger",
    "action-unknown",
    "prefix-wildcard-like",
    "exact-mem",
    "exact-member",
    "type-none",
    "resource-T2",
    "since-future",
    "until-past",
    "type+id-mismatch",
}

# q alone: the full-text semantics.
Q_CASES: list[tuple[str, Predicate]] = [
    ("zebra", lambda s: s.has("zebra")),
    ("ZEBRA", lambda s: s.has("zebra")),  # case-insensitive (and "Zebra" in data)
    ("Lantern", lambda s: s.has("lantern")),
    ("31337", lambda s: 31337 in s.numbers),  # a number of the metadata
    ("27182", lambda s: 27182 in s.numbers),  # ... also inside a nested array
    ("zoe.quill@example.org", lambda s: "zoe.quill@example.org" in s.emails),
    ("MAX.RAY@EXAMPLE.NET", lambda s: "max.ray@example.net" in s.emails),
    ("ws3", lambda s: s.has("ws3")),  # a resource id (and a workspace name)
    ("t2", lambda s: s.resource_id == "t2"),
    ("task.completed", lambda s: s.action == "task.completed"),  # the action
    ("run", lambda s: s.resource_type == "run" or s.has("run")),  # a resource type
    (NESTED_WORD, lambda s: s.has(NESTED_WORD)),  # deep in a nested object
    ('"amber falcon"', lambda s: s.phrase("amber", "falcon")),
    ("amber falcon", lambda s: s.has("amber", "falcon")),
    ('"falcon amber"', lambda s: s.phrase("falcon", "amber")),
    ("zebra OR quokka", lambda s: s.has("zebra") or s.has("quokka")),
    ("zebra or quokka", lambda s: s.has("zebra") or s.has("quokka")),  # or, in any case
    ("zebra -quokka", lambda s: s.has("zebra") and not s.has("quokka")),
    ("-zebra", lambda s: not s.has("zebra")),
    ("nimbus 31337", lambda s: s.has("nimbus") and 31337 in s.numbers),
    ('"amber falcon" OR 27182', lambda s: s.phrase("amber", "falcon") or 27182 in s.numbers),
    ("zebra's", lambda s: s.phrase("zebra", "s")),  # the phrase 'zebra' <-> 's'
    ("zebra -", lambda s: s.has("zebra")),  # a dangling operator is ignored
    ("(zebra) & | ! :*", lambda s: s.has("zebra")),  # tsquery syntax is not syntax here
    ("nomatchword", lambda s: False),
    ("walrus", lambda s: False),  # a key, never a value
    ("true", lambda s: False),  # booleans are not indexed
    ("nothing", lambda s: False),  # a key whose value is null
    (OTHER_TEAM_WORD, lambda s: False),  # only in the other team's records
    (OTHER_TEAM_EMAIL, lambda s: False),
]
Q_EMPTY = {"zebra's", "nomatchword", "walrus", "true", "nothing"}
Q_EMPTY |= {OTHER_TEAM_WORD, OTHER_TEAM_EMAIL}


def resolve(seeded: Seeded, params: dict[str, Any]) -> dict[str, Any]:
    """Replace the user names of CASES with the seeded team's users."""
    names = {f"u{n}": user for n, user in enumerate(seeded.users[1:], start=1)}
    names |= {"owner": seeded.owner, "stranger": uuid.UUID(int=42)}
    resolved = dict(params)
    if "user_id" in params:
        name = params["user_id"]
        user = names[name.lower()]
        resolved["user_id"] = str(user).upper() if name.isupper() else str(user)
    return resolved


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_filters_match_the_oracle(
    seeded: Seeded, case: tuple[str, dict[str, Any], Predicate]
) -> None:
    """Every filter and a set of combinations return exactly the expected
    records, newest first, across pages of 7."""
    name, params, predicate = case
    got = await seeded.check(resolve(seeded, params), predicate)
    if name in EMPTY:
        assert got == []
    else:
        assert got, f"{name}: the seed should give this query something to find"


@pytest.mark.parametrize(("q", "predicate"), Q_CASES, ids=[q for q, _ in Q_CASES])
async def test_q_semantics(seeded: Seeded, q: str, predicate: Predicate) -> None:
    got = await seeded.check({"q": q}, predicate)
    if q in Q_EMPTY:
        assert got == []
    else:
        assert got, f"{q}: the seed should give this query something to find"


# ---------------------------------------------------------------- action prefixes


def actions_of(items: list[dict[str, Any]]) -> set[str]:
    return {i["action"] for i in items}


async def test_action_prefix(seeded: Seeded) -> None:
    dot = await seeded.listing(action="member.")
    assert dot
    assert await seeded.listing(action="member.*") == dot
    assert await seeded.listing(action="member.**") == dot
    assert actions_of(dot) == {"member.added", "member.removed", "member.role_changed"}
    # A prefix needs its '.' or '*': without, the action is matched exactly.
    assert await seeded.listing(action="mem") == []
    assert await seeded.listing(action="member") == []
    assert actions_of(await seeded.listing(action="mem*")) == actions_of(dot) | {"members.synced"}
    # A prefix is a prefix, not a LIKE pattern.
    assert await seeded.listing(action="member_*") == []
    assert await seeded.listing(action="%.*") == []
    assert await seeded.listing(action="m%*") == []
    assert await seeded.listing(action=".") == []
    # Never another team's records, though it has member.* records of the same users.
    other_members = [
        s
        for s in seeded.other_specs
        if s.event.teamid == seeded.other_team and s.action[:7] == "member."
    ]
    assert other_members
    assert {i["team_id"] for i in dot} == {str(seeded.team)}
    other_records = {r.id for r in await seeded.h.rows(team_id=seeded.other_team)}
    assert not other_records & {uuid.UUID(i["id"]) for i in dot}
    theirs, _ = await seeded.h.all_pages(
        seeded.other_team, seeded.other_owner, action="member.", limit=PAGE
    )
    assert len(theirs) == len(other_members)
    assert {i["team_id"] for i in theirs} == {str(seeded.other_team)}
    # ... and a member of one team cannot list the other's at all.
    response = await seeded.h.get(seeded.other_team, seeded.owner, action="member.")
    assert_error(response, 404, "team_not_found")


async def test_nothing_leaks_from_the_other_team_or_no_team(seeded: Seeded) -> None:
    """The other team shares users, actions, resources and words; team-less
    records share words: none of them is ever listed for the team."""
    ours = {str(seeded.record_of[s.event.id]) for s in seeded.specs}
    for params in (
        {},
        {"user_id": str(seeded.users[1])},
        {"q": "amber"},
        {"q": "-zebra"},
        {"resource_id": "ws3"},
        {"action": "task."},
        {"since": "2026-01-01", "until": "2027-01-01"},
    ):
        items = await seeded.listing(limit=200, **params)
        assert items
        assert {i["id"] for i in items} <= ours, params
        assert {i["team_id"] for i in items} == {str(seeded.team)}


# ---------------------------------------------------------------- keyset pages


async def test_pages_while_records_arrive(activity_harness: ActivityHarness) -> None:
    """Paging with limit 5 while new records keep arriving: every record that
    existed when paging started is listed exactly once, in order.

    A record that arrives later with a (created_at, id) *below* the current
    cursor position DOES appear in a later page (keyset pages read what is
    below the position, whenever it arrived); one that arrives above it (newer
    than the position, whether newer than everything or between records
    already listed) does NOT appear: those pages are behind us.
    """
    h = activity_harness
    owner = uuid.uuid4()
    t0 = datetime(2026, 10, 12, 12, 0, tzinfo=UTC)
    team, setup = await h.create_team(owner, at=t0 - timedelta(days=1))

    def task(n: int, at: datetime) -> CloudEvent:
        return event_of(
            "task.created",
            {"task_id": str(uuid.uuid4()), "note": f"task {n}"},
            team_id=team,
            actor_id=owner,
            subject=f"task/p{n}",
            at=at,
        )

    # 30 records, ten minutes apart, but for two pairs that share their instant.
    seed = [task(n, t0 + timedelta(minutes=10 * (n - (n in (7, 21))))) for n in range(30)]
    for event in seed:
        await h.bus.publish(event)
    await h.wait_applied(AUDIT_QUEUE, *seed)
    snapshot_items, _ = await h.all_pages(team, owner, limit=200)
    snapshot = [uuid.UUID(i["id"]) for i in snapshot_items]
    assert len(snapshot) == len(seed) + len(setup)

    async def record_key(event: CloudEvent) -> tuple[datetime, uuid.UUID]:
        (row,) = await h.rows(event_id=event.id)
        return row.created_at, row.id

    seen: list[dict[str, Any]] = []
    must_appear: set[uuid.UUID] = set()
    must_not_appear: set[uuid.UUID] = set()
    cursor: str | None = None
    n = 100
    for page in range(60):
        query: dict[str, Any] = {"limit": 5}
        if cursor is not None:
            query["cursor"] = cursor
        response = await h.get(team, owner, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        if page >= 6:
            continue  # enough arrivals; let the paging finish
        last = body["items"][-1]
        position = (datetime.fromisoformat(last["created_at"]), uuid.UUID(last["id"]))
        at = position[0]
        arrivals = [
            task(n, datetime(2026, 11, 20, 8, page, tzinfo=UTC)),  # newer than all (next month)
            task(n + 1, at + timedelta(microseconds=1)),  # just above the position
            task(n + 2, at),  # the position's very instant: its id decides
            task(n + 3, at - timedelta(microseconds=1)),  # just below the position
            task(n + 4, at - timedelta(minutes=3)),  # between two older records
            task(n + 5, datetime(2026, 9, 30, 23, 59, page, tzinfo=UTC)),  # older than all
        ]
        n += 10
        for event in arrivals:
            await h.bus.publish(event)
        await h.wait_applied(AUDIT_QUEUE, *arrivals)
        for event in arrivals:
            key = await record_key(event)
            (must_appear if key < position else must_not_appear).add(key[1])
    assert cursor is None, "pagination does not end"

    ids = [uuid.UUID(i["id"]) for i in seen]
    assert len(ids) == len(set(ids)), "a record was listed twice"
    assert [i for i in ids if i in set(snapshot)] == snapshot  # all, once, in order
    assert len(must_appear) >= 6 * 3 and len(must_not_appear) >= 6 * 2
    assert must_appear <= set(ids)
    assert not must_not_appear & set(ids)
    assert set(ids) == set(snapshot) | must_appear
    keys = [(datetime.fromisoformat(i["created_at"]), uuid.UUID(i["id"])) for i in seen]
    assert keys == sorted(keys, reverse=True)
    # Afterwards everything is there, newer arrivals included.
    everything, _ = await h.all_pages(team, owner, limit=50)
    assert {uuid.UUID(i["id"]) for i in everything} == set(ids) | must_not_appear


# ---------------------------------------------------------------- validation


def _uuid() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"user_id": "nope"}, "user_id", "validation_error"),
        ({"user_id": "1234"}, "user_id", "validation_error"),
        ({"since": "yesterday"}, "since", "validation_error"),
        ({"since": "2026-13-01"}, "since", "validation_error"),
        ({"until": "2026-11-31"}, "until", "validation_error"),
        ({"since": "2026-11-01", "until": "2026-11-01"}, "until", "validation_error"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "until", "validation_error"),
        # The same instant written two ways round is still since >= until.
        (
            {"since": "2026-11-01T09:00:00+09:00", "until": "2026-11-01"},
            "until",
            "validation_error",
        ),
        (
            {"since": "2026-11-01T00:30:00-01:00", "until": "2026-11-01T01:00:00Z"},
            "until",
            "validation_error",
        ),
        # Found by the fuzzer: numbers were read as seconds since 1970.
        ({"until": "0.5"}, "until", "validation_error"),
        ({"since": "1700000000"}, "since", "validation_error"),
        ({"since": "-1"}, "since", "validation_error"),
        ({"limit": "0"}, "limit", "validation_error"),
        ({"limit": "201"}, "limit", "validation_error"),
        ({"q": "!!!"}, "q", "validation_error"),
        ({"q": "   "}, "q", "validation_error"),
        ({"q": '"" -- | & ( ) :*'}, "q", "validation_error"),
        ({"q": ""}, "q", "validation_error"),
        ({"q": "a" * 201}, "q", "validation_error"),
        ({"action": "a" * 101}, "action", "validation_error"),
        ({"action": ""}, "action", "validation_error"),
        ({"action": "*"}, "action", "validation_error"),
        ({"resource_type": "r" * 51}, "resource_type", "validation_error"),
        ({"resource_id": "r" * 201}, "resource_id", "validation_error"),
        ({"cursor": "garbage!!"}, "cursor", "invalid_cursor"),
        ({"cursor": "eyJ0IjoiMjAyNi0wOS0w"}, "cursor", "invalid_cursor"),  # truncated JSON
        (
            {"cursor": forged_cursor({"time": "2026-09-01T00:00:00+00:00", "id": _uuid()})},
            "cursor",
            "invalid_cursor",
        ),
        (
            {"cursor": forged_cursor({"t": "2026-09-01T00:00:00+00:00", "id": _uuid(), "x": 1})},
            "cursor",
            "invalid_cursor",
        ),
        (
            {"cursor": forged_cursor({"t": "2026-09-01T00:00:00", "id": _uuid()})},
            "cursor",
            "invalid_cursor",
        ),  # a naive time is no cursor of ours
        ({"cursor": forged_cursor({"t": 1, "id": 2})}, "cursor", "invalid_cursor"),
        (
            {"cursor": forged_cursor(["2026-09-01T00:00:00+00:00", _uuid()])},
            "cursor",
            "invalid_cursor",
        ),
        ({"cursor": "x" * 513}, "cursor", "validation_error"),
    ],
)
async def test_invalid_query_gets_422(
    seeded: Seeded, params: dict[str, Any], field: str, code: str
) -> None:
    """A 422 in the contract's error shape, with a detail naming the field."""
    response = await seeded.h.get(seeded.team, seeded.owner, **params)
    error = assert_error(response, 422, code)
    assert field in error_fields(error), error


@pytest.mark.parametrize(
    "params",
    [
        {"q": "z" + "!" * 199},  # 200 characters
        {"q": "zebra" * 40},
        {"action": "a" * 100},
        {"resource_type": "r" * 50},
        {"resource_id": "r" * 200},
        {"limit": "1"},
        {"limit": "200"},
        {"q": "²"},
        {"q": "서울"},
        {"q": "-OR-"},
        {"action": "\U0010ffff*"},
        {"since": "0001-01-01", "until": "9999-12-31T23:59:59.999999"},
        {"since": "2026-11-01", "until": "2026-11-01T09:00:00.000001+09:00"},
    ],
)
async def test_edge_values_are_accepted(seeded: Seeded, params: dict[str, Any]) -> None:
    response = await seeded.h.get(seeded.team, seeded.owner, **params)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}


@pytest.mark.parametrize(
    "params",
    [
        {"since": "9999-12-31T23:00:00-05:00"},
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "0001-01-01T00:30:00+01:00"},
    ],
)
async def test_times_beyond_the_calendar_are_not_a_server_error(
    seeded: Seeded, params: dict[str, Any]
) -> None:
    """A time that is valid ISO 8601 but falls outside year 1..9999 once in UTC."""
    response = await seeded.h.get(seeded.team, seeded.owner, **params)
    field = next(iter(params))
    if response.status_code == 200:
        return
    error = assert_error(response, 422, "validation_error")
    assert field in error_fields(error)


async def test_since_and_until_with_and_without_offset(seeded: Seeded) -> None:
    """Naive times are UTC; an offset is honoured; since inclusive, until exclusive."""
    at_boundary = {seeded.record_of[s.event.id] for s in seeded.specs if s.time == BOUNDARY}
    assert len(at_boundary) == 1
    same_instant = (
        "2026-09-01",
        "2026-09-01T00:00:00",
        "2026-09-01T00:00:00Z",
        "2026-09-01T00:00:00+00:00",
        "2026-09-01T09:00:00+09:00",
        "2026-08-31T19:00:00-05:00",
    )
    since = [await seeded.listing(limit=200, since=t) for t in same_instant]
    until = [await seeded.listing(limit=200, until=t) for t in same_instant]
    assert all(s == since[0] for s in since) and all(u == until[0] for u in until)
    ids_since = {uuid.UUID(i["id"]) for i in since[0]}
    ids_until = {uuid.UUID(i["id"]) for i in until[0]}
    assert at_boundary <= ids_since and not at_boundary & ids_until
    assert len(ids_since) + len(ids_until) == len(seeded.specs)
    # A time ahead of UTC by nine hours is nine hours earlier than the same naive time.
    seoul = timezone(timedelta(hours=9))
    window = await seeded.listing(
        since="2026-09-01T00:00:00+09:00", until="2026-09-01T09:00:00+09:00"
    )
    expected = seeded.expected(
        in_range(datetime(2026, 9, 1, tzinfo=seoul), datetime(2026, 9, 1, 9, tzinfo=seoul))
    )
    assert [uuid.UUID(i["id"]) for i in window] == expected
    ids = {uuid.UUID(i["id"]) for i in window}
    just_before = {
        seeded.record_of[s.event.id]
        for s in seeded.specs
        if s.time == BOUNDARY - timedelta(microseconds=1)
    }
    assert just_before <= ids and not at_boundary & ids


# ---------------------------------------------------------------- query plans


class ExplainingConnection:
    """Stands in for the repository's asyncpg connection: EXPLAINs the
    statement the repository builds instead of running it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        plan = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        (tree,) = json.loads(plan) if isinstance(plan, str) else plan
        self.plans.append(tree)
        return []


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child)


async def index_family(conn: Any, index: str) -> set[str]:
    """The partitioned index and the partitions' indexes attached to it."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass",
        index,
    )
    return {index, *(r["relname"] for r in rows)}


async def explain_page(
    seeded: Seeded, where: ActivityFilter, settings: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """How the repository's page query for ``where`` reads each partition: its
    name -> the index scan nodes that read it (none: read whole)."""
    async with seeded.h.service.db.driver_connection() as conn:
        async with conn.transaction():
            # Statistics, so that the planner knows how few records match.
            await conn.execute("ANALYZE activity_logs")
            for name, value in {"enable_seqscan": "off", **settings}.items():
                await conn.execute(f"SET LOCAL {name} = {value}")
            explaining = ExplainingConnection(conn)
            repository = ActivityRepository(explaining)  # type: ignore[arg-type]
            await repository.page(where, limit=PAGE + 1, before=None)
    (plan,) = explaining.plans
    return {
        node["Relation Name"]: [n for n in plan_nodes(node) if "Index Name" in n]
        for node in plan_nodes(plan["Plan"])
        if "Relation Name" in node
    }


# The test tables are tiny: left alone, the planner reads them whole (hence
# enable_seqscan off, always). Beyond that:
# - q: it would rather read every row of the team through the smallest btree
#   and compute each row's search document than open a GIN index; pricing that
#   computation closer to what it costs on a real log lets the index win.
# - an action prefix: it would rather walk the team's records in time order
#   and filter than read an action range and sort; without ordered index
#   scans, the range is read through the action index.
TSEARCH = {"cpu_operator_cost": "1"}
NO_ORDERED_SCAN = {"enable_indexscan": "off"}


@pytest.mark.parametrize(
    ("index", "where", "settings", "condition"),
    [
        ("ix_activity_logs_team_search", {"q": "zebra"}, TSEARCH, "@@"),
        (
            "ix_activity_logs_team_search",
            {"q": '"amber falcon" OR 31337 -quokka'},
            TSEARCH,
            "@@",
        ),
        ("ix_activity_logs_team_search", {"q": "orchid", "since": BOUNDARY}, TSEARCH, "@@"),
        ("ix_activity_logs_team_action", {"action_prefix": "member."}, NO_ORDERED_SCAN, "<"),
        ("ix_activity_logs_team_action", {"action": "task.completed"}, {}, "action"),
        ("ix_activity_logs_team_user", {"user_id": "u1"}, {}, "user_id"),
    ],
    ids=["q-word", "q-websearch", "q-since", "action-prefix", "action", "user"],
)
async def test_query_plan_uses_the_index(
    seeded: Seeded, index: str, where: dict[str, Any], settings: dict[str, str], condition: str
) -> None:
    """The SQL the repository builds is answered through the index meant for
    it, with the filter as the index's condition. For q this guards that the
    migration's index expression and the query's SEARCH_DOCUMENT stay
    identical: were they not, PostgreSQL could use that index for team_id
    alone at best, and would have to compute every row's document."""
    if where.get("user_id") == "u1":
        where = {**where, "user_id": seeded.users[1]}
    async with seeded.h.service.db.driver_connection() as conn:
        family = await index_family(conn, index)
    assert len(family) >= 1 + 5  # attached to the partitions of the seeded months at least
    reads = await explain_page(seeded, ActivityFilter(team_id=seeded.team, **where), settings)
    # The partitions of the seeded months (others hold other tests' records only).
    seeded_months = {name: scans for name, scans in reads.items() if name in SEEDED_PARTITIONS}
    assert seeded_months, reads
    through = [n for scans in reads.values() for n in scans if n["Index Name"] in family]
    assert through, (index, reads)
    for node in through:
        assert "team_id =" in node["Index Cond"], node
        assert condition in node["Index Cond"], node
    if index == "ix_activity_logs_team_search":
        # Not one seeded month computes the documents of all the team's records.
        for name, scans in seeded_months.items():
            assert scans and {n["Index Name"] for n in scans} <= family, (name, scans)


SEEDED_PARTITIONS = {f"activity_logs_p2026_{month:02d}" for month in range(6, 11)}
