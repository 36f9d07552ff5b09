"""The event contract: the registry, the CloudEvents envelope, the catalogue against
EVENTS.md, the generated AsyncAPI document, and AMQP topic matching."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agenthq_common.events import (
    Actor,
    CloudEvent,
    EventRegistry,
    UnknownDataVersion,
    registry,
)
from agenthq_common.events.asyncapi import build_asyncapi
from agenthq_common.events.catalog import TeamUpdated
from agenthq_common.events.envelope import CONTENT_TYPE
from agenthq_common.events.registry import InvalidEventData
from agenthq_common.inbox import topic_matches

REPO_ROOT = Path(__file__).resolve().parents[3]
EVENTS_MD = REPO_ROOT.parent / "shared" / "contract" / "EVENTS.md"


def team_updated(**kw: Any) -> CloudEvent:
    team_id = uuid.uuid4()
    return registry.create(
        "team.updated",
        {"team_id": team_id, "name": "Platform"},
        source="agenthq/team",
        subject=f"team/{team_id}",
        team_id=team_id,
        **kw,
    )


# --- registry -----------------------------------------------------------------------------


async def test_create_builds_a_valid_event() -> None:
    actor = Actor(id=uuid.uuid4(), ip="203.0.113.9", user_agent="ua/1", traceparent="00-abc")
    team_id = uuid.uuid4()
    event = registry.create(
        "member.added",
        {"team_id": team_id, "user_id": uuid.uuid4(), "role": "admin"},
        source="agenthq/team",
        actor=actor,
        subject="member/123",
        team_id=team_id,
    )
    assert event.specversion == "1.0"
    assert event.type == "member.added"
    assert event.source == "agenthq/team"
    assert event.teamid == team_id
    assert event.actorid == actor.id
    assert event.actorip == "203.0.113.9"
    assert event.actorua == "ua/1"
    assert event.traceparent == "00-abc"
    assert event.dataversion == "1"
    assert event.time.tzinfo is not None
    # data is stored JSON-ready (uuids as strings).
    assert event.data["team_id"] == str(team_id)
    json.dumps(event.data)


async def test_create_accepts_a_model_instance() -> None:
    team_id = uuid.uuid4()
    event = registry.create(
        "team.updated", TeamUpdated(team_id=team_id, name="n"), source="agenthq/team"
    )
    assert event.data == {"team_id": str(team_id), "name": "n"}


async def test_create_system_actor_by_default() -> None:
    event = team_updated()
    assert event.actorid is None
    assert event.actorip is None


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("team.updated", {"team_id": "not-a-uuid", "name": "x"}),
        ("team.updated", {"name": "x"}),
        ("llm.tokens.used", {"tokens": -1}),
        ("api.calls", {"count": "lots"}),
        (
            "invoice.finalized",
            {"team_id": str(uuid.uuid4()), "period": "2026-1", "total": 1, "currency": "USD"},
        ),
    ],
)
async def test_create_refuses_bad_data(type_: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        registry.create(type_, data, source="agenthq/test")


async def test_create_refuses_unregistered_type() -> None:
    with pytest.raises(ValueError, match="unregistered"):
        registry.create("nothing.happened", {}, source="agenthq/test")
    with pytest.raises(ValueError, match="unregistered"):
        registry.create(
            "team.updated",
            {"team_id": uuid.uuid4(), "name": "x"},
            source="agenthq/test",
            version="99",
        )


async def test_register_twice_refused() -> None:
    local = EventRegistry()
    local.register("a.b", TeamUpdated, producer="p")
    with pytest.raises(ValueError):
        local.register("a.b", TeamUpdated, producer="p")
    local.register("a.b", TeamUpdated, producer="p", version="2")
    assert [i.version for i in local.types()] == ["1", "2"]


async def test_parse_data_returns_the_model() -> None:
    event = team_updated()
    data = registry.parse_data(event)
    assert isinstance(data, TeamUpdated)
    assert str(data.team_id) == event.data["team_id"]
    assert data.name == "Platform"


async def test_parse_data_ignores_extra_fields() -> None:
    event = team_updated()
    event.data["added_later"] = True
    data = registry.parse_data(event)
    assert isinstance(data, TeamUpdated)


async def test_parse_data_invalid_data_raises() -> None:
    event = CloudEvent(source="agenthq/x", type="team.updated", data={"team_id": "nope"})
    with pytest.raises(InvalidEventData):
        registry.parse_data(event)


async def test_parse_data_unknown_version_of_known_type() -> None:
    event = team_updated()
    event.dataversion = "2"
    with pytest.raises(UnknownDataVersion):
        registry.parse_data(event)


async def test_parse_data_unknown_type_returns_none() -> None:
    event = CloudEvent(source="agenthq/other", type="something.else", data={"x": 1})
    assert registry.parse_data(event) is None
    event.dataversion = "7"
    assert registry.parse_data(event) is None


async def test_registry_versions_side_by_side() -> None:
    class V2(BaseModel):
        team_id: uuid.UUID
        title: str

    local = EventRegistry()
    local.register("team.updated", TeamUpdated, producer="team")
    local.register("team.updated", V2, producer="team", version="2")
    team_id = uuid.uuid4()
    v2 = local.create("team.updated", {"team_id": team_id, "title": "t"}, source="s", version="2")
    assert v2.dataversion == "2"
    assert isinstance(local.parse_data(v2), V2)
    with pytest.raises(UnknownDataVersion):
        local.parse_data(v2.model_copy(update={"dataversion": "3"}))


# --- envelope -----------------------------------------------------------------------------


async def test_cloudevent_round_trip() -> None:
    event = team_updated(actor=Actor(id=uuid.uuid4(), ip="198.51.100.1"))
    raw = event.to_bytes()
    decoded = json.loads(raw)
    assert decoded["specversion"] == "1.0"
    assert decoded["id"] == str(event.id)
    assert decoded["type"] == "team.updated"
    assert "actorua" not in decoded  # None attributes are left out
    back = CloudEvent.from_bytes(raw)
    assert back == event
    assert back.time == event.time
    assert registry.parse_data(back) == registry.parse_data(event)


async def test_cloudevent_keeps_unknown_extensions() -> None:
    raw = json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "agenthq/other",
            "type": "task.created",
            "time": "2026-11-24T10:00:00.123Z",
            "customext": "kept",
            "data": {"task_id": str(uuid.uuid4())},
        }
    ).encode()
    event = CloudEvent.from_bytes(raw)
    assert event.time == datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)
    assert json.loads(event.to_bytes())["customext"] == "kept"
    assert event.dataversion == "1"


async def test_cloudevent_time_keeps_its_offset() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9)))
    event = CloudEvent(source="s", type="t.x", time=at)
    assert CloudEvent.from_bytes(event.to_bytes()).time == at


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        b'{"specversion": "0.3", "source": "s", "type": "t"}',
        b'{"specversion": "1.0", "source": "s", "type": ""}',
        b'{"specversion": "1.0", "source": "s", "type": "t", "id": "not-a-uuid"}',
    ],
)
async def test_cloudevent_from_bytes_rejects_invalid(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        CloudEvent.from_bytes(raw)


@pytest.mark.parametrize(
    ("subject", "resource"),
    [
        ("member/8c1d", ("member", "8c1d")),
        ("team/1f0a-uuid", ("team", "1f0a-uuid")),
        ("workspace/a/b", ("workspace", "a/b")),
        ("team", ("team", None)),
        ("team/", ("team", None)),
        ("/abc", (None, "abc")),
        (None, (None, None)),
        ("", (None, None)),
    ],
)
async def test_cloudevent_resource(
    subject: str | None, resource: tuple[str | None, str | None]
) -> None:
    assert CloudEvent(source="s", type="t.x", subject=subject).resource == resource


# --- catalogue against EVENTS.md ---------------------------------------------------------


def events_md_table() -> list[tuple[str, str, set[str]]]:
    """(type, producer, data fields) for every event type the contract lists."""
    if not EVENTS_MD.is_file():
        pytest.fail(
            f"EVENTS.md not found at {EVENTS_MD} (expected <repo>/../shared/contract/EVENTS.md)",
            pytrace=False,
        )
    text = EVENTS_MD.read_text()
    section = text.split("## Event types", 1)
    assert len(section) == 2, "EVENTS.md has no '## Event types' section"
    rows: list[tuple[str, str, set[str]]] = []
    for line in section[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.strip().startswith("|") or len(cells) != 3:
            continue
        if cells[0] == "type" or set(cells[0]) <= {"-", ":"}:
            continue
        match = re.search(r"`\{([^}]*)\}`", cells[2])
        assert match, f"no data fields in EVENTS.md row {line!r}"
        fields = {f.strip() for f in match.group(1).split(",") if f.strip()}
        for type_ in cells[0].split("/"):
            rows.append((type_.strip(), cells[1], fields))
    assert len(rows) >= 20, f"parsed only {len(rows)} event types from {EVENTS_MD}"
    return rows


async def test_every_events_md_type_is_registered() -> None:
    rows = events_md_table()
    missing = [t for t, _, _ in rows if registry.info(t) is None]
    assert not missing, f"event types in EVENTS.md but not registered: {missing}"


async def test_events_md_producers_and_fields_match_the_registry() -> None:
    problems = []
    for type_, producer, fields in events_md_table():
        info = registry.info(type_)
        assert info is not None, type_
        if info.producer != producer:
            problems.append(f"{type_}: producer {info.producer!r} != {producer!r}")
        model_fields = set(info.data_model.model_fields)
        if model_fields != fields:
            problems.append(f"{type_}: data fields {sorted(model_fields)} != {sorted(fields)}")
    assert not problems, "\n".join(problems)


async def test_registry_has_nothing_beyond_events_md() -> None:
    documented = {t for t, _, _ in events_md_table()}
    registered = {i.type for i in registry.types()}
    assert registered == documented


# --- AsyncAPI -----------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found.extend(_refs(value))
        return found
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


async def test_asyncapi_document() -> None:
    doc = build_asyncapi(registry)
    # JSON-serialisable, and unchanged by a round trip through JSON.
    assert json.loads(json.dumps(doc)) == doc
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["defaultContentType"] == CONTENT_TYPE

    infos = registry.types()
    assert len(doc["channels"]) == len(infos)
    addresses = {c["address"] for c in doc["channels"].values()}
    names = {m["name"] for m in doc["components"]["messages"].values()}
    for info in infos:
        assert info.type in addresses, f"no channel for {info.type}"
        assert info.type in names, f"no message for {info.type}"
    for key, channel in doc["channels"].items():
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "agenthq.events"
        assert channel["messages"]
        assert f"publish_{key}" in doc["operations"]
    for message in doc["components"]["messages"].values():
        assert message["contentType"] == CONTENT_TYPE
        assert message["payload"]


async def test_asyncapi_refs_resolve() -> None:
    doc = build_asyncapi(registry)
    refs = _refs(doc)
    assert refs
    for ref in refs:
        _resolve(doc, ref)


async def test_asyncapi_data_schema_lists_model_fields() -> None:
    doc = build_asyncapi(registry)
    for info in registry.types():
        key = f"{info.type.replace('.', '_')}_v{info.version}"
        schema = doc["components"]["schemas"][f"{key}_data"]
        assert set(schema["properties"]) == set(info.data_model.model_fields), info.type


# --- topic matching -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "team.created", True),
        ("#", "llm.tokens.used", True),
        ("#", "api", True),
        ("*", "api", True),
        ("*", "team.created", False),
        ("team.*", "team.created", True),
        ("team.*", "team.plan_changed", True),
        ("team.*", "team", False),
        ("team.*", "team.a.b", False),
        ("team.*", "teams.created", False),
        ("team.*", "member.added", False),
        ("task.#", "task", True),
        ("task.#", "task.created", True),
        ("task.#", "task.a.b.c", True),
        ("task.#", "tasks.created", False),
        ("task.#", "member.task", False),
        ("#.used", "llm.tokens.used", True),
        ("#.used", "used", True),
        ("#.used", "llm.tokens.unused", False),
        ("llm.*.used", "llm.tokens.used", True),
        ("llm.*.used", "llm.used", False),
        ("*.created", "team.created", True),
        ("*.created", "team.deleted", False),
        ("#.*", "a", True),
        ("#.*", "a.b.c", True),
        ("api.calls", "api.calls", True),
        ("api.calls", "api.call", False),
        ("api.calls", "api.calls.more", False),
        ("api.calls", "xapi.calls", False),
        ("usage.quota_exceeded", "usage.quota_exceeded", True),
        ("usage.quota_exceeded", "usage.quota", False),
    ],
)
async def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected
