"""The activity export: the listing's records, as CSV or NDJSON, streamed.

The first tests go through the in-process client (``httpx.ASGITransport``,
which buffers whole responses); the last ones serve the same service with a
real uvicorn server, to see the body arrive in chunks with constant memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import json
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from agenthq_activity.activity.partitions import Month
from agenthq_activity.activity.service import ActivityLog
from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.events import CloudEvent
from agenthq_common.service import Service
from agenthq_common.testing.plugin import eventually
from agenthq_common.testing.tokens import TestSigner

from .conftest import AUDIT_QUEUE, USER_AGENT, ActivityHarness

COLUMNS = [
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
]
CSV_HEADER = (",".join(COLUMNS) + "\r\n").encode()
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
MiB = 1024 * 1024


# -- helpers -----------------------------------------------------------------


async def export(
    h: ActivityHarness, team_id: uuid.UUID | str, user: uuid.UUID | None, **params: Any
) -> httpx.Response:
    headers = h.signer.headers(user) if user is not None else {}
    return await h.client.get(
        f"/v1/teams/{team_id}/activity/export", params=params, headers=headers
    )


def parse_csv(body: bytes) -> list[dict[str, Any]]:
    """CSV rows back into Activity objects (empty cell: null; metadata: its JSON)."""
    text = body.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows, "not even a header"
    assert rows[0] == COLUMNS
    items = []
    for row in rows[1:]:
        assert len(row) == len(COLUMNS), row
        item: dict[str, Any] = {
            k: (v if v != "" else None) for k, v in zip(COLUMNS, row, strict=True)
        }
        if item["metadata"] is not None:
            item["metadata"] = json.loads(item["metadata"])
        items.append(item)
    return items


def parse_ndjson(body: bytes) -> list[dict[str, Any]]:
    if not body:
        return []
    text = body.decode("utf-8")
    assert text.endswith("\n"), "the last record's line is not terminated"
    lines = text[:-1].split("\n")
    return [json.loads(line) for line in lines]


def assert_export_headers(response: httpx.Response, team_id: uuid.UUID, fmt: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[fmt]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers.get("x-request-id")
    disposition = response.headers["content-disposition"]
    found = re.fullmatch(
        rf'attachment; filename="activity-{team_id}-(\d{{8}}T\d{{6}}Z)\.{fmt}"', disposition
    )
    assert found, disposition
    stamp = datetime.strptime(found[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)


def assert_same_records(exported: list[dict[str, Any]], listed: list[dict[str, Any]]) -> None:
    """Exactly the listing's records, in its order; times as the API writes them."""
    assert len(exported) == len(listed)
    for got, want in zip(exported, listed, strict=True):
        assert set(got) == set(COLUMNS)
        assert got["created_at"].endswith("Z"), got["created_at"]
        assert datetime.fromisoformat(got["created_at"]) == datetime.fromisoformat(
            want["created_at"]
        )
        assert {k: v for k, v in got.items() if k != "created_at"} == {
            k: v for k, v in want.items() if k != "created_at"
        }
    # And exactly the listing's text of each time (both are "the API's" times).
    assert [i["created_at"] for i in exported] == [i["created_at"] for i in listed]


async def assert_export_matches_listing(
    h: ActivityHarness, team_id: uuid.UUID, user: uuid.UUID, **filters: Any
) -> list[dict[str, Any]]:
    listed, _ = await h.all_pages(team_id, user, limit=7, **filters)
    as_csv = await export(h, team_id, user, format="csv", **filters)
    assert_export_headers(as_csv, team_id, "csv")
    assert as_csv.content.startswith(CSV_HEADER)
    assert_same_records(parse_csv(as_csv.content), listed)
    as_ndjson = await export(h, team_id, user, format="ndjson", **filters)
    assert_export_headers(as_ndjson, team_id, "ndjson")
    parsed = parse_ndjson(as_ndjson.content)
    assert_same_records(parsed, listed)
    assert parsed == listed  # NDJSON lines are the listing's very objects
    return listed


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error  # type: ignore[no-any-return]


# -- formats round-trip ------------------------------------------------------


@dataclass
class VariedTeam:
    team_id: uuid.UUID
    owner: uuid.UUID
    other: uuid.UUID
    task_id: uuid.UUID
    t0: datetime
    events: list[CloudEvent]


def _event(
    type_: str,
    data: dict[str, Any],
    *,
    team_id: uuid.UUID,
    actor: uuid.UUID | None,
    at: datetime,
    subject: str | None = None,
    ip: str | None = "203.0.113.9",
    ua: str | None = USER_AGENT,
) -> CloudEvent:
    return CloudEvent(
        source="agenthq/tests",
        type=type_,
        subject=subject,
        teamid=team_id,
        actorid=actor,
        actorip=ip,
        actorua=ua,
        time=at,
        data=data,
    )


async def varied_team(h: ActivityHarness) -> VariedTeam:
    """A team with ~30 records of every awkward shape, over several months."""
    owner, other = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=100)
    team_id, setup = await h.create_team(owner, at=t0)
    task_id = uuid.uuid4()
    awkward = [
        "plain",
        "comma, separated, values",
        'she said "hello", then ""bye""',
        "line one\nline two\r\nline three\rline four",
        "Ünïcödé — 日本語 — emoji 🚀🎉 — RTL שלום",
        "\ttab\tand trailing space ",
        "=SUM(A1:A9)",
        "nul\x00byte",
        "",
        "   ",
        "\\back\\slash",
    ]
    events: list[CloudEvent] = []
    for n, text in enumerate(awkward):
        events.append(
            _event(
                "note.posted",
                {"text": text, "n": n, "nested": {"list": [text, n, None, True, 1.5]}},
                team_id=team_id,
                actor=owner if n % 2 else other,
                at=t0 + timedelta(days=9 * n, seconds=n),
                subject=f"note/{n}",
                ua=f"ua {n}: {text}" if n % 3 else USER_AGENT,
            )
        )
    # Nulls: no ip, no user agent, no subject, no actor.
    events.append(
        _event(
            "api.calls.noted",
            {"count": 17},
            team_id=team_id,
            actor=None,
            at=t0 + timedelta(days=20, hours=1),
            ip=None,
            ua=None,
        )
    )
    events.append(
        _event(
            "note.posted",
            {},
            team_id=team_id,
            actor=owner,
            at=t0 + timedelta(days=30, hours=2),
            subject="",
            ip="not-an-ip",
            ua="",
        )
    )
    # IPv6 (normalised), a subject without id, one with odd characters.
    events.append(
        _event(
            "agent.run.started",
            {"run": "r-1", "deep": {"a": {"b": {"c": [1, [2, [3, {"d": 'e, "f"\n'}]]]}}}},
            team_id=team_id,
            actor=other,
            at=t0 + timedelta(days=45),
            subject="agent_run/",
            ip="2001:DB8::1",
            ua='Agent "007", v2\nsecond line',
        )
    )
    events.append(
        _event(
            "agent.run.finished",
            {"run": "r-1", "big": 2**53, "neg": -1, "float": 0.1, "empty": {}, "none": None},
            team_id=team_id,
            actor=other,
            at=t0 + timedelta(days=46),
            subject='weird,type/an "id", with\nnewline',
        )
    )
    # A very long user agent (clipped to 2000 by the service).
    events.append(
        _event(
            "agent.run.finished",
            {"run": "r-2"},
            team_id=team_id,
            actor=owner,
            at=t0 + timedelta(days=47),
            subject="agent_run/r-2",
            ua="x" * 2500,
        )
    )
    # Known types, over several months; three of them at the same instant.
    same = t0 + timedelta(days=60, microseconds=123456)
    for n in range(3):
        events.append(
            _event(
                "task.created",
                {"task_id": str(uuid.uuid4()), "workspace_id": None},
                team_id=team_id,
                actor=owner,
                at=same,
                subject=f"task/tie-{n}",
            )
        )
    events.append(
        _event(
            "task.created",
            {"task_id": str(task_id), "workspace_id": None},
            team_id=team_id,
            actor=owner,
            at=t0 + timedelta(days=70),
            subject=f"task/{task_id}",
        )
    )
    events.append(
        _event(
            "task.completed",
            {"task_id": str(task_id), "workspace_id": None, "status": "done"},
            team_id=team_id,
            actor=other,
            at=t0 + timedelta(days=99, hours=23),
            subject=f"task/{task_id}",
        )
    )
    for n in range(6):
        events.append(
            _event(
                "task.completed",
                {"task_id": str(uuid.uuid4()), "workspace_id": None, "status": "failed"},
                team_id=team_id,
                actor=other if n % 2 else owner,
                at=t0 + timedelta(days=80 + n, minutes=n),
                subject=f"task/t{n}",
            )
        )
    events.append(
        _event(
            "member.added",
            {"team_id": str(team_id), "user_id": str(other), "role": "member"},
            team_id=team_id,
            actor=owner,
            at=t0 + timedelta(seconds=30),
            subject=f"member/{other}",
        )
    )
    for event in events:
        await h.bus.publish(event)
    await h.wait_applied(AUDIT_QUEUE, *events)
    return VariedTeam(team_id, owner, other, task_id, t0, [*setup, *events])


async def test_both_formats_round_trip_to_the_listing(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    team = await varied_team(h)
    listed = await assert_export_matches_listing(h, team.team_id, team.owner)
    assert len(listed) == len(team.events) >= 30
    # The awkward values did make it into the records compared above.
    texts = {(i["metadata"] or {}).get("text") for i in listed}
    assert "line one\nline two\r\nline three\rline four" in texts
    assert 'she said "hello", then ""bye""' in texts
    assert "nul\ufffdbyte" in texts
    assert any(i["ip_address"] is None for i in listed)
    assert any(i["user_agent"] is None for i in listed)
    assert any(i["resource_type"] is None for i in listed)
    assert any(i["user_id"] is None for i in listed)
    assert any(i["ip_address"] == "2001:db8::1" for i in listed)
    assert any(i["user_agent"] == 'Agent "007", v2\nsecond line' for i in listed)
    assert any(i["user_agent"] == "x" * 2000 for i in listed)
    months = {datetime.fromisoformat(i["created_at"]).strftime("%Y-%m") for i in listed}
    assert len(months) >= 3


async def test_csv_layout(activity_harness: ActivityHarness) -> None:
    """Header row, CRLF, empty cells for nulls, metadata as JSON text, times with Z."""
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    event = _event(
        "api.calls.noted",
        {"count": 17, "who": "a,b"},
        team_id=team_id,
        actor=None,
        at=at,
        ip=None,
        ua=None,
    )
    await h.bus.publish(event)
    await h.wait_applied(AUDIT_QUEUE, event)
    response = await export(h, team_id, owner, format="csv", action="api.calls.noted")
    assert_export_headers(response, team_id, "csv")
    lines = response.content.split(b"\r\n")
    assert lines[0] + b"\r\n" == CSV_HEADER
    assert lines[2:] == [b""]  # one record, CRLF-terminated
    (item,) = parse_csv(response.content)
    (row,) = await h.rows(event_id=event.id)
    assert lines[1].decode() == (
        # jsonb's own text of the object (its key order: shorter keys first)
        f'{row.id},{team_id},,api.calls.noted,,,"{{""who"": ""a,b"", ""count"": 17}}",,,'
        "2026-01-02T03:04:05.600000Z"
    )
    assert item["metadata"] == {"count": 17, "who": "a,b"}


@pytest.mark.parametrize(
    "filters",
    [
        {"action": "task.created"},
        {"action": "task."},
        {"action": "task*"},
        {"action": "agent.run.*"},
        {"resource_type": "task"},
        {"resource_type": "note", "resource_id": "3"},
        {"user_id": "OTHER"},
        {"user_id": "OTHER", "action": "task.", "since": "T+60d"},
        {"since": "T+20d", "until": "T+70d"},
        {"until": "T+45d", "resource_type": "note"},
        {"q": "comma"},
        {"q": "r-1 OR done"},
        {"q": "failed", "user_id": "OWNER"},
    ],
    ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()),
)
async def test_filters_apply_to_the_export(
    activity_harness: ActivityHarness, filters: dict[str, str]
) -> None:
    h = activity_harness
    team = await shared_varied_team(h)

    def value(v: str) -> str:
        if v == "OTHER":
            return str(team.other)
        if v == "OWNER":
            return str(team.owner)
        if v.startswith("T+"):
            return (team.t0 + timedelta(days=int(v[2:-1]))).isoformat()
        return v

    params = {k: value(v) for k, v in filters.items()}
    listed = await assert_export_matches_listing(h, team.team_id, team.owner, **params)
    # Each filter does select something, and not everything.
    assert 0 < len(listed) < len(team.events), params


