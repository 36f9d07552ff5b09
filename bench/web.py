"""The web console: time to interactive of the activity page on a team with
10,000 records, and the JavaScript the first page costs.

Run: ``uv run python bench/web.py`` (``--quick``: 1,000 records, 3 runs).

1. The console is built (``npm run build``). First-page JavaScript: the entry
   script and the modules ``index.html`` preloads, gzipped (level 6, as a
   server would); beside it, every chunk the build made (the charts are loaded
   only on the usage page).
2. The whole system runs as ``make run`` starts it (scratch databases), the
   gateway serving the build. One team gets ``--records`` activity records as
   the platform makes them: agent events on the bus, recorded by the activity
   service; the script waits until the hash chain counts them all.
3. Debian's Chromium (Playwright) signs in once; then each run opens
   ``/teams/<id>/activity`` and takes ``performance.now()`` (ms since the
   navigation started) when the table's first row is on screen and its
   filter button is enabled: React has rendered and wired the page, so it
   answers input (time to interactive). Cold: a new browser context per run
   (no HTTP cache, the session cookie carried over); warm: a reload in one.
4. Baselines in the same run: the navigation floor (the same browser loading
   a tiny JSON file from the gateway, responseEnd) and the API alone (the
   page's first request, ``GET .../activity?limit=100``, over keep-alive).

Goals: time to interactive < 1 s (p50 of the cold runs); first-page JS < 250 KiB gzip.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.stack import PASSWORD, scratch_stack

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, registry
from agenthq_common.testing.browser import CHROMIUM_ARGS, ensure_chromium

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
DIST = WEB / "dist"
GOAL_TTI_MS = 1000.0
GOAL_JS_KIB = 250.0


def build_console() -> None:
    print("Building the console (npm run build) ...", flush=True)
    subprocess.run(["npm", "run", "-s", "build"], cwd=WEB, check=True, capture_output=True)


def gzipped_kib(path: Path) -> float:
    return len(gzip.compress(path.read_bytes(), compresslevel=6)) / 1024


def javascript_sizes() -> dict[str, float]:
    index = (DIST / "index.html").read_text()
    first = re.findall(r'<script[^>]+src="/([^"]+\.js)"', index)
    first += re.findall(r'<link[^>]+rel="modulepreload"[^>]+href="/([^"]+\.js)"', index)
    every = sorted(DIST.glob("assets/*.js"))
    return {
        "first_page_kib": sum(gzipped_kib(DIST / p) for p in set(first)),
        "all_chunks_kib": sum(gzipped_kib(p) for p in every),
        "chunks": len(every),
    }


async def owner_and_team(gateway: str) -> tuple[str, dict[str, str], str, str]:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        email = f"web-{uuid.uuid4().hex[:8]}@example.com"
        registered = await client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Web Bench"}
        )
        registered.raise_for_status()
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        team = await client.post("/v1/teams", json={"name": "Web bench"}, headers=headers)
        team.raise_for_status()
        return email, headers, str(team.json()["id"]), str(registered.json()["id"])


async def seed_activity(
    broker: str, namespace: str, team_id: str, user_id: str, records: int
) -> None:
    """``records`` agent events over the past 30 days, published as the platform does."""
    bus = Bus(broker, namespace=namespace)
    await bus.connect()
    now = datetime.now(UTC)
    actor = Actor(id=uuid.UUID(user_id), user_agent="agenthq-agents/1.0")
    try:
        for i in range(records):
            type_ = "task.created" if i % 2 == 0 else "task.completed"
            data: dict[str, Any] = {"task_id": uuid.uuid4(), "workspace_id": None}
            if type_ == "task.completed":
                data["status"] = "succeeded"
            event = registry.create(
                type_, data, source="agenthq/agents", actor=actor, team_id=uuid.UUID(team_id)
            ).model_copy(update={"time": now - timedelta(seconds=(records - i) * 250)})
            await bus.publish(event)
            if (i + 1) % 2000 == 0:
                print(f"  published {i + 1:,} / {records:,}", flush=True)
    finally:
        await bus.close()


async def wait_recorded(gateway: str, headers: dict[str, str], team_id: str, records: int) -> int:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        deadline = time.monotonic() + 600
        while True:
            verify = await client.get(f"/v1/teams/{team_id}/activity/verify", headers=headers)
            checked = int(verify.json()["checked"])
            if checked >= records or time.monotonic() > deadline:
                return checked
            print(f"  recorded {checked:,} / {records:,} ...", flush=True)
            await asyncio.sleep(2)


async def api_alone(gateway: str, headers: dict[str, str], team_id: str, runs: int) -> float:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        path = f"/v1/teams/{team_id}/activity"
        await client.get(path, params={"limit": 100}, headers=headers)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            response = await client.get(path, params={"limit": 100}, headers=headers)
            times.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
        return statistics.median(times)


READY = """() => {
  const row = document.querySelector('table[aria-label="Activity"] tbody tr');
  const apply = [...document.querySelectorAll('button')]
    .find(b => b.textContent === 'Apply filters');
  return row && apply && !apply.disabled ? performance.now() : null;
}"""


async def signed_in(browser: Browser, base: str, email: str) -> Any:
    """A browser context with a console session of its own (the session cookie
    rotates on use, so contexts cannot share one)."""
    context = await browser.new_context(base_url=base)
    login = await context.request.post(
        f"{base}/v1/auth/console/login", data={"email": email, "password": PASSWORD}
    )
    assert login.ok, await login.text()
    return context


async def time_to_interactive(
    browser: Browser, base: str, email: str, team_id: str, runs: int
) -> dict[str, Any]:
    url = f"/teams/{team_id}/activity"

    async def measure(target_page: Any, reload: bool) -> float:
        if reload:
            await target_page.reload(wait_until="commit")
        else:
            await target_page.goto(url, wait_until="commit")
        handle = await target_page.wait_for_function(READY, timeout=30_000, polling="raf")
        return float(await handle.json_value())

    cold = []
    rows = 0
    for _ in range(runs):
        context = await signed_in(browser, base, email)
        cold.append(await measure(await context.new_page(), reload=False))
        rows = await context.pages[0].locator('table[aria-label="Activity"] tbody tr').count()
        await context.close()
    signed = await signed_in(browser, base, email)
    page = await signed.new_page()
    await page.goto(url)
    await page.wait_for_function(READY)
    warm = [await measure(page, reload=True) for _ in range(runs)]
    floor = []
    for _ in range(runs):
        await page.goto("/console-config.json")
        floor.append(
            float(await page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd"))
        )
    await signed.close()
    return {
        "cold_ms": cold,
        "warm_ms": warm,
        "floor_ms": floor,
        "rows_on_first_screen": rows,
    }


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 records, 3 runs")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()
    if args.quick:
        args.records, args.runs = min(args.records, 1_000), 3
    started = time.monotonic()
    build_console()
    sizes = javascript_sizes()
    async with scratch_stack("web", env={"AGENTHQ_WEB_DIST": str(DIST)}) as stack:
        gateway = stack.processes["gateway"].url
        email, headers, team_id, user_id = await owner_and_team(gateway)
        print(f"Seeding {args.records:,} activity records through the bus ...", flush=True)
        await seed_activity(
            stack.env["AGENTHQ_BROKER_URL"],
            stack.env["AGENTHQ_BUS_NAMESPACE"],
            team_id,
            user_id,
            args.records,
        )
        recorded = await wait_recorded(gateway, headers, team_id, args.records)
        api_ms = await api_alone(gateway, headers, team_id, args.runs * 3)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=ensure_chromium(), args=CHROMIUM_ARGS
            )
            try:
                tti = await time_to_interactive(browser, gateway, email, team_id, args.runs)
            finally:
                await browser.close()

    cold, warm, floor = p50(tti["cold_ms"]), p50(tti["warm_ms"]), p50(tti["floor_ms"])
    print()
    rows = tti["rows_on_first_screen"]
    print(f"Activity page, team with {recorded:,} records ({rows} rows first), {args.runs} runs")
    print(f"  {'':<42}{'p50 ms':>10}{'max ms':>10}")
    print(
        f"  {'time to interactive, cold (no cache)':<42}{cold:>10.0f}{max(tti['cold_ms']):>10.0f}"
    )
    print(f"  {'time to interactive, warm (reload)':<42}{warm:>10.0f}{max(tti['warm_ms']):>10.0f}")
    floor_max = max(tti["floor_ms"])
    print(f"  {'baseline: navigation floor (tiny JSON)':<42}{floor:>10.1f}{floor_max:>10.1f}")
    print(f"  {'baseline: the API alone (first page)':<42}{api_ms:>10.1f}")
    print(f"  cold / floor: {cold / floor:.1f}x; cold / API alone: {cold / api_ms:.1f}x")
    print()
    print("JavaScript (gzip, level 6)")
    first, every = sizes["first_page_kib"], sizes["all_chunks_kib"]
    print(f"  first page: {first:.1f} KiB; all {sizes['chunks']} chunks: {every:.1f} KiB")
    tti_ok = cold < GOAL_TTI_MS
    js_ok = first < GOAL_JS_KIB
    print()
    verdict = {True: "PASS", False: "MISS"}
    tti_line = f"activity page interactive < {GOAL_TTI_MS:.0f} ms ... {cold:.0f} ms"
    print(f"  goal: {tti_line}  {verdict[tti_ok]}")
    print(
        f"  goal: first-page JS < {GOAL_JS_KIB:.0f} KiB gzip ... {first:.1f} KiB  {verdict[js_ok]}"
    )
    print(f"  took {time.monotonic() - started:.0f} s")
    figures = {
        "bench": "web",
        "records": recorded,
        "tti": tti,
        "api_ms": api_ms,
        "js": sizes,
        "goals": {"tti": tti_ok, "js": js_ok},
    }
    print("BENCH_JSON " + json.dumps(figures))
    return 1 if args.strict and not (tti_ok and js_ok) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
