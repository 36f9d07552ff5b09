"""``make screenshots``: a PNG of every page of the console, desktop and phone.

The whole system runs on scratch databases with the built console, filled by
the demo (``agenthq_devctl.demo``); Debian's Chromium (Playwright) signs in
as the demo's owner and visits every page at two widths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agenthq_common.testing.browser import CHROMIUM_ARGS, ensure_chromium
from agenthq_devctl.demo import PASSWORD, build, email_of
from agenthq_devctl.scratch import scratch_stack

SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


def pages(team_id: str) -> list[tuple[str, str, str]]:
    """(file name, path, text to wait for) of every page a signed-in owner sees."""
    team = f"/teams/{team_id}"
    return [
        ("teams", "/teams", "My teams"),
        ("workspaces", f"{team}/workspaces", "Workspaces"),
        ("members", f"{team}/members", "Online now"),
        ("activity", f"{team}/activity", "Tamper check"),
        ("usage", f"{team}/usage", "Daily usage"),
        ("roles", f"{team}/roles", "auditor"),
        ("settings", f"{team}/settings", "Delete the team"),
    ]


async def take(out: Path, dist: Path, say: Callable[[str], None] = print) -> list[Path]:
    from playwright.async_api import async_playwright

    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    saved: list[Path] = []
    async with scratch_stack("screenshots", env={"AGENTHQ_WEB_DIST": str(dist)}) as stack:
        gateway = stack.processes["gateway"].url
        say("Filling the system with the demo ...")
        demo = await build(
            gateway,
            stack.env["AGENTHQ_BROKER_URL"],
            stack.env["AGENTHQ_BUS_NAMESPACE"],
            events_per_team=900,
            say=lambda _: None,
        )
        team_id = demo["teams"]["Analytical Engines"]
        invitation = await _invitation(gateway, team_id)
        await asyncio.sleep(3)  # the activity and usage services consume the agent events
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=ensure_chromium(), args=CHROMIUM_ARGS
            )
            try:
                for size, viewport in SIZES.items():
                    context = await browser.new_context(
                        base_url=gateway, viewport=viewport, device_scale_factor=1
                    )
                    page = await context.new_page()
                    for name, path, _ in [
                        ("sign-in", "/sign-in", "Sign in to AgentHQ"),
                        ("sign-up", "/sign-up", "Create your AgentHQ account"),
                        ("invitation", f"/invite/{invitation}", "You are invited"),
                    ]:
                        saved.append(await _shot(page, out, name, size, path, _))
                    await page.goto("/sign-in")
                    await page.get_by_label("Email").fill(email_of("Ada"))
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.get_by_role("heading", name="My teams").wait_for()
                    for name, path, wait_for in pages(team_id):
                        saved.append(await _shot(page, out, name, size, path, wait_for))
                    await context.close()
                    say(f"  {size}: {len(saved)} screenshots so far")
            finally:
                await browser.close()
    return saved


async def _shot(page: Any, out: Path, name: str, size: str, path: str, wait_for: str) -> Path:
    await page.goto(path)
    await page.get_by_text(wait_for).first.wait_for(timeout=15_000)
    # Not "networkidle": the team's WebSocket keeps the network busy. Charts
    # and late lists settle within a moment of the page's text.
    await page.wait_for_timeout(600)
    target = out / f"{name}-{size}.png"
    await page.screenshot(path=str(target))
    return target


async def _invitation(gateway: str, team_id: str) -> str:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        tokens = await client.post(
            "/v1/auth/login", json={"email": email_of("Ada"), "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        created = await client.post(
            f"/v1/teams/{team_id}/invitations",
            json={"email": "screenshot@demo.agenthq.example", "role": "member"},
            headers=headers,
        )
        created.raise_for_status()
        return str(created.json()["token"])