_shared: dict[str, VariedTeam] = {}


async def shared_varied_team(h: ActivityHarness) -> VariedTeam:
    """One varied team for every filter case (the bus round trip costs a second)."""
    if "team" not in _shared:
        _shared["team"] = await varied_team(h)
    return _shared["team"]


async def test_empty_selection(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    for params in ({"action": "nothing.here"}, {"q": "nosuchwordanywhere"}):
        as_csv = await export(h, team_id, owner, format="csv", **params)
        assert_export_headers(as_csv, team_id, "csv")
        assert as_csv.content == CSV_HEADER
        as_ndjson = await export(h, team_id, owner, format="ndjson", **params)
        assert_export_headers(as_ndjson, team_id, "ndjson")
        assert as_ndjson.content == b""


async def test_csv_is_the_default_format(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, setup = await h.create_team(owner)
    await h.wait_applied(AUDIT_QUEUE, *setup)
    response = await export(h, team_id, owner)
    assert_export_headers(response, team_id, "csv")
    listed, _ = await h.all_pages(team_id, owner)
    assert_same_records(parse_csv(response.content), listed)
    assert len(listed) == 2


# -- auth and bad input ------------------------------------------------------


async def test_no_token_gets_401(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    for fmt in ("csv", "ndjson"):
        assert_error(await export(h, team_id, None, format=fmt), 401, "unauthorized")
    response = await h.client.get(
        f"/v1/teams/{team_id}/activity/export", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert "Traceback" not in response.text and "id,team_id" not in response.text


async def test_non_member_and_other_team_get_404(activity_harness: ActivityHarness) -> None:
    h = activity_harness
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    other_team, _ = await h.create_team(stranger)
    for fmt in ("csv", "ndjson"):
        error = assert_error(await export(h, team_id, stranger, format=fmt), 404, "team_not_found")
        # The owner of one team, asking for another team's export.
        response = await export(h, other_team, owner, format=fmt)
        assert_error(response, 404, "team_not_found")
        assert response.json()["error"] == error
        # And the same answer as for a team that does not exist.
        missing = await export(h, uuid.uuid4(), owner, format=fmt)
        assert_error(missing, 404, "team_not_found")
        assert missing.json()["error"] == error
        assert str(other_team) not in response.text


@pytest.mark.parametrize("fmt", ["xml", "CSV", "", "json"])
async def test_unknown_format_gets_422(activity_harness: ActivityHarness, fmt: str) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    error = assert_error(await export(h, team_id, owner, format=fmt), 422, "validation_error")
    assert "format" in {d["field"] for d in error.get("details") or []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"action": "*"}, "action"),
        ({"q": "!!!"}, "q"),
        ({"user_id": "nobody"}, "user_id"),
    ],
)
async def test_bad_filters_get_422(
    activity_harness: ActivityHarness, params: dict[str, str], field: str
) -> None:
    h = activity_harness
    owner = uuid.uuid4()
    team_id, _ = await h.create_team(owner)
    error = assert_error(
        await export(h, team_id, owner, format="ndjson", **params), 422, "validation_error"
    )
    assert field in {d["field"] for d in error.get("details") or []}


# -- streaming with constant memory over 200,000 rows ------------------------

BULK_ROWS = 200_000


def _proc_status(field: str) -> int:
    """A /proc/self/status figure, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _proc_status("VmHWM") <= _proc_status("VmRSS") + MiB


class _Server(uvicorn.Server):
    # The test's process keeps its own signal handlers (Ctrl-C stops pytest).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class BulkTeam:
    team_id: uuid.UUID
    owner: uuid.UUID
    base_url: str
    signer: TestSigner
    db: Database
    rows: int  # every record of the team (the bulk ones and those of its creation)


def _bulk_records(team_id: uuid.UUID, users: list[uuid.UUID], newest: datetime) -> Iterator[Any]:
    """Generated lazily, so that the insert itself does not grow the process
    (and cheaply: ids from a seeded generator, metadata from a template)."""
    random_ids = random.Random(team_id.int)
    hash_ = b"\x01" * 32
    actions = ("task.created", "task.completed", "workspace.updated")
    metadata = (
        '{"n": %d, "task_id": "%s", "note": "bulk record %d, with a comma and \\"quotes\\" '
        'and \u00fc \u2014 padding padding padding padding padding padding"}'
    )
    step = timedelta(seconds=10)
    for n in range(BULK_ROWS):
        yield (
            uuid.UUID(int=random_ids.getrandbits(128)),
            uuid.UUID(int=random_ids.getrandbits(128)),
            team_id,
            users[n % 3],
            actions[n % 3],
            "bulk",
            f"bulk-{n:06d}",
            metadata % (n, uuid.UUID(int=n), n),
            "203.0.113.9",
            USER_AGENT,
            newest - step * n,
            n + 1_000_000,
            hash_,
            hash_,
        )


@pytest.fixture(scope="module")
async def bulk_team(
    activity_service: Service,
    activity_client: httpx.AsyncClient,
    activity_bus: Bus,
    signer: TestSigner,
) -> AsyncIterator[BulkTeam]:
    h = ActivityHarness(activity_service, activity_client, activity_bus, signer)
    owner = uuid.uuid4()
    team_id, setup = await h.create_team(owner)  # a fresh team: no other test verifies it
    await h.wait_applied(AUDIT_QUEUE, *setup)
    newest = datetime.now(UTC) - timedelta(hours=1)
    oldest = newest - timedelta(seconds=10 * BULK_ROWS)
    months = {Month.of(oldest), Month.of(newest)}
    month = Month.of(oldest)
    while month < Month.of(newest):
        months.add(month)
        month = month.next()
    users = [owner, uuid.uuid4(), uuid.uuid4()]
    async with activity_service.db.driver_connection() as conn:
        await activity_service.component(ActivityLog).partitions.ensure(conn, months)
        await conn.copy_records_to_table(
            "activity_logs",
            records=_bulk_records(team_id, users, newest),
            columns=[
                "id",
                "event_id",
                "team_id",
                "user_id",
                "action",
                "resource_type",
                "resource_id",
                "metadata",
                "ip_address",
                "user_agent",
                "created_at",
                "seq",
                "prev_hash",
                "hash",
            ],
        )
        # As autovacuum soon would: plans for what the partitions now hold.
        await conn.execute("ANALYZE " + ", ".join(f'"{m.name}"' for m in sorted(months)))
    gc.collect()

    app = activity_service.create_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield BulkTeam(
            team_id,
            owner,
            f"http://127.0.0.1:{port}",
            signer,
            activity_service.db,
            BULK_ROWS + len(setup),
        )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()
            # Leave the log as other tests expect it (the team's own two records stay).
            async with activity_service.db.driver_connection() as conn:
                await conn.execute(
                    "DELETE FROM activity_logs WHERE team_id = $1 AND resource_type = 'bulk'",
                    team_id,
                )


@dataclass
class Streamed:
    status: int
    headers: httpx.Headers
    lines: int
    size: int
    chunks: int
    head: bytes  # the body's first 16 KiB
    last_line: bytes
    ttfb: float
    total: float


async def stream_export(
    bulk: BulkTeam, *, keep: list[bytes] | None = None, **params: Any
) -> Streamed:
    """Download an export, counting lines and bytes as they arrive, without
    keeping the body (unless ``keep`` asks for it)."""
    async with httpx.AsyncClient(base_url=bulk.base_url, timeout=60.0) as client:
        started = time.perf_counter()
        async with client.stream(
            "GET",
            f"/v1/teams/{bulk.team_id}/activity/export",
            params=params,
            headers=bulk.signer.headers(bulk.owner),
        ) as response:
            lines = size = chunks = 0
            head = tail = b""
            ttfb = 0.0
            async for chunk in response.aiter_raw():
                if not chunks:
                    ttfb = time.perf_counter() - started
                if len(head) < 16384:
                    head = (head + chunk)[:16384]
                chunks += 1
                size += len(chunk)
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-4096:]
                if keep is not None:
                    keep.append(chunk)
            total = time.perf_counter() - started
    last_line = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    return Streamed(
        response.status_code, response.headers, lines, size, chunks, head, last_line, ttfb, total
    )


@dataclass
class Measured:
    got: Streamed
    before: int  # VmRSS when the export started
    growth_sampled: int  # the highest VmRSS sampled every 50 ms, less ``before``
    growth_hwm: int | None  # VmHWM (reset at the start) less ``before``, where available

    def figures(self, fmt: str) -> str:
        got = self.got
        hwm = f"{self.growth_hwm / MiB:.1f} MiB" if self.growth_hwm is not None else "n/a"
        return (
            f"{fmt}: {got.size / MiB:.1f} MiB in {got.chunks} chunks, {got.lines} lines, "
            f"ttfb {got.ttfb * 1000:.0f} ms, total {got.total:.1f} s; RSS before "
            f"{self.before / MiB:.1f} MiB, peak growth: VmHWM {hwm}, "
            f"sampled {self.growth_sampled / MiB:.1f} MiB"
        )


async def measure_export(
    bulk: BulkTeam, fmt: str, *, keep: list[bytes] | None = None, **params: Any
) -> Measured:
    # Warm up (imports, pools, caches) on a small selection of the same shape.
    warm = await stream_export(bulk, format=fmt, resource_id="bulk-000000")
    assert warm.status == 200
    gc.collect()

    samples: list[int] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(_proc_status("VmRSS"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)

    before = _proc_status("VmRSS")
    peak_reset = _reset_peak_rss()
    sampler = asyncio.create_task(sample())
    try:
        got = await stream_export(bulk, format=fmt, keep=keep, **params)
    finally:
        done.set()
        await sampler
    samples.append(_proc_status("VmRSS"))
    peak_hwm = _proc_status("VmHWM") if peak_reset else None
    return Measured(
        got,
        before,
        max(samples) - before,
        peak_hwm - before if peak_hwm is not None else None,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
async def test_large_export_streams_in_constant_memory(bulk_team: BulkTeam, fmt: str) -> None:
    measured = await measure_export(bulk_team, fmt)
    got, figures = measured.got, measured.figures(fmt)
    print(figures)

    assert got.status == 200, figures
    assert got.headers["content-type"] == MEDIA_TYPES[fmt]
    assert got.headers["cache-control"] == "no-store"
    assert f'filename="activity-{bulk_team.team_id}-' in got.headers["content-disposition"]
    # Every row arrived (+ the header), newest first.
    assert got.lines == bulk_team.rows + (1 if fmt == "csv" else 0), figures
    if fmt == "csv":
        assert got.head.startswith(CSV_HEADER)
        body = got.head[len(CSV_HEADER) :].decode(errors="replace")
        first = next(csv.reader(io.StringIO(body, newline="")))
        last = next(csv.reader(io.StringIO(got.last_line.decode(), newline="")))
        first_id, last_id = first[5], last[5]
    else:
        first_id = json.loads(got.head.split(b"\n", 1)[0])["resource_id"]
        last_id = json.loads(got.last_line)["resource_id"]
    # The team's creation records are an hour newer than the bulk, so they lead.
    assert first_id is None or not first_id.startswith("bulk-"), first_id
    assert last_id == f"bulk-{BULK_ROWS - 1:06d}"
    # Streamed: many chunks, the first long before the last.
    assert got.size > 60 * MiB, figures
    assert got.chunks > 100, figures
    assert got.ttfb < got.total / 5, figures
    # Constant memory: the growth is a small fraction of the body.
    assert measured.growth_sampled < 40 * MiB, figures
    if measured.growth_hwm is not None:
        assert measured.growth_hwm < 40 * MiB, figures


@pytest.mark.timeout(120)
async def test_the_memory_probe_sees_a_kept_body(bulk_team: BulkTeam) -> None:
    """The control: the same download, keeping every chunk (as a buffering
    server would hold the body), does show up in the figures above."""
    kept: list[bytes] = []
    # A third of the rows is enough to see it.
    measured = await measure_export(bulk_team, "csv", keep=kept, action="task.created")
    figures = measured.figures("csv, task.created only, body kept")
    print(figures)
    assert measured.got.lines == len(range(0, BULK_ROWS, 3)) + 1, figures  # + the header
    assert sum(map(len, kept)) == measured.got.size > 20 * MiB
    assert measured.growth_sampled > 0.5 * measured.got.size, figures
    if measured.growth_hwm is not None:
        assert measured.growth_hwm > 0.5 * measured.got.size, figures
    kept.clear()


async def _pooled_in_transaction(db: Database) -> list[int]:
    """The backends of the idle pooled connections that are inside a transaction."""
    async with contextlib.AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(db.driver_connection())
            for _ in range(max(db.engine.pool.checkedin(), 1))  # type: ignore[attr-defined]
        ]
        return [c.get_server_pid() for c in conns if c.is_in_transaction()]


async def _roll_back_pooled(db: Database) -> None:
    async with contextlib.AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(db.driver_connection())
            for _ in range(max(db.engine.pool.checkedin(), 1))  # type: ignore[attr-defined]
        ]
        for conn in conns:
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")


async def test_a_client_leaving_mid_export_frees_its_connection(bulk_team: BulkTeam) -> None:
    """The reader goes away after a few chunks: the server stops reading, ends
    the snapshot's transaction and gives back a clean connection."""
    db = bulk_team.db
    export_query = "SELECT id, team_id, user_id, action, resource_type"

    async def open_exports() -> list[Any]:
        # Watched from a connection of its own: the pool's may be the culprits.
        watcher = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return list(
                await watcher.fetch(
                    "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
                    "AND left(query, length($1)) = $1",
                    export_query,
                )
            )
        finally:
            await watcher.close()

    async def no_export_open() -> bool:
        left = [(r["pid"], r["state"]) for r in await open_exports() if r["state"] != "idle"]
        assert not left, f"sessions still inside the export's transaction: {left}"
        return True

    try:
        async with httpx.AsyncClient(base_url=bulk_team.base_url, timeout=30.0) as client:
            async with client.stream(
                "GET",
                f"/v1/teams/{bulk_team.team_id}/activity/export",
                params={"format": "ndjson"},
                headers=bulk_team.signer.headers(bulk_team.owner),
            ) as response:
                assert response.status_code == 200
                chunks = 0
                async for _ in response.aiter_raw():
                    chunks += 1
                    if chunks == 10:
                        break
                # The premise: the client leaves with most of the body unread (whether
                # the server's snapshot is still open at this instant depends on how
                # far ahead of the reader it got, so it is not asserted).
                assert chunks == 10
            # Leaving the block closed the connection with most of the body unread.

            # The export's snapshot ends (no session left inside its transaction) ...
            await eventually(no_export_open, within=5.0)
            # ... and every pooled connection is clean: requests that draw any of
            # them work (a connection still inside the export's transaction fails
            # each unit of work that gets it).
            statuses = []
            for _ in range(2 * db.engine.pool.size()):  # type: ignore[attr-defined]
                listed = await client.get(
                    f"/v1/teams/{bulk_team.team_id}/activity",
                    params={"limit": 1},
                    headers=bulk_team.signer.headers(bulk_team.owner),
                )
                statuses.append(listed.status_code)
            assert set(statuses) == {200}, statuses
            assert await _pooled_in_transaction(db) == []
        # And the server still serves exports.
        again = await stream_export(bulk_team, format="csv", resource_id="bulk-000001")
        assert again.status == 200 and again.lines == 2
    finally:
        # Whatever happened, leave no pooled connection inside a transaction for
        # the tests that follow.
        await _roll_back_pooled(db)
