"""Activity log at scale: load 10,000,000 records, time 20 queries, ingest from the bus.

1. Load (``--records``, 10,000,000): a scratch database migrated with the
   activity service's own migrations, its 12 monthly partitions created with
   ``Partitions.ensure``, then records COPYed in by ``--load-workers`` (2)
   processes, spread over ``--teams`` (1,000) teams of skewed sizes (a few
   big teams, a long tail), ~20 users per team, 30 action types with
   resources and small JSON metadata (titles, comments, names, e-mails), over
   the 12 months up to now. Every team's records form a valid hash chain
   (seq 1..n in created_at order, hashes from ``chain.record_hash``) and
   ``activity_chains`` holds each chain's head. The migration's indexes are
   dropped for the COPY and rebuilt after it with exactly their definitions
   (read from the catalog, compared afterwards), partition by partition on
   ``--index-workers`` (2) connections; then VACUUM ANALYZE.
2. Queries: 20 representative listings (plus 2 extra worst cases) through the
   service's query code, ``ActivityRepository(conn).page(ActivityFilter(...),
   limit=51, before=...)``, on one pooled connection of the service's own
   kind (``Database.driver_connection``; asyncpg's statement cache, so
   PostgreSQL may switch to generic plans after 5 runs, as in the service),
   each ``--iterations`` (40) times with random teams and parameters after 3
   warm-up runs; p50/p95/max ms. The slowest instance of each is EXPLAINed
   (ANALYZE) with its parameters (custom plan) and as a generic plan: which
   indexes serve it. Plus ``ActivityLog.verify`` of a median-sized team.
3. Ingestion: the activity service (``bootstrap(...)``, ``service.start()``) in
   a process of its own on a fresh scratch database (``--ingest-into-loaded``:
   the loaded one), and, side by side in the same run, the raw aio-pika
   baseline of ``bench/events.py`` (a durable queue bound to a topic
   exchange, one ack per message, the same prefetch as ``activity.audit``).
   One publisher process per side publishes the same kind of CloudEvents
   (varied types and teams; persistent, confirmed, ``--batch`` per gather from
   ``--producers`` tasks). events/s = ``--ingest-events`` / (last event
   committed into ``activity_logs``, or acked, - first publish).

Goals: every query p95 < 50 ms (the seed asks < 500 ms); ingestion >= 5,000
events/s. A miss is a finding (exit 0) unless ``--strict``. The last line is
``BENCH_JSON {...}``. ``--keep`` keeps the loaded database, ``--reuse NAME``
runs the queries (and ingestion) on a kept one without loading.

URLs: ``AGENTHQ_TEST_POSTGRES_URL``, ``AGENTHQ_TEST_BROKER_URL``,
``AGENTHQ_TEST_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import multiprocessing
import os
import random
import signal
import statistics
import sys
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
import asyncpg
import events as eb  # bench/events.py: worker processes, baseline, CPU accounting, report
from aio_pika.abc import AbstractIncomingMessage

from agenthq_activity.activity.chain import GENESIS, record_hash
from agenthq_activity.activity.partitions import Month, Partitions
from agenthq_activity.activity.repository import ActivityRepository
from agenthq_activity.activity.search import ActivityFilter
from agenthq_activity.activity.service import ActivityLog
from agenthq_activity.main import bootstrap
from agenthq_activity.settings import ActivitySettings
from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.events import CloudEvent
from agenthq_common.events.envelope import CONTENT_TYPE
from agenthq_common.migrations import create_database_if_missing, drop_database, upgrade
from agenthq_common.outbox import asyncpg_dsn
from agenthq_common.testing.infra import delete_bus_namespace

POSTGRES_URL = eb.POSTGRES_URL
BROKER_URL = eb.BROKER_URL
REDIS_URL = os.environ.get("AGENTHQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

P95_GOAL_MS = 50.0
SEED_GOAL_MS = 500.0
INGEST_GOAL = 5000.0
PAGE = 50  # items per page; the API fetches one more to know if there is a next page
AUDIT_QUEUE = "activity.audit"
SERVICE_QUEUES = ("activity.audit", "activity.membership")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
clock = time.monotonic

# --------------------------------------------------------------------------- the data

# The head of the vocabulary (most frequent first), then made-up words for the tail.
REAL_WORDS = """
report quarterly revenue review design meeting notes launch plan budget customer onboarding
release roadmap sprint bug fix login page api docs update draft final summary analysis data
pipeline model prompt agent search index deploy staging production incident postmortem feedback
survey invoice contract proposal pricing marketing campaign email newsletter blog post video demo
training security audit compliance policy migration database backup monitoring alert dashboard
metrics performance latency cache queue worker scheduler export import sync integration slack
github jira calendar hiring interview candidate offer offsite goals okr retro weekly monthly annual
forecast sales lead account partner support ticket escalation translation localization mobile ios
android web frontend backend infra cost optimization experiment test benchmark research paper
""".split()
SYLLABLES = (
    "ka lo mi zu re ta vo ne shi dra quo fen bri xal pol yri gan thu mor sel vik ara on el um "
    "pra ze ko li nu sa"
).split()
FIRST_NAMES = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert "
    "sybil trent victor wendy yusuf zoe amara bruno chen dana emeka fatima goran hana ines "
    "jonas kenji lena marco nadia omar priya quentin rosa sven"
).split()
LAST_NAMES = (
    "moreau smith garcia kim nakamura okafor rossi schmidt silva novak khan dubois jensen "
    "lopez murphy tanaka weber ivanova haddad berg costa fischer meyer park singh wright"
).split()
AGENTS = (
    "research-assistant code-reviewer support-triage sales-copilot data-analyst "
    "release-manager qa-tester doc-writer"
).split()
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-3-70b", "mistral-large")
MEMBER_ROLES = ("admin", "member", "viewer", "auditor")
TEAM_SUFFIXES = ("Labs", "Inc", "Team")
IPV4_PARTS = ((11, 223), (0, 255), (0, 255), (1, 254))
CUSTOM_ROLES = ("auditor", "billing-admin", "contractor", "reviewer")
PERMISSIONS = ("workspace:read", "workspace:write", "activity:read", "billing:read", "team:manage")
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "agenthq-cli/2.4.1 (linux; amd64)",
    "agenthq-python/1.8.0",
    "AgentHQ/3.2 (iPhone; iOS 18.1)",
)
TITLES = (
    "prepare {} report",
    "quarterly revenue report for {}",
    "fix {} bug",
    "review {} pull request",
    "update {} docs",
    "{} onboarding checklist",
    "plan {} launch",
    "analyse {} metrics",
    "draft {} proposal",
    "migrate {} to {}",
    "{} {} research",
    "weekly {} sync notes",
    "customer feedback on {}",
    "deploy {} to production",
    "investigate {} latency",
)
# (type, weight, resource type); team.created is each chain's first record only.
ACTIONS: tuple[tuple[str, float, str], ...] = (
    ("llm.tokens.used", 22, "agent"),
    ("task.created", 12, "task"),
    ("task.completed", 10, "task"),
    ("api.calls", 8, "team"),
    ("agent.run.started", 7, "agent"),
    ("agent.run.finished", 7, "agent"),
    ("comment.created", 6, "task"),
    ("document.uploaded", 5, "document"),
    ("storage.changed", 4, "workspace"),
    ("workspace.updated", 3, "workspace"),
    ("document.deleted", 1, "document"),
    ("member.added", 1, "member"),
    ("invitation.created", 1, "invitation"),
    ("workspace.created", 0.8, "workspace"),
    ("invitation.accepted", 0.7, "invitation"),
    ("member.role_changed", 0.5, "member"),
    ("member.removed", 0.4, "member"),
    ("apikey.created", 0.3, "apikey"),
    ("team.updated", 0.3, "team"),
    ("invitation.revoked", 0.2, "invitation"),
    ("role.created", 0.2, "role"),
    ("role.updated", 0.2, "role"),
    ("workspace.deleted", 0.2, "workspace"),
    ("apikey.revoked", 0.1, "apikey"),
    ("role.deleted", 0.1, "role"),
    ("usage.quota_exceeded", 0.1, "team"),
    ("team.plan_changed", 0.05, "team"),
    ("invoice.finalized", 0.05, "invoice"),
    ("team.ownership_transferred", 0.02, "member"),
    ("team.created", 0, "team"),
)
ACTION_TYPES = [a for a, _, _ in ACTIONS]
ACTION_CUM = list(itertools.accumulate(w for _, w, _ in ACTIONS))
SYSTEM_ACTIONS = frozenset(
    {"api.calls", "storage.changed", "usage.quota_exceeded", "invoice.finalized"}
)


def _vocabulary(size: int = 4000) -> list[str]:
    rng = random.Random(20261125)
    words = list(REAL_WORDS)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


VOCAB = _vocabulary()
VOCAB_CUM = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(VOCAB))))  # Zipf
COMMON_WORD = "report"  # the most frequent word (in ~1 record of 7)
RARE_WORDS = VOCAB[200:400]  # a few records per 10,000
PHRASE = '"revenue report"'


def fast_uuid(rng: random.Random) -> str:
    """A version-4 UUID's canonical text (as PostgreSQL prints it), from ``rng``."""
    n = rng.getrandbits(128) & ~((0xF000 << 64) | (0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# JSON string escaping (C): the same escapes as PostgreSQL's jsonb output.
_json_string = json.encoder.encode_basestring  # type: ignore[attr-defined]
_KEY_ORDER: dict[tuple[str, ...], list[str]] = {}


def jsonb_text(value: Any) -> str:
    """PostgreSQL's ``jsonb::text`` of a JSON value: keys ordered by length, then
    bytes; ``", "`` and ``": "`` separators (checked against PostgreSQL at load)."""
    kind = type(value)
    if kind is str:
        return _json_string(value)  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if kind is dict:
        keys = tuple(value)
        order = _KEY_ORDER.get(keys)
        if order is None:
            order = _KEY_ORDER[keys] = sorted(keys, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join([f"{_json_string(k)}: {jsonb_text(value[k])}" for k in order]) + "}"
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is list:
        return "[" + ", ".join([jsonb_text(v) for v in value]) + "]"
    raise TypeError(f"no predictable jsonb text for {kind.__name__}")


def make_teams(n_teams: int, records: int, seed: int) -> list[dict[str, Any]]:
    """Teams of skewed sizes (weight 1/rank + a floor: the biggest ~1/9 of all
    records, the median ~1/2000), with users, workspaces and agents."""
    rng = random.Random(f"teams:{seed}")
    weights = [1 / rank + 0.002 for rank in range(1, n_teams + 1)]
    total = sum(weights)
    sizes = [max(1, int(records * w / total)) for w in weights]
    sizes[0] += records - sum(sizes)
    teams = []
    for i, size in enumerate(sizes):
        domain = f"{rng.choice(VOCAB[130:2000])}{i}.io"
        users = []
        for k in range(min(200, max(20, size // 5000))):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            if rng.random() < 0.9:
                ip = ".".join(str(rng.randint(lo, hi)) for lo, hi in IPV4_PARTS)
            else:
                ip = f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
            users.append(
                {
                    "id": fast_uuid(rng),
                    "name": f"{first.title()} {last.title()}",
                    "email": f"{first}.{last}{k}@{domain}",
                    "ip": ip,
                    "ua": rng.choice(USER_AGENTS),
                }
            )
        workspaces = [
            {"id": fast_uuid(rng), "name": f"{rng.choice(VOCAB[:300])} {rng.choice(VOCAB[:300])}"}
            for _ in range(min(40, 3 + size // 2000))
        ]
        teams.append(
            {
                "id": fast_uuid(rng),
                "rank": i + 1,
                "size": size,
                "name": f"{rng.choice(VOCAB[130:2000]).title()} {rng.choice(TEAM_SUFFIXES)}",
                "domain": domain,
                "plan": rng.choice(["free", "pro", "pro", "enterprise"]),
                "users": users,
                "workspaces": workspaces,
                "agents": rng.sample(AGENTS, rng.randint(3, 6)),
            }
        )
    return teams


class TeamActivity:
    """What one team does: actions, actors, resources and metadata (the event's data)."""

    def __init__(self, team: dict[str, Any], rng: random.Random) -> None:
        self.team = team
        self.rng = rng
        self.users = team["users"]
        self.ips = [ipaddress.ip_address(u["ip"]) for u in self.users]
        self.user_cum = list(itertools.accumulate(1 / (k + 1) for k in range(len(self.users))))
        self.tasks: deque[tuple[str, str, str]] = deque(maxlen=64)  # (id, workspace, title)
        self.documents: deque[tuple[str, str]] = deque(maxlen=32)
        self.invitations: deque[str] = deque(maxlen=16)

    def actions(self, n: int) -> list[str]:
        return self.rng.choices(ACTION_TYPES, cum_weights=ACTION_CUM, k=n)

    def actors(self, n: int) -> list[int]:
        return self.rng.choices(range(len(self.users)), cum_weights=self.user_cum, k=n)

    def words(self, k: int) -> list[str]:
        return self.rng.choices(VOCAB, cum_weights=VOCAB_CUM, k=k)

    def title(self) -> str:
        template = self.rng.choice(TITLES)
        return template.format(*self.words(template.count("{}")))

    def build(self, action: str, at: datetime) -> tuple[str, str, dict[str, Any]]:
        """(resource type, resource id, data) of one event of ``action``."""
        rng, team = self.rng, self.team
        tid = team["id"]
        if action.startswith("task.") or action == "comment.created":
            if action == "task.created" or not self.tasks:
                ws = rng.choice(team["workspaces"])["id"]
                task = (fast_uuid(rng), ws, self.title())
                self.tasks.append(task)
                if action == "task.created":
                    assignee = self.users[self.actors(1)[0]]["email"]
                    data: dict[str, Any] = {
                        "task_id": task[0],
                        "workspace_id": ws,
                        "title": task[2],
                        "assignee": assignee,
                        "priority": rng.choice(("low", "normal", "normal", "high")),
                    }
                    return "task", task[0], data
            task = rng.choice(self.tasks)
            if action == "task.completed":
                data = {
                    "task_id": task[0],
                    "workspace_id": task[1],
                    "title": task[2],
                    "status": rng.choice(("succeeded", "succeeded", "succeeded", "failed")),
                    "duration_ms": rng.randint(200, 900_000),
                }
            else:
                data = {
                    "comment_id": fast_uuid(rng),
                    "task_id": task[0],
                    "text": " ".join(self.words(rng.randint(5, 12))),
                    "author": self.users[self.actors(1)[0]]["name"],
                }
            return "task", task[0], data
        if action == "llm.tokens.used":
            agent = rng.choice(team["agents"])
            data = {"tokens": rng.randint(50, 40_000), "model": rng.choice(MODELS), "agent": agent}
            return "agent", agent, data
        if action.startswith("agent.run."):
            agent = rng.choice(team["agents"])
            if action == "agent.run.started":
                data = {
                    "agent": agent,
                    "run_id": fast_uuid(rng),
                    "prompt": " ".join(self.words(rng.randint(4, 9))),
                }
            else:
                data = {
                    "agent": agent,
                    "run_id": fast_uuid(rng),
                    "status": rng.choice(("completed", "completed", "failed", "cancelled")),
                    "steps": rng.randint(1, 40),
                }
            return "agent", agent, data
        if action == "api.calls":
            return "team", tid, {"count": rng.randint(1, 5000)}
        if action.startswith("document."):
            if action == "document.uploaded" or not self.documents:
                ws = rng.choice(team["workspaces"])["id"]
                doc = (
                    fast_uuid(rng),
                    f"{'-'.join(self.words(2))}.{rng.choice(('pdf', 'md', 'csv', 'png'))}",
                )
                self.documents.append(doc)
                if action == "document.uploaded":
                    data = {
                        "document_id": doc[0],
                        "workspace_id": ws,
                        "filename": doc[1],
                        "bytes": rng.randint(1_000, 50_000_000),
                    }
                    return "document", doc[0], data
            doc = rng.choice(self.documents)
            return "document", doc[0], {"document_id": doc[0], "filename": doc[1]}
        if action == "storage.changed":
            ws = rng.choice(team["workspaces"])["id"]
            return (
                "workspace",
                ws,
                {"delta_bytes": rng.randint(-5_000_000, 50_000_000), "workspace_id": ws},
            )
        if action.startswith("workspace."):
            ws = rng.choice(team["workspaces"])
            if action == "workspace.deleted":
                return "workspace", ws["id"], {"workspace_id": ws["id"], "team_id": tid}
            data = {
                "workspace_id": ws["id"],
                "team_id": tid,
                "name": ws["name"],
                "description": " ".join(self.words(rng.randint(3, 8))),
                "archived": rng.random() < 0.05,
            }
            return "workspace", ws["id"], data
        if action.startswith("member."):
            member = self.users[rng.randrange(len(self.users))]
            if action == "member.role_changed":
                old, new = rng.sample(MEMBER_ROLES, 2)
                data = {
                    "team_id": tid,
                    "user_id": member["id"],
                    "old_role": old,
                    "new_role": new,
                    "email": member["email"],
                }
            else:
                data = {
                    "team_id": tid,
                    "user_id": member["id"],
                    "role": rng.choice(MEMBER_ROLES),
                    "email": member["email"],
                    "name": member["name"],
                }
            return "member", member["id"], data
        if action.startswith("invitation."):
            if action == "invitation.created" or not self.invitations:
                invitation = fast_uuid(rng)
                self.invitations.append(invitation)
                if action == "invitation.created":
                    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                    data = {
                        "invitation_id": invitation,
                        "team_id": tid,
                        "email": f"{first}.{last}@{team['domain']}",
                        "role": rng.choice(MEMBER_ROLES),
                        "expires_at": (at + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    return "invitation", invitation, data
            invitation = rng.choice(self.invitations)
            if action == "invitation.accepted":
                member = self.users[rng.randrange(len(self.users))]
                data = {
                    "invitation_id": invitation,
                    "team_id": tid,
                    "user_id": member["id"],
                    "email": member["email"],
                }
            else:
                data = {"invitation_id": invitation, "team_id": tid}
            return "invitation", invitation, data
        if action.startswith("role."):
            name = rng.choice(CUSTOM_ROLES)
            data = {
                "team_id": tid,
                "name": name,
                "permissions": sorted(rng.sample(PERMISSIONS, rng.randint(1, 4))),
            }
            return "role", name, data
        if action.startswith("apikey."):
            key = fast_uuid(rng)
            data = {"key_id": key, "name": f"{self.words(1)[0]} key", "prefix": f"ahq_{key[:6]}"}
            return "apikey", key, data
        if action == "team.created":
            data = {
                "team_id": tid,
                "name": team["name"],
                "owner_id": self.users[0]["id"],
                "plan": team["plan"],
                "max_members": None if team["plan"] == "enterprise" else 50,
            }
            return "team", tid, data
        if action == "team.updated":
            return "team", tid, {"team_id": tid, "name": f"{team['name']} {self.words(1)[0]}"}
        if action == "team.plan_changed":
            old, new = rng.sample(("free", "pro", "enterprise"), 2)
            data = {"team_id": tid, "old_plan": old, "new_plan": new, "max_members": 50}
            return "team", tid, data
        if action == "team.ownership_transferred":
            old, new = rng.sample(self.users, 2) if len(self.users) > 1 else (self.users[0],) * 2
            data = {"team_id": tid, "old_owner_id": old["id"], "new_owner_id": new["id"]}
            return "member", new["id"], data
        if action == "usage.quota_exceeded":
            limit = rng.choice((1_000_000, 5_000_000, 10_000))
            data = {
                "team_id": tid,
                "metric": rng.choice(("llm_tokens", "api_calls", "storage_bytes")),
                "limit": limit,
                "used": limit + rng.randint(1, 1000),
                "period": at.strftime("%Y-%m"),
            }
            return "team", tid, data
        if action == "invoice.finalized":
            invoice = fast_uuid(rng)
            data = {
                "team_id": tid,
                "period": at.strftime("%Y-%m"),
                "total": rng.randint(0, 500_000),
                "currency": rng.choice(("USD", "EUR", "KRW")),
            }
            return "invoice", invoice, data
        raise ValueError(action)


def team_rows(
    team: dict[str, Any], window: tuple[int, int], seed: int, heads: list[tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    """One team's COPY rows, its chain in created_at order; appends its chain head."""
    rng = random.Random(f"{seed}:{team['id']}")
    activity = TeamActivity(team, rng)
    n = team["size"]
    start, end = window
    times = sorted(rng.randrange(start, end) for _ in range(n))
    actions = activity.actions(n)
    actors = activity.actors(n)
    actions[0], actors[0] = "team.created", 0  # the owner created the team
    tid = team["id"]
    users, ips = activity.users, activity.ips
    prev = GENESIS
    for i in range(n):
        at = EPOCH + timedelta(microseconds=times[i])
        action = actions[i]
        resource_type, resource_id, data = activity.build(action, at)
        metadata = jsonb_text(data)
        if action in SYSTEM_ACTIONS:
            user_id = ip = ua = None
        else:
            user = users[actors[i]]
            user_id, ip, ua = user["id"], ips[actors[i]], user["ua"]
        record = {
            "seq": i + 1,
            "id": fast_uuid(rng),
            "event_id": fast_uuid(rng),
            "team_id": tid,
            "user_id": user_id,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "metadata_text": metadata,
            "ip_address": ip,
            "user_agent": ua,
            "created_at": at,
        }
        digest = record_hash(prev, record)
        yield (
            record["id"],
            record["event_id"],
            tid,
            user_id,
            action,
            resource_type,
            resource_id,
            metadata,
            ip,
            ua,
            at,
            i + 1,
            prev,
            digest,
        )
        prev = digest
    heads.append((uuid.UUID(tid), n, prev))


COPY_COLUMNS = [
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
]


# --------------------------------------------------------------------------- load


def load_worker(
    dsn: str,
    teams: list[dict[str, Any]],
    window: tuple[int, int],
    seed: int,
    chunk: int,
    counter: Any,
) -> None:
    """One loading process: generates its teams' records and COPYs them in."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SET synchronous_commit = off")
            heads: list[tuple[Any, ...]] = []
            rows: list[tuple[Any, ...]] = []
            for team in teams:
                for row in team_rows(team, window, seed, heads):
                    rows.append(row)
                    if len(rows) >= chunk:
                        await conn.copy_records_to_table(
                            "activity_logs", records=rows, columns=COPY_COLUMNS
                        )
                        counter.value += len(rows)
                        rows = []
            if rows:
                await conn.copy_records_to_table(
                    "activity_logs", records=rows, columns=COPY_COLUMNS
                )
                counter.value += len(rows)
            await conn.copy_records_to_table(
                "activity_chains", records=heads, columns=["chain_key", "last_seq", "last_hash"]
            )
        finally:
            await conn.close()

    try:
        asyncio.run(run())
    except BaseException:
        traceback.print_exc()
        sys.exit(1)


_SNAPSHOT = """
SELECT c.relname AS table_name, i.relname AS index_name, pg_get_indexdef(x.indexrelid) AS def,
       x.indisvalid AS valid, con.conname AS constraint_name,
       pg_get_constraintdef(con.oid) AS constraint_def, pi.relname AS parent_index
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid
LEFT JOIN pg_inherits h ON h.inhrelid = x.indexrelid
LEFT JOIN pg_class pi ON pi.oid = h.inhparent
WHERE c.relname = 'activity_logs'
   OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_logs'::regclass)
ORDER BY 1, 2
"""


async def index_snapshot(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(_SNAPSHOT)]


async def drop_indexes(conn: asyncpg.Connection, snapshot: list[dict[str, Any]]) -> None:
    """Drop the log's indexes and primary key (the partitions' go with them)."""
    for row in snapshot:
        if row["table_name"] != "activity_logs":
            continue
        if row["constraint_name"]:
            await conn.execute(
                f'ALTER TABLE activity_logs DROP CONSTRAINT "{row["constraint_name"]}"'
            )
        else:
            await conn.execute(f'DROP INDEX "{row["index_name"]}"')


async def rebuild_indexes(
    dsn: str, snapshot: list[dict[str, Any]], workers: int, mem: str
) -> dict[str, float]:
    """Recreate exactly the snapshot's indexes: each partition's on ``workers``
    connections (the biggest kind first), then the parents' (ON ONLY), attached."""
    jobs: list[tuple[str, str]] = []  # (parent index, statement)
    for row in snapshot:
        if row["table_name"] == "activity_logs":
            continue
        if row["constraint_name"]:
            sql = (
                f'ALTER TABLE "{row["table_name"]}" ADD CONSTRAINT "{row["constraint_name"]}" '
                f"{row['constraint_def']}"
            )
        else:
            sql = row["def"]
        jobs.append((row["parent_index"], sql))
    jobs.sort(key=lambda j: "USING gin" not in j[1])  # GIN builds are the longest
    seconds: dict[str, float] = {}
    queue = deque(jobs)
    done = 0
    started = clock()

    async def worker() -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"SET maintenance_work_mem = '{mem}'")
            await conn.execute("SET max_parallel_maintenance_workers = 0")  # one core each
            while queue:
                parent, sql = queue.popleft()
                t = clock()
                await conn.execute(sql)
                seconds[parent] = seconds.get(parent, 0.0) + clock() - t
                done += 1
        finally:
            await conn.close()

    async def progress() -> None:
        while True:
            await asyncio.sleep(30)
            print(f"  indexes: {done}/{len(jobs)} built, {clock() - started:.0f} s", flush=True)

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        reporter.cancel()
    conn = await asyncpg.connect(dsn)
    try:
        for row in snapshot:
            if row["table_name"] != "activity_logs":
                continue
            if row["constraint_name"]:
                await conn.execute(
                    f'ALTER TABLE ONLY activity_logs ADD CONSTRAINT "{row["constraint_name"]}" '
                    f"{row['constraint_def']}"
                )
            else:
                await conn.execute(row["def"])  # pg_get_indexdef: CREATE INDEX ... ON ONLY ...
        for row in snapshot:
            if row["parent_index"]:
                await conn.execute(
                    f'ALTER INDEX "{row["parent_index"]}" ATTACH PARTITION "{row["index_name"]}"'
                )
    finally:
        await conn.close()
    return dict(seconds)


async def check_jsonb_text(conn: asyncpg.Connection, teams: list[dict[str, Any]]) -> int:
    """Our jsonb text must be PostgreSQL's, or every hash would be wrong."""
    rng = random.Random(1)
    activity = TeamActivity(teams[len(teams) // 2], rng)
    now = datetime.now(UTC)
    samples = [activity.build(a, now)[2] for a in ACTION_TYPES * 40]
    ours = [jsonb_text(d) for d in samples]
    theirs = await conn.fetch(
        "SELECT m::jsonb::text AS t FROM unnest($1::text[]) WITH ORDINALITY AS x(m, n) ORDER BY n",
        [json.dumps(d) for d in samples],
    )
    for mine, row in zip(ours, theirs, strict=True):
        if mine != row["t"]:
            raise AssertionError(f"jsonb text differs:\n ours   {mine}\n theirs {row['t']}")
    return len(samples)


def window_of(now: datetime) -> tuple[datetime, datetime, list[Month]]:
    first = Month.of(now).plus(-11)
    months = [first.plus(i) for i in range(12)]
    return datetime(first.year, first.month, 1, tzinfo=UTC), now, months


def micros(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def split_teams(teams: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    """Greedy: each team (biggest first) to the least loaded part."""
    loads = [0] * parts
    out: list[list[dict[str, Any]]] = [[] for _ in range(parts)]
    for team in sorted(teams, key=lambda t: -t["size"]):
        i = loads.index(min(loads))
        out[i].append(team)
        loads[i] += team["size"]
    return out


async def load(args: argparse.Namespace, db_url: str) -> dict[str, Any]:
    dsn = asyncpg_dsn(db_url)
    teams = make_teams(args.teams, args.records, args.seed)
    start, end, months = window_of(datetime.now(UTC).replace(microsecond=0))
    f: dict[str, Any] = {"records": args.records, "teams": args.teams}
    print(
        f"load: {args.records:,} records, {args.teams:,} teams (biggest {teams[0]['size']:,}, "
        f"median {sorted(t['size'] for t in teams)[len(teams) // 2]:,}), "
        f"{start:%Y-%m-%d} .. {end:%Y-%m-%d %H:%M}, into {db_url.rsplit('/', 1)[1]}",
        flush=True,
    )
    t = clock()
    await create_database_if_missing(db_url)
    await asyncio.to_thread(upgrade, "activity", db_url)
    conn = await asyncpg.connect(dsn)
    try:
        await Partitions().ensure(conn, set(months))
        f["migrate_s"] = clock() - t
        f["jsonb_checked"] = await check_jsonb_text(conn, teams)
        snapshot = await index_snapshot(conn)
        await drop_indexes(conn, snapshot)
        print(
            f"  migrated, {len(months)} partitions; dropped {len(snapshot)} indexes "
            f"for the COPY ({clock() - t:.1f} s)",
            flush=True,
        )

        # COPY from worker processes.
        ctx = multiprocessing.get_context("spawn")
        counters = [ctx.Value("q", 0, lock=False) for _ in range(args.load_workers)]
        window = (micros(start), micros(end))
        procs = [
            ctx.Process(
                target=load_worker,
                args=(dsn, part, window, args.seed, args.chunk, counter),
                name=f"bench-load-{i}",
                daemon=True,
            )
            for i, (part, counter) in enumerate(
                zip(split_teams(teams, args.load_workers), counters, strict=True)
            )
        ]
        t = clock()
        for p in procs:
            p.start()
        last_t, last_n = t, 0
        interval = 5.0 if args.records <= 1_000_000 else 15.0
        try:
            while any(p.is_alive() for p in procs):
                await asyncio.sleep(0.5)
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a load worker failed (its traceback is above)")
                now = clock()
                if now - last_t >= interval:
                    n = sum(c.value for c in counters)
                    print(
                        f"  copied {n:,} / {args.records:,} ({100 * n / args.records:.0f} %), "
                        f"{(n - last_n) / (now - last_t):,.0f} rows/s now, "
                        f"{n / (now - t):,.0f} rows/s average",
                        flush=True,
                    )
                    last_t, last_n = now, n
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()  # this one process, by its pid
                p.join(10)
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError("a load worker failed (its traceback is above)")
        copied = sum(c.value for c in counters)
        if copied != args.records:
            raise RuntimeError(f"copied {copied} records, expected {args.records}")
        f["copy_s"] = clock() - t
        f["copy_rows_per_s"] = args.records / f["copy_s"]
        print(f"  COPY done: {f['copy_s']:.0f} s, {f['copy_rows_per_s']:,.0f} rows/s", flush=True)

        t = clock()
        f["index_s_by_index"] = await rebuild_indexes(
            dsn, snapshot, args.index_workers, args.maintenance_work_mem
        )
        f["index_s"] = clock() - t
        after = await index_snapshot(conn)
        if after != snapshot:
            raise AssertionError(
                "rebuilt indexes differ from the migration's:\n"
                + "\n".join(str(r) for r in after if r not in snapshot)
            )
        print(f"  indexes rebuilt, identical to the migration's: {f['index_s']:.0f} s", flush=True)

        t = clock()
        partitions = [m.name for m in months]
        queue = deque(partitions)

        async def vacuum() -> None:
            c = await asyncpg.connect(dsn)
            try:
                while queue:
                    await c.execute(f'VACUUM (ANALYZE) "{queue.popleft()}"')
            finally:
                await c.close()

        await asyncio.gather(*(vacuum() for _ in range(args.index_workers)))
        await conn.execute("ANALYZE activity_logs")  # the parent's own statistics
        await conn.execute("VACUUM ANALYZE activity_chains")
        f["vacuum_analyze_s"] = clock() - t
        print(f"  VACUUM ANALYZE: {f['vacuum_analyze_s']:.0f} s", flush=True)
        f["total_s"] = f["migrate_s"] + f["copy_s"] + f["index_s"] + f["vacuum_analyze_s"]
        f["sizes"] = await sizes(conn)

        await conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        await conn.execute("CREATE TABLE bench.meta (doc jsonb NOT NULL)")
        doc = {
            "teams": teams,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "records": args.records,
            "seed": args.seed,
            "load": f,
        }
        await conn.execute("INSERT INTO bench.meta (doc) VALUES ($1::jsonb)", json.dumps(doc))
    finally:
        await conn.close()
    return f


async def sizes(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        """
        SELECT 'table' AS name, sum(pg_table_size(h.inhrelid))::bigint AS bytes
        FROM pg_inherits h WHERE h.inhparent = 'activity_logs'::regclass
        UNION ALL
        SELECT p.relname, sum(pg_relation_size(h.inhrelid))::bigint
        FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
        WHERE p.relkind = 'I' AND p.relname IN (
            SELECT indexrelid::regclass::text FROM pg_index
            WHERE indrelid = 'activity_logs'::regclass)
        GROUP BY p.relname
        """
    )
    return {r["name"]: int(r["bytes"] or 0) for r in rows}


# --------------------------------------------------------------------------- queries


@dataclass
class Instance:
    where: ActivityFilter
    depth: int = 1  # the page to time (following cursors to it)
    team_size: int = 0


@dataclass
class Shape:
    name: str
    make: Callable[[random.Random], Instance]


class Recording:
    """Passes ``fetch`` through to the connection, keeping the last statement (for EXPLAIN)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.last: tuple[str, tuple[Any, ...]] = ("", ())

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.last = (query, args)
        return await self.conn.fetch(query, *args)


def shapes(meta: dict[str, Any]) -> list[Shape]:
    teams = meta["teams"]
    end = datetime.fromisoformat(meta["end"])
    start = datetime.fromisoformat(meta["start"])
    months = [Month.of(start).plus(i) for i in range(12)]
    biggest = max(teams, key=lambda t: t["size"])
    deep = {d: [t for t in teams if t["size"] > d * PAGE + 1] for d in (50, 200)}

    def team_id(team: dict[str, Any]) -> uuid.UUID:
        return uuid.UUID(team["id"])

    def month(rng: random.Random) -> tuple[datetime, datetime]:
        m = rng.choice(months)
        n = m.next()
        return datetime(m.year, m.month, 1, tzinfo=UTC), datetime(n.year, n.month, 1, tzinfo=UTC)

    def on(
        pick: Callable[[random.Random], dict[str, Any]], depth: int = 1, **fixed: Any
    ) -> Callable[[random.Random], Instance]:
        def make(rng: random.Random) -> Instance:
            team = pick(rng)
            values = {k: (v(rng, team) if callable(v) else v) for k, v in fixed.items()}
            if "month" in values:
                values["since"], values["until"] = values.pop("month")
            return Instance(ActivityFilter(team_id=team_id(team), **values), depth, team["size"])

        return make

    def any_team(rng: random.Random) -> dict[str, Any]:
        return rng.choice(teams)

    def big(rng: random.Random) -> dict[str, Any]:
        return biggest

    def user(rng: random.Random, team: dict[str, Any]) -> uuid.UUID:
        return uuid.UUID(rng.choice(team["users"])["id"])

    def email(rng: random.Random, team: dict[str, Any]) -> str:
        return rng.choice(team["users"])["email"]

    def workspace(rng: random.Random, team: dict[str, Any]) -> str:
        return rng.choice(team["workspaces"])["id"]

    def rare(rng: random.Random, team: dict[str, Any]) -> str:
        return rng.choice(RARE_WORDS)

    def a_month(rng: random.Random, team: dict[str, Any]) -> tuple[datetime, datetime]:
        return month(rng)

    return [
        Shape("team, newest page", on(any_team)),
        Shape("team + last 7 days", on(any_team, since=end - timedelta(days=7))),
        Shape("team + one month", on(any_team, month=a_month)),
        Shape("team + user", on(any_team, user_id=user)),
        Shape("team + user + one month", on(any_team, user_id=user, month=a_month)),
        Shape("team + action task.completed", on(any_team, action="task.completed")),
        Shape("team + action member.added (rare)", on(any_team, action="member.added")),
        Shape("team + action prefix member.", on(any_team, action_prefix="member.")),
        Shape("team + action prefix task.", on(any_team, action_prefix="task.")),
        Shape(
            "team + resource workspace/<id>",
            on(any_team, resource_type="workspace", resource_id=workspace),
        ),
        Shape(f"team + q common word ({COMMON_WORD})", on(any_team, q=COMMON_WORD)),
        Shape("team + q rare word", on(any_team, q=rare)),
        Shape("team + q e-mail", on(any_team, q=email)),
        Shape(f"team + q phrase {PHRASE}", on(any_team, q=PHRASE)),
        Shape(f"team + q {COMMON_WORD} + one month", on(any_team, q=COMMON_WORD, month=a_month)),
        Shape(
            "team + user + prefix task. + 90 days",
            on(any_team, user_id=user, action_prefix="task.", since=end - timedelta(days=90)),
        ),
        Shape("deep page 50 (cursors)", on(lambda rng: rng.choice(deep[50]), depth=50)),
        Shape("deep page 200 (cursors)", on(lambda rng: rng.choice(deep[200]), depth=200)),
        Shape("biggest team, newest page", on(big)),
        Shape(f"biggest team + q {COMMON_WORD}", on(big, q=COMMON_WORD)),
        Shape("extra: biggest team + q rare word", on(big, q=rare)),
        Shape("extra: biggest team + prefix member.", on(big, action_prefix="member.")),
    ]


async def run_instance(rec: Recording, inst: Instance) -> tuple[float, int]:
    """ms of the timed page fetch (the last one, after following cursors), rows it returned."""
    repo = ActivityRepository(rec)  # type: ignore[arg-type]
    before = None
    for _ in range(inst.depth - 1):
        rows = await repo.page(inst.where, limit=PAGE + 1, before=before)
        if len(rows) <= PAGE:
            raise AssertionError(f"team of {inst.team_size} records has no page {inst.depth}")
        before = (rows[PAGE - 1]["created_at"], rows[PAGE - 1]["id"])
    t = time.perf_counter()
    try:
        rows = await repo.page(inst.where, limit=PAGE + 1, before=before)
    except asyncpg.QueryCanceledError:  # statement_timeout
        return (time.perf_counter() - t) * 1e3, -1
    return (time.perf_counter() - t) * 1e3, len(rows)


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(conn: asyncpg.Connection, sql: str, args: Sequence[Any], generic: bool) -> Any:
    """EXPLAIN (ANALYZE) of the statement: with its parameters (a custom plan), or
    as PostgreSQL's generic plan (which a cached statement may switch to)."""
    if not generic:
        text = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
        return json.loads(text) if isinstance(text, str) else text
    name = f"bench_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"PREPARE {name} AS {sql}")
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            params = ", ".join(literal(a) for a in args)
            text = await conn.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({params})"
            )
    finally:
        await conn.execute(f"DEALLOCATE {name}")
    return json.loads(text) if isinstance(text, str) else text


def plan_summary(plan: Any, parents: dict[str, str]) -> dict[str, Any]:
    """Which indexes (named as the migration names them) and scans a plan uses."""
    scans: Counter[str] = Counter()
    indexes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if "Index Name" in node:
            name = parents.get(node["Index Name"], node["Index Name"])
            scans[f"{kind} {name}"] += 1
            short = name.removeprefix("ix_activity_logs_")
            if short not in indexes:
                indexes.append(short)
        elif kind == "Seq Scan":
            scans["Seq Scan"] += 1
            if "seq scan" not in indexes:
                indexes.append("seq scan")
        for child in node.get("Plans", []):
            walk(child)

    root = plan[0]["Plan"]
    walk(root)
    return {
        "indexes": indexes,
        "scans": ", ".join(f"{k} x{v}" for k, v in scans.items()),
        "top": root["Node Type"]
        + (f" > {root['Plans'][0]['Node Type']}" if root.get("Plans") else ""),
        "execution_ms": plan[0].get("Execution Time"),
        "planning_ms": plan[0].get("Planning Time"),
    }


async def run_queries(
    args: argparse.Namespace, db_url: str, meta: dict[str, Any]
) -> dict[str, Any]:
    rng = random.Random(args.seed + 7)
    db = Database(db_url, service="bench")
    out: dict[str, Any] = {"shapes": []}
    try:
        async with db.driver_connection() as conn:
            parents = {
                r["child"]: r["parent"]
                for r in await conn.fetch(
                    "SELECT c.relname AS child, p.relname AS parent FROM pg_inherits h "
                    "JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent "
                    "WHERE c.relkind = 'i'"
                )
            }
            rec = Recording(conn)
            await conn.execute(f"SET statement_timeout = '{args.statement_timeout}s'")
            if args.plan_cache_mode:
                await conn.execute(f"SET plan_cache_mode = {args.plan_cache_mode}")
            mode = await conn.fetchval("SHOW plan_cache_mode")
            out["plan_cache_mode"] = mode
            print(
                f"\nqueries: {args.iterations} runs each (after 3 warm-up runs; fewer once a "
                f"query has taken {args.shape_budget:.0f} s), random teams and parameters, one "
                f"connection (plan_cache_mode {mode}), page of {PAGE} (+1)",
                flush=True,
            )
            for number, shape in enumerate(shapes(meta), 1):
                timings: list[tuple[float, int, Instance, tuple[str, tuple[Any, ...]]]] = []
                began = clock()
                for i in range(3 + args.iterations):
                    inst = shape.make(rng)
                    ms, rows = await run_instance(rec, inst)
                    if i >= 3:
                        timings.append((ms, rows, inst, rec.last))
                    if len(timings) >= 5 and clock() - began > args.shape_budget:
                        break
                ms_sorted = sorted(t[0] for t in timings)
                slowest = max(timings, key=lambda t: t[0])
                sql, sql_args = slowest[3]
                plans: list[dict[str, Any]] = []
                for generic_plan in (False, True):
                    try:
                        plan = await explain(conn, sql, sql_args, generic_plan)
                        plans.append(plan_summary(plan, parents))
                    except asyncpg.PostgresError as exc:
                        plans.append({"error": str(exc), "indexes": ["?"], "scans": "?"})
                custom, generic = plans
                figures: dict[str, Any] = {
                    "number": number,
                    "name": shape.name,
                    "p50_ms": eb.percentile(ms_sorted, 50),
                    "p95_ms": eb.percentile(ms_sorted, 95),
                    "max_ms": ms_sorted[-1],
                    "mean_ms": statistics.fmean(ms_sorted),
                    "runs": len(timings),
                    "timeouts": sum(t[1] < 0 for t in timings),
                    "rows_median": statistics.median(t[1] for t in timings),
                    "team_size_median": statistics.median(t[2].team_size for t in timings),
                    "slowest_team_size": slowest[2].team_size,
                    "custom_plan": custom,
                    "generic_plan": generic,
                }
                figures["pass"] = figures["p95_ms"] < P95_GOAL_MS
                out["shapes"].append(figures)
                print(
                    f"  {number:2d} {shape.name:<40} p50 {figures['p50_ms']:8.2f}  "
                    f"p95 {figures['p95_ms']:8.2f}  max {figures['max_ms']:8.2f} ms  "
                    f"{'PASS' if figures['pass'] else 'MISS'}  [{', '.join(custom['indexes'])}]",
                    flush=True,
                )
        out["verify"] = await verify_figures(db, meta)
    finally:
        await db.dispose()
    return out


async def verify_figures(db: Database, meta: dict[str, Any]) -> dict[str, Any]:
    """``ActivityLog.verify`` of a median-sized team (timed) and a few small ones."""
    log = ActivityLog(db)
    teams = sorted(meta["teams"], key=lambda t: t["size"])
    median = teams[len(teams) // 2]
    t = clock()
    result = await log.verify(uuid.UUID(median["id"]))
    seconds = clock() - t
    figures = {
        "team_size": median["size"],
        "valid": result.valid,
        "checked": result.checked,
        "seconds": seconds,
        "records_per_s": result.checked / seconds if seconds else math.nan,
        "reason": result.reason,
    }
    others = [await log.verify(uuid.UUID(team["id"])) for team in random.Random(3).sample(teams, 5)]
    figures["sample_valid"] = all(r.valid for r in others)
    print(
        f"  verify (ActivityLog.verify) of a median team, {median['size']:,} records: "
        f"{'valid' if result.valid else 'INVALID: ' + str(result.reason)}, {seconds * 1e3:,.0f} ms "
        f"({figures['records_per_s']:,.0f} records/s); 5 more teams "
        f"{'valid' if figures['sample_valid'] else 'INVALID'}",
        flush=True,
    )
    return figures


# --------------------------------------------------------------------------- ingestion


class IngestEvents:
    """CloudEvents of varied types and teams, as the other services publish them."""

    def __init__(self, teams: list[dict[str, Any]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.teams = teams
        self.cum = list(itertools.accumulate(t["size"] for t in teams))
        self.activity: dict[int, TeamActivity] = {}

    def make(self, n: int) -> list[CloudEvent]:
        events: list[CloudEvent] = []
        now = datetime.now(UTC)
        for index in self.rng.choices(range(len(self.teams)), cum_weights=self.cum, k=n):
            team = self.teams[index]
            activity = self.activity.get(index)
            if activity is None:
                activity = self.activity[index] = TeamActivity(team, random.Random(index))
            action = activity.actions(1)[0]
            resource_type, resource_id, data = activity.build(action, now)
            actor: dict[str, Any] = {}
            if action not in SYSTEM_ACTIONS:
                user = team["users"][activity.actors(1)[0]]
                actor = {"actorid": user["id"], "actorip": user["ip"], "actorua": user["ua"]}
            events.append(
                CloudEvent(
                    source="agenthq/bench",
                    type=action,
                    subject=f"{resource_type}/{resource_id}",
                    teamid=team["id"],
                    data=data,
                    **actor,
                )
            )
        return events


class Publisher(eb.BaselinePublisher):
    """Confirmed persistent publishes of prepared CloudEvents to a topic exchange
    (the service's, or the baseline's), routed by event type; the same code for both."""

    async def start(self) -> None:
        await super().start()
        self.maker = IngestEvents(self.config["teams"], self.config["seed"])
        self.types: dict[str, str] = {}

    async def cmd_prepare(self, n: int) -> None:
        self.events = self.maker.make(n)
        self.sent = {}
        self.bodies = {str(e.id): e.to_bytes() for e in self.events}
        self.types = {str(e.id): e.type for e in self.events}

    async def _publish(self, key: str) -> None:
        message = aio_pika.Message(
            self.bodies[key],
            message_id=key,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=self.types[key],
        )
        await self.exchange.publish(message, routing_key=self.types[key])


class ActivityService(eb.ConsumerWorker):
    """The activity service as ``make run`` starts it (its consumers, its relay),
    with ``activity.audit``'s batches timed once their transaction has committed."""

    async def start(self) -> None:
        c = self.config
        settings = ActivitySettings(
            database_url=c["db_url"],
            postgres_url=POSTGRES_URL,
            broker_url=BROKER_URL,
            redis_url=REDIS_URL,
            bus_namespace=c["namespace"],
            log_json=False,
            log_level="WARNING",
        )
        self.service = bootstrap(settings, run_retention=False)
        audit = next(x for x in self.service.consumers if x.name == AUDIT_QUEUE)
        handle = audit.handle_messages

        async def timed(messages: list[AbstractIncomingMessage]) -> list[Exception | None]:
            started = clock()
            outcomes = await handle(messages)
            self.record(messages, outcomes, started, clock())  # committed, not yet acked
            return outcomes

        audit.handle_messages = timed  # type: ignore[method-assign]
        if not c.get("deferred"):
            await self.service.start()

    async def cmd_go(self) -> None:
        """Start the service now (deferred: a backlog waits in its queue)."""
        await self.service.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.service.stop()

    async def cmd_batches(self) -> dict[str, Any]:
        return {
            "size": eb.summary([float(n) for _, _, n in self.batches]),
            "ms": eb.summary([(e - s) * 1e3 for s, e, _ in self.batches]),
            "count": len(self.batches),
        }


class BaselineConsumer(eb.ConsumerWorker):
    """bench/events.py's baseline consumer: a durable queue bound to the topic
    exchange (here to every key), one ack per message."""

    async def start(self) -> None:
        c = self.config
        self.connection = await aio_pika.connect_robust(BROKER_URL)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=c["prefetch"])
        exchange = await channel.declare_exchange(
            c["exchange"], aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.queue = await channel.declare_queue(c["queue"], durable=True)
        await self.queue.bind(exchange, routing_key="#")
        if not c.get("deferred"):
            await self.cmd_go()

    async def cmd_go(self) -> None:
        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            t = clock()
            self.record([message], [None], t, t)

        await self.queue.consume(on_message)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


ROLES: dict[str, type[eb.Worker]] = {
    "activity-service": ActivityService,
    "baseline-consumer": BaselineConsumer,
    "pipeline-publisher": Publisher,
    "baseline-publisher": Publisher,
}


def child_main(role: str, conn: Connection, config: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    asyncio.run(eb.serve(ROLES[role](config), conn))


class Proc(eb.Proc):
    """bench/events.py's child process, running this module's roles."""

    child_main = staticmethod(child_main)


async def ingest_once(
    args: argparse.Namespace, loaded_url: str, meta: dict[str, Any] | None
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    namespace = f"bench-{tag}."
    fresh = not args.ingest_into_loaded
    db_url = f"{POSTGRES_URL.rstrip('/')}/agenthq_bench_{tag}" if fresh else loaded_url
    database = db_url.rsplit("/", 1)[1]
    if fresh or meta is None:
        teams = make_teams(args.teams, 1_000_000, args.seed + 1)
    else:
        teams = meta["teams"]
    settings = ActivitySettings(database_url=db_url)
    exchange = Bus(BROKER_URL, namespace=namespace).topology.exchange
    baseline = {"exchange": f"{namespace}baseline", "queue": f"{namespace}baseline.q"}
    common = {"profile": args.profile, "profile_dir": args.profile_dir}
    ctx = multiprocessing.get_context("spawn")
    procs: list[Proc] = []
    f: dict[str, Any] = {"database": "fresh" if fresh else "loaded", "events": args.ingest_events}
    admin = await eb.connect_admin()
    try:
        if fresh:
            await create_database_if_missing(db_url)
            await asyncio.to_thread(upgrade, "activity", db_url)
        before_rows = await count_rows(db_url)
        service = Proc(
            ctx, "activity-service", {**common, "db_url": db_url, "namespace": namespace}
        )
        base_consumer = Proc(
            ctx, "baseline-consumer", {**baseline, "prefetch": settings.audit_prefetch}
        )
        procs += [service, base_consumer]
        await asyncio.gather(service.call("start"), base_consumer.call("start"))
        publisher_config = {"teams": teams, "seed": args.seed + 2}
        pub_p = Proc(ctx, "pipeline-publisher", {**publisher_config, "exchange": exchange})
        pub_b = Proc(
            ctx, "baseline-publisher", {**publisher_config, "exchange": baseline["exchange"]}
        )
        procs += [pub_p, pub_b]
        await asyncio.gather(pub_p.call("start"), pub_b.call("start"))
        print(
            "  processes: "
            + ", ".join(f"{p.role} {p.pid}" for p in procs)
            + f"; database {database}",
            flush=True,
        )
        pipeline = eb.Side("pipeline", pub_p, service)
        base = eb.Side("baseline", pub_b, base_consumer)
        meter = eb.CpuMeter(admin, database, await eb.find_rabbitmq_async())
        published = 0
        warm = min(2000, args.ingest_events)
        for side in (base, pipeline):
            await side.scenario(meter, "throughput", warm, args, measured=False)
        published += warm
        for _ in range(args.repeat):
            for side in (base, pipeline):
                got = await side.scenario(meter, "throughput", args.ingest_events, args, True)
                best = f.get(side.name)
                if best is None or got["events_per_s"] > best["events_per_s"]:
                    f[side.name] = got
                if side is pipeline:
                    published += args.ingest_events
                    f["batches"] = await service.call("batches")
        if args.profile:
            f["profile"] = await service.call("profile", "activity-service", args.profile_top)

        # Backlog: the consumer stopped, every event published, then a new consumer
        # process drains the queue: its capacity, without a publisher beside it.
        configs = {
            "activity-service": {"db_url": db_url, "namespace": namespace},
            "baseline-consumer": {**baseline, "prefetch": settings.audit_prefetch},
        }
        await asyncio.sleep(1.0)  # the last batch's acks
        for side in (base, pipeline):
            await side.consumer.stop()
            await side.producer.call("prepare", args.ingest_events)
            sent = await side.producer.call(
                "throughput", args.batch, args.producers, False, timeout=600
            )
            keys = list(sent["sent"])
            role = side.consumer.role
            profiled = common if role == "activity-service" else {}
            drainer = Proc(ctx, role, {**profiled, **configs[role], "deferred": True})
            procs.append(drainer)
            await drainer.call("start")
            await drainer.call("begin", True)
            before = await meter.snapshot([drainer])
            await drainer.call("go")
            timeout = max(120.0, args.ingest_events / 20)
            cons = await drainer.call("collect", keys, timeout, timeout=timeout + 60)
            after = await meter.snapshot([drainer])
            if cons["redelivered"] or cons["duplicates"] or cons["failed"]:
                raise eb.Incomplete(
                    f"{side.name} drain: {cons['duplicates']} duplicates, "
                    f"{cons['redelivered']} redelivered, {cons['failed']} failed"
                )
            first = min(cons["started"].values())
            f[side.name]["drain"] = {
                "events_per_s": len(keys) / (max(cons["received"].values()) - first),
                "cpu_ms_per_event": eb.CpuMeter.per_event(before, after, len(keys)),
            }
            if side is pipeline:
                published += args.ingest_events
                f["drain_batches"] = await drainer.call("batches")
                if args.profile:
                    f["drain_profile"] = await drainer.call(
                        "profile", "activity-service-drain", args.profile_top
                    )
        rows = await count_rows(db_url) - before_rows
        if rows != published:
            raise eb.Incomplete(f"{rows} rows in activity_logs for {published} events published")
        f["rows_checked"] = rows
        # The chains the service built hold: verify the busiest team's.
        db = Database(db_url, service="bench")
        try:
            result = await ActivityLog(db).verify(uuid.UUID(teams[0]["id"]))
        finally:
            await db.dispose()
        f["chain_valid"] = result.valid
        f["chain_checked"] = result.checked
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
        if fresh:
            try:
                await drop_database(db_url)
            except Exception as exc:
                print(f"cleanup: database {database}: {exc!r}", file=sys.stderr)
        await delete_namespace(namespace, baseline)
    return f


async def delete_namespace(namespace: str, baseline: dict[str, str]) -> None:
    bus = Bus(BROKER_URL, namespace=namespace)
    queues = [baseline["queue"]]
    for name in SERVICE_QUEUES:
        q = bus.topology.queue(name)
        queues += [q, f"{q}.dlq"]
        queues += [bus._retry_queue(q, i) for i in range(1, bus.max_retries + 1)]  # its naming
    exchanges = [bus.topology.exchange, bus.topology.dlx, baseline["exchange"]]
    try:
        for problem in await eb.delete_broker_objects(queues, exchanges):
            print(f"cleanup: could not delete {problem}", file=sys.stderr)
        await delete_bus_namespace(BROKER_URL, namespace)  # anything else under it
    except Exception as exc:
        print(f"cleanup: broker namespace {namespace}: {exc!r}", file=sys.stderr)


async def count_rows(db_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM activity_logs"))
    finally:
        await conn.close()


async def ingest(
    args: argparse.Namespace, loaded_url: str, meta: dict[str, Any] | None
) -> dict[str, Any]:
    print(
        f"\ningestion: {args.ingest_events:,} events of 30 types over {args.teams:,} teams, "
        f"one publisher process per side ({args.batch} per gather, {args.producers} tasks), "
        f"into a {'fresh' if not args.ingest_into_loaded else 'the loaded'} database; "
        f"best of {args.repeat}",
        flush=True,
    )
    for attempt in range(1, args.attempts + 1):
        try:
            return await ingest_once(args, loaded_url, meta)
        except eb.TRANSIENT as exc:
            if attempt == args.attempts:
                raise
            print(f"attempt {attempt} disturbed ({exc!r:.300}); starting again", file=sys.stderr)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- report

fmt = eb.fmt


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MB"


def load_report(f: dict[str, Any]) -> str:
    lines = [
        f"load: {f['records']:,} records, {f['teams']:,} teams: total {f['total_s']:.0f} s "
        f"({f['records'] / f['total_s']:,.0f} records/s overall)",
        f"  COPY {f['copy_s']:.0f} s ({f['copy_rows_per_s']:,.0f} rows/s, generation and hashing "
        f"included), indexes {f['index_s']:.0f} s, VACUUM ANALYZE {f['vacuum_analyze_s']:.0f} s, "
        f"migrate {f['migrate_s']:.1f} s",
    ]
    sizes_ = f.get("sizes", {})
    if sizes_:
        lines.append(
            f"  size: table {mb(sizes_.get('table'))}, indexes "
            + ", ".join(
                f"{k.removeprefix('ix_activity_logs_')} {mb(v)}"
                f" ({f['index_s_by_index'].get(k, 0):.0f} s)"
                for k, v in sorted(sizes_.items())
                if k != "table"
            )
        )
    return "\n".join(lines)


def describe(plan: dict[str, Any]) -> str:
    if "error" in plan:
        return f"error: {plan['error']}"
    return f"{plan['top']}: {plan['scans']} ({plan['execution_ms']:.1f} ms)"


def queries_report(q: dict[str, Any]) -> str:
    rows = []
    for s in q["shapes"]:
        custom = ", ".join(s["custom_plan"]["indexes"])
        generic = ", ".join(s["generic_plan"]["indexes"])
        rows.append(
            [
                f"{s['number']:2d} {s['name']}",
                fmt(s["p50_ms"], 2),
                fmt(s["p95_ms"], 2),
                fmt(s["max_ms"], 2),
                str(s["runs"]) + (f" ({s['timeouts']} timed out)" if s["timeouts"] else ""),
                fmt(s["rows_median"], 0),
                fmt(s["team_size_median"], 0),
                "PASS" if s["pass"] else "MISS",
                custom + ("" if generic == custom else f" (generic plan: {generic})"),
            ]
        )
    head = ["query", "p50 ms", "p95 ms", "max ms", "runs", "rows", "team", "p95<50", "indexes"]
    text = eb.table(head, rows)
    details = [
        "",
        f"plan_cache_mode {q.get('plan_cache_mode')}. Plans of each query's slowest run "
        "(EXPLAIN ANALYZE with its parameters; the generic plan, which a statement cached "
        "by asyncpg may switch to after 5 runs, when it differs):",
    ]
    for s in q["shapes"]:
        c, g = s["custom_plan"], s["generic_plan"]
        details.append(f"  {s['number']:2d} team of {s['slowest_team_size']:,}: {describe(c)}")
        if g.get("scans") != c.get("scans") or "error" in g:
            details.append(f"     generic: {describe(g)}")
    return text + "\n" + "\n".join(details)


def ingest_report(f: dict[str, Any]) -> str:
    p, b = f["pipeline"], f["baseline"]
    pd, bd = p.get("drain"), b.get("drain")

    def goal(rate: float) -> str:
        return f">= {INGEST_GOAL:,.0f}/s: " + ("PASS" if rate >= INGEST_GOAL else "MISS")

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y else "-"

    rows = [
        [
            "live: events/s, first publish -> last in the log (acked)",
            fmt(p["events_per_s"]),
            fmt(b["events_per_s"]),
            ratio(p["events_per_s"], b["events_per_s"]),
            goal(p["events_per_s"]),
        ],
        [
            "live: the publisher's rate (events/s)",
            fmt(p["achieved_rate"]),
            fmt(b["achieved_rate"]),
            ratio(p["achieved_rate"], b["achieved_rate"]),
            "",
        ],
    ]
    for key in ("p50", "p95", "max"):
        rows.append(
            [f"live: publish -> committed {key} (ms)", fmt(p["ms"][key]), fmt(b["ms"][key]), "", ""]
        )
    if pd and bd:
        rows.append(
            [
                "backlog drain: events/s, consumer alone",
                fmt(pd["events_per_s"]),
                fmt(bd["events_per_s"]),
                ratio(pd["events_per_s"], bd["events_per_s"]),
                goal(pd["events_per_s"]),
            ]
        )
    text = eb.table(["ingestion", "pipeline", "baseline", "pipe/base", "goal"], rows)

    def cpu(figures: dict[str, Any] | None, key: str | None, digits: int = 3) -> str:
        if figures is None or key is None:
            return "-"
        return fmt(figures["cpu_ms_per_event"].get(key), digits)

    cpu_rows = []
    for label, pkey, bkey in (
        ("publishing process", "pipeline-publisher", "baseline-publisher"),
        ("consuming process", "activity-service", "baseline-consumer"),
        ("  of which in the kernel", "activity-service kernel", "baseline-consumer kernel"),
        ("postgres, consumer's backends", "postgres for activity-service", None),
        ("rabbitmq node", "rabbitmq", "rabbitmq"),
        ("machine busy, both cores (%)", "machine busy %", "machine busy %"),
    ):
        digits = 0 if "%" in label else 3
        cpu_rows.append(
            [
                label,
                cpu(p, pkey, digits),
                cpu(b, bkey, digits),
                cpu(pd, None if "publish" in label else pkey, digits),
                cpu(bd, None if "publish" in label else bkey, digits),
                "",
            ]
        )
    head = ["CPU ms per event", "live pipe", "live base", "drain pipe", "drain base", ""]
    text += "\n\n" + eb.table(head, cpu_rows)
    for key, what in (("batches", "live"), ("drain_batches", "drain")):
        if key in f:
            bt = f[key]
            text += (
                f"\nactivity.audit batches, {what}: {bt['count']:,}, size p50 "
                f"{bt['size']['p50']:.0f} max {bt['size']['max']:.0f}; duration p50 "
                f"{bt['ms']['p50']:.1f} ms, p95 {bt['ms']['p95']:.1f} ms"
            )
    text += (
        f"\n{f['rows_checked']:,} rows in activity_logs for as many events; chain of the busiest "
        f"team ({f['chain_checked']:,} records): {'valid' if f['chain_valid'] else 'INVALID'}"
    )
    return text


# --------------------------------------------------------------------------- main


async def read_meta(db_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        doc = await conn.fetchval("SELECT doc::text FROM bench.meta")
    except asyncpg.UndefinedTableError:
        raise SystemExit(
            f"{db_url.rsplit('/', 1)[1]} was not loaded by bench/activity.py"
        ) from None
    finally:
        await conn.close()
    return json.loads(doc)  # type: ignore[no-any-return]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    f: dict[str, Any] = {}
    base = POSTGRES_URL.rstrip("/")
    name = args.reuse or f"agenthq_bench_{uuid.uuid4().hex[:10]}"
    db_url = f"{base}/{name}"
    keep = args.keep or bool(args.reuse)
    meta: dict[str, Any] | None = None
    try:
        if args.reuse:
            meta = await read_meta(db_url)
            f["load"] = meta["load"]
            print(f"reusing {name}: {meta['records']:,} records loaded {meta['end']}", flush=True)
        else:
            f["load"] = await load(args, db_url)
            meta = await read_meta(db_url)
        print(load_report(f["load"]), flush=True)
        if not args.skip_queries:
            f["queries"] = await run_queries(args, db_url, meta)
            print("\n" + queries_report(f["queries"]), flush=True)
        if not args.skip_ingest:
            f["ingest"] = await ingest(args, db_url, meta)
            for key, what in (("profile", "live run"), ("drain_profile", "backlog drain")):
                text = f["ingest"].pop(key, None)
                if text:
                    print(f"\ncProfile (wall time) of the activity service, {what}:\n{text}")
            print("\n" + ingest_report(f["ingest"]), flush=True)
    finally:
        if keep:
            print(f"\nkept database {name} (run the queries again with --reuse {name})", flush=True)
        else:
            try:
                await drop_database(db_url)
            except Exception as exc:
                print(f"cleanup: database {name}: {exc!r}", file=sys.stderr)
    f["database"] = name if keep else None
    return f


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records to load")
    parser.add_argument("--teams", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load-workers", type=int, default=2, help="COPY processes")
    parser.add_argument("--chunk", type=int, default=10_000, help="rows per COPY")
    parser.add_argument("--index-workers", type=int, default=2, help="index build connections")
    parser.add_argument("--maintenance-work-mem", default="1GB", help="for the index builds")
    parser.add_argument("--iterations", type=int, default=40, help="timed runs per query")
    parser.add_argument(
        "--shape-budget", type=float, default=60.0, help="seconds per query (at least 5 runs)"
    )
    parser.add_argument("--statement-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--plan-cache-mode",
        choices=["auto", "force_custom_plan", "force_generic_plan"],
        default=None,
        help="SET on the query connection (default: the server's, as the service)",
    )
    parser.add_argument("--ingest-events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=50, help="publishes per gather")
    parser.add_argument("--producers", type=int, default=4, help="concurrent publishing tasks")
    parser.add_argument("--repeat", type=int, default=1, help="ingestion runs (best is kept)")
    parser.add_argument(
        "--ingest-into-loaded", action="store_true", help="ingest into the loaded database"
    )
    parser.add_argument("--keep", action="store_true", help="keep the loaded database")
    parser.add_argument("--reuse", metavar="DBNAME", help="a database kept by --keep: no load")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the activity service")
    parser.add_argument("--profile-dir", default=None, help="also dump a .prof file here")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--attempts", type=int, default=3, help="ingestion runs if disturbed")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200,000 records")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.records = min(args.records, 200_000)
        args.iterations = min(args.iterations, 10)
        args.ingest_events = min(args.ingest_events, 5000)
    load_before = os.getloadavg()
    f = asyncio.run(run(args))
    load_after = os.getloadavg()
    f["loadavg"] = {"before": load_before, "after": load_after, "cpus": os.cpu_count()}
    goals: dict[str, Any] = {"p95_goal_ms": P95_GOAL_MS, "ingest_goal_per_s": INGEST_GOAL}
    missed = False
    summary = []
    if "queries" in f:
        shapes_ = f["queries"]["shapes"]
        passed = sum(s["pass"] for s in shapes_)
        seed_ok = sum(s["p95_ms"] < SEED_GOAL_MS for s in shapes_)
        goals["queries_pass"] = passed == len(shapes_)
        goals["queries_passed"] = passed
        missed |= not goals["queries_pass"]
        summary.append(
            f"queries: {passed} of {len(shapes_)} with p95 < {P95_GOAL_MS:.0f} ms "
            f"({seed_ok} < {SEED_GOAL_MS:.0f} ms, the seed's goal)"
        )
    if "ingest" in f:
        rate = f["ingest"]["pipeline"]["events_per_s"]
        goals["ingest_pass"] = rate >= INGEST_GOAL
        missed |= not goals["ingest_pass"]
        text = (
            f"ingestion: {rate:,.0f} events/s ({'PASS' if goals['ingest_pass'] else 'MISS'}), "
            f"baseline {f['ingest']['baseline']['events_per_s']:,.0f}/s"
        )
        drain = f["ingest"]["pipeline"].get("drain")
        if drain:
            goals["ingest_drain_pass"] = drain["events_per_s"] >= INGEST_GOAL
            text += (
                f"; backlog drain {drain['events_per_s']:,.0f} events/s, baseline "
                f"{f['ingest']['baseline']['drain']['events_per_s']:,.0f}/s"
            )
        summary.append(text)
    print(
        "\n"
        + "; ".join(summary)
        + f"\nload average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.2f}' for x in load_after)}, on {os.cpu_count()} CPUs\n"
    )
    payload = {"bench": "activity", "args": vars(args), "goals": goals, **f}
    print("BENCH_JSON " + json.dumps(eb.nan_to_none(payload), default=str, sort_keys=True))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
