"""Permission checks, in process, on a big read model.

1. The ``require`` path of every non-team service: ``ReadModelResolver.resolve``
   on a request's session (opened outside the timed part, as the request's
   unit of work already holds it) against a read model of
   ``--teams`` teams x ``--members`` members (default 10,000 x 20 = 200,000
   memberships; a fifth of the teams also have a custom role in use).
   Baseline, same run: the same lookup as one raw asyncpg query on an open
   connection (the floor: one round trip to PostgreSQL).

(What the gateway adds to an authorized request, end to end: ``bench/gateway.py``.)

Goal: check p99 < 1 ms (the seed asks < 10 ms).
URLs: ``AGENTHQ_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from agenthq_common.auth import CurrentUser
from agenthq_common.db import Database
from agenthq_common.membership import ReadModelResolver, membership_metadata
from agenthq_common.migrations import create_database_if_missing, drop_database

POSTGRES = os.environ.get(
    "AGENTHQ_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
)
BROKER = os.environ.get("AGENTHQ_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS = os.environ.get("AGENTHQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(ms: list[float]) -> dict[str, float]:
    # Sequential calls: one at a time, so per second is 1 / mean latency.
    return {
        "per_s": 1000 * len(ms) / sum(ms),
        "p50_ms": pct(ms, 0.50),
        "p99_ms": pct(ms, 0.99),
        "mean_ms": statistics.fmean(ms),
    }


async def seed_read_model(url: str, teams: int, members: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    now = datetime.now(UTC)
    team_ids = [uuid.uuid4() for _ in range(teams)]
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    member_rows = []
    role_rows = []
    for i, team in enumerate(team_ids):
        users = [uuid.uuid4() for _ in range(members)]
        custom = i % 5 == 0
        if custom:
            role_rows.append((team, "auditor", ["workspace:read", "activity:read"], False, now))
        for j, user in enumerate(users):
            role = "admin" if j == 0 else ("auditor" if custom and j % 2 else "member")
            member_rows.append((team, user, role, True, now))
            pairs.append((team, user))
    await conn.copy_records_to_table(
        "rm_teams",
        records=[(t, f"team {t.hex[:6]}", None, "pro", 50, False, now) for t in team_ids],
        columns=["team_id", "name", "owner_id", "plan", "max_members", "deleted", "changed_at"],
    )
    await conn.copy_records_to_table(
        "rm_members",
        records=member_rows,
        columns=["team_id", "user_id", "role", "active", "changed_at"],
    )
    await conn.copy_records_to_table(
        "rm_roles",
        records=role_rows,
        columns=["team_id", "name", "permissions", "deleted", "changed_at"],
    )
    await conn.execute("ANALYZE")
    await conn.close()
    return pairs


async def bench_checks(checks: int, teams: int, members: int) -> dict[str, dict[str, float]]:
    url = f"{POSTGRES}/agenthq_bench_authz_{uuid.uuid4().hex[:8]}"
    await create_database_if_missing(url)
    db = Database(url, service="bench")
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(membership_metadata.create_all)
        started = time.perf_counter()
        pairs = await seed_read_model(url, teams, members)
        print(
            f"  seeded {teams:,} teams x {members} members in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        resolver = ReadModelResolver(None)
        sample = random.sample(pairs, checks)

        async def via_resolver(team: uuid.UUID, user: uuid.UUID) -> float:
            async with db.sessionmaker() as session:
                started = time.perf_counter()
                found = await resolver.resolve(session, team, CurrentUser(user, "j", {}), "")
                elapsed = time.perf_counter() - started
                assert found is not None and found.can("workspace:read")
                return elapsed

        raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        query = (
            "SELECT m.role, m.active, t.owner_id, t.deleted, r.permissions FROM rm_members m "
            "LEFT JOIN rm_teams t ON t.team_id = m.team_id LEFT JOIN rm_roles r "
            "ON r.team_id = m.team_id AND r.name = m.role WHERE m.team_id = $1 AND m.user_id = $2"
        )

        async def via_raw(team: uuid.UUID, user: uuid.UUID) -> float:
            started = time.perf_counter()
            row = await raw.fetchrow(query, team, user)
            elapsed = time.perf_counter() - started
            assert row is not None
            return elapsed

        results = {}
        for name, fn in (("raw asyncpg lookup", via_raw), ("require (resolver)", via_resolver)):
            for team, user in sample[:200]:  # warm up pools, caches, statement cache
                await fn(team, user)
            ms = []
            for team, user in sample:
                ms.append(await fn(team, user) * 1000)
            results[name] = summary(ms)
        await raw.close()
        await resolver.aclose()
        return results
    finally:
        await db.dispose()
        await drop_database(url)


def show(title: str, results: dict[str, dict[str, float]], baseline: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<26}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}{'p50 ratio':>12}")
    base = results[baseline]["p50_ms"]
    for name, r in results.items():
        print(
            f"  {name:<26}{r['per_s']:>10,.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}"
            f"{r['p50_ms'] / base:>12.2f}"
        )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--checks", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.teams, args.checks = 1_000, 1_000
    print(f"bench/authz.py (load average {os.getloadavg()[0]:.2f})")
    checks = await bench_checks(args.checks, args.teams, args.members)
    show(
        f"Permission check, read model of {args.teams:,} teams x {args.members} members",
        checks,
        "raw asyncpg lookup",
    )
    check_p99 = checks["require (resolver)"]["p99_ms"]
    print(
        f"\n  goal: check p99 < 1 ms ............. {check_p99:.3f} ms  "
        f"{'PASS' if check_p99 < 1 else 'MISS'}"
    )
    print(
        "BENCH_JSON "
        + json.dumps(
            {
                "bench": "authz",
                "checks": checks,
                "check_p99_ms": check_p99,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
