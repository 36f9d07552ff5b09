"""The web console in a real browser (Debian's Chromium) against the system as
`make run` starts it: the gateway serving the built app, every service behind it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from agenthq_devctl.openapi import public_document
from agenthq_devctl.supervisor import Stack

from . import people
from .browser import browser  # noqa: F401  (the fixture)
from .conftest import USAGE_CREDENTIAL

PASSWORD = "console-password-1"


@pytest.fixture
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:  # noqa: F811
    context = await browser.new_context(base_url=stack.public_url("gateway"))
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


async def sign_up(page: Page, name: str) -> str:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/teams")
    await expect(page).to_have_url("/sign-in")
    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="My teams")).to_be_visible()
    return email


async def test_the_gateway_serves_the_built_console_and_the_documented_api(
    gateway: httpx.AsyncClient,
) -> None:
    index = await gateway.get("/teams")
    assert index.status_code == 200
    assert '<div id="root">' in index.text
    assert index.headers["cache-control"] == "no-cache"
    # The document the console's types come from is the one the gateway serves.
    served = (await gateway.get("/openapi.json")).json()
    assert served == public_document()


async def test_sign_up_create_a_team_and_a_workspace_then_come_back(page: Page) -> None:
    await sign_up(page, "Grace")
    await expect(page.get_by_text("You are in no team yet")).to_be_visible()
    await page.get_by_label("Team name").fill("Console Co")
    await page.get_by_label("Plan").select_option("pro")
    await page.get_by_role("button", name="Create team").click()
    await expect(page.get_by_role("heading", name="Workspaces")).to_be_visible()
    await expect(page.get_by_text("No workspaces yet")).to_be_visible()
    await page.get_by_label("Workspace name").fill("Design docs")
    await page.get_by_label("Description").fill("Specs and reviews")
    await page.get_by_role("button", name="Create workspace").click()
    workspaces = page.get_by_role("list", name="Workspaces")
    await expect(workspaces).to_contain_text("Design docs")
    await expect(workspaces).to_contain_text("Specs and reviews")

    # A reload keeps the session (the cookie), with no token in web storage.
    await page.reload()
    await expect(page.get_by_role("list", name="Workspaces")).to_contain_text("Design docs")
    storage = await page.evaluate("() => localStorage.length + sessionStorage.length")
    assert storage == 0
    cookies = await page.context.cookies()
    session = [c for c in cookies if c["name"] == "agenthq_refresh"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    assert await page.evaluate("() => document.cookie") == ""  # invisible to scripts

    # Rename and describe it in place.
    await page.get_by_role("button", name="Edit Design docs").click()
    edit = page.get_by_role("form", name="Edit Design docs")
    await edit.get_by_label("Name").fill("Design documents")
    await edit.get_by_label("Description").fill("")
    await edit.get_by_role("button", name="Save").click()
    await expect(workspaces).to_contain_text("Design documents")
    await expect(workspaces).not_to_contain_text("Specs and reviews")

    # Archive, then find it again with the archived toggle.
    await page.get_by_role("button", name="Archive Design documents").click()
    await expect(page.get_by_text("No workspaces yet")).to_be_visible()
    await page.get_by_label("Show archived").check()
    await expect(page.get_by_role("list", name="Workspaces")).to_contain_text("archived")

    # Delete it, once confirmed.
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Delete Design documents").click()
    await expect(workspaces).to_contain_text("Design documents")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete Design documents").click()
    await expect(page.get_by_text("No workspaces yet")).to_be_visible()

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page).to_have_url("/sign-in")
    await page.goto("/teams")
    await expect(page).to_have_url("/sign-in")


async def test_wrong_credentials_are_explained_on_a_phone_sized_screen(page: Page) -> None:
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/sign-in")
    await page.get_by_label("Email").fill("nobody@example.com")
    await page.get_by_label("Password").fill("not-the-password")
    await page.keyboard.press("Enter")  # from the keyboard
    await expect(page.get_by_role("alert")).to_have_text(
        "That email and password do not match an account."
    )
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375  # nothing wider than the screen


async def test_invite_a_second_user_who_joins_then_becomes_a_viewer_all_live(
    browser: Browser,  # noqa: F811
    stack: Stack,
) -> None:
    base = stack.public_url("gateway")
    contexts = [await browser.new_context(base_url=base) for _ in range(2)]
    try:
        owner, guest = [await c.new_page() for c in contexts]
        for opened in (owner, guest):
            opened.set_default_timeout(10_000)
        await sign_up(owner, "Owner")
        await owner.get_by_label("Team name").fill("Invite Co")
        await owner.get_by_role("button", name="Create team").click()
        await expect(owner.get_by_role("heading", name="Workspaces")).to_be_visible()
        await owner.get_by_role("link", name="Members").click()
        guest_email = f"guest-{uuid.uuid4().hex[:8]}@example.com"
        await owner.get_by_label("Email to invite").fill(guest_email)
        await owner.get_by_label("Role", exact=True).select_option("member")
        await owner.get_by_role("button", name="Invite", exact=True).click()
        link = await owner.get_by_label("Invitation link").input_value()
        assert "/invite/" in link
        await expect(owner.get_by_role("list", name="Pending invitations")).to_contain_text(
            guest_email
        )

        # The guest opens the link, signs up with the invited address, accepts:
        # the owner's member list shows them without a reload.
        await guest.goto(link)
        await guest.get_by_role("link", name="create an account").click()
        await guest.get_by_label("Name").fill("Guest")
        await guest.get_by_label("Email").fill(guest_email)
        await guest.get_by_label("Password").fill(PASSWORD)
        await guest.get_by_role("button", name="Create account").click()
        await guest.get_by_role("button", name="Accept the invitation").click()
        await expect(guest.get_by_role("heading", name="Workspaces")).to_be_visible()
        await expect(owner.get_by_role("list", name="Members")).to_contain_text("Guest")
        await expect(owner.get_by_text("No pending invitations.")).to_be_visible()

        # A workspace the guest creates appears in the owner's list within 1 s.
        await owner.get_by_role("link", name="Workspaces").click()
        await expect(owner.get_by_text("No workspaces yet")).to_be_visible()
        await expect(owner.get_by_role("status", name="Live updates: live")).to_be_visible()
        await expect(guest.get_by_role("status", name="Live updates: live")).to_be_visible()
        await guest.get_by_label("Workspace name").fill("Guest work")
        await guest.get_by_role("button", name="Create workspace").click()
        await expect(guest.get_by_role("list", name="Workspaces")).to_contain_text("Guest work")
        await expect(owner.get_by_role("list", name="Workspaces")).to_contain_text(
            "Guest work", timeout=1_000
        )

        # The owner makes the guest a viewer: the guest's write controls go,
        # without a reload.
        await owner.get_by_role("link", name="Members").click()
        await owner.get_by_label("Role of Guest").select_option("viewer")
        await expect(owner.get_by_label("Role of Guest")).to_have_value("viewer")
        await expect(guest.get_by_label("Workspace name")).to_have_count(0)
        await expect(guest.get_by_role("button", name="Archive Guest work")).to_have_count(0)
        await expect(guest.get_by_role("list", name="Workspaces")).to_contain_text("Guest work")
        # The guest cannot manage members either, and can leave: the owner's
        # list loses them without a reload.
        await guest.get_by_role("link", name="Members").click()
        await expect(guest.get_by_label("Email to invite")).to_have_count(0)
        await guest.get_by_role("button", name="Leave team").click()
        await expect(guest.get_by_role("heading", name="My teams")).to_be_visible()
        await expect(owner.get_by_role("list", name="Members")).not_to_contain_text("Guest")
    finally:
        for context in contexts:
            await context.close()


async def test_the_activity_log_filters_searches_verifies_and_exports(page: Page) -> None:
    await sign_up(page, "Ada")
    await page.get_by_label("Team name").fill("Audit Co")
    await page.get_by_role("button", name="Create team").click()
    for name in ("Ledger", "Quarterly report"):
        await page.get_by_label("Workspace name").fill(name)
        await page.get_by_role("button", name="Create workspace").click()
        await expect(page.get_by_role("list", name="Workspaces")).to_contain_text(name)

    await page.get_by_role("link", name="Activity").click()
    await expect(page.get_by_role("heading", name="Activity log")).to_be_visible()
    table = page.get_by_role("table", name="Activity")
    # The activity service records events from the bus: they arrive shortly.
    for _ in range(20):
        if await table.get_by_text("workspace.created").count() == 2:
            break
        await page.wait_for_timeout(250)
        await page.get_by_role("button", name="Apply filters").click()
    await expect(table.get_by_text("workspace.created")).to_have_count(2)
    await expect(table).to_contain_text("team.created")
    await expect(page.get_by_text("hash chain of all")).to_contain_text("intact")

    await page.get_by_label("Action or prefix").fill("workspace.")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(table).not_to_contain_text("team.created")
    await expect(table.get_by_text("workspace.created")).to_have_count(2)
    await page.get_by_label("Search").fill("quarterly")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(table.locator("tbody tr")).to_have_count(1)

    async with page.expect_download() as started:
        await page.get_by_role("button", name="Export CSV").click()
    download = await started.value
    assert download.suggested_filename.endswith(".csv")
    csv = (await download.path()).read_text()
    assert "workspace.created" in csv and "team.created" not in csv
    async with page.expect_download() as started:
        await page.get_by_role("button", name="Export NDJSON").click()
    lines = (await (await started.value).path()).read_text().splitlines()
    assert len(lines) == 1 and '"workspace.created"' in lines[0]

    await page.get_by_label("Search").fill("nothing-matches-this")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.get_by_text("No activity matches these filters.")).to_be_visible()


async def test_usage_chart_quotas_plans_and_the_draft_invoice(
    page: Page, gateway: httpx.AsyncClient
) -> None:
    await sign_up(page, "Mae")
    await page.get_by_label("Team name").fill("Metered Co")
    await page.get_by_label("Plan").select_option("pro")
    await page.get_by_role("button", name="Create team").click()
    await expect(page.get_by_role("heading", name="Workspaces")).to_be_visible()
    team_id = page.url.split("/teams/")[1].split("/")[0]
    now = datetime.now(UTC)
    events = [
        {
            "id": str(uuid.uuid4()),
            "team_id": team_id,
            "type": "task.created",
            "quantity": q,
            "time": (now - timedelta(days=d)).isoformat(),
        }
        for d, q in ((0, 3), (1, 4))
    ]
    ingested = await gateway.post(
        "/v1/usage/events", json=events, headers={"Authorization": f"Bearer {USAGE_CREDENTIAL}"}
    )
    assert ingested.status_code == 202, ingested.text

    await page.get_by_role("link", name="Usage").click()
    await expect(page.get_by_role("heading", name="Usage and billing")).to_be_visible()
    await page.get_by_label("Metric").select_option("tasks_created")
    summary = page.locator("p.total")
    for _ in range(20):  # counted by the usage service from the bus, shortly
        if "7" in (await summary.inner_text()):
            break
        await page.reload()
        await page.get_by_label("Metric").select_option("tasks_created")
    await expect(summary).to_contain_text("7")
    await expect(page.get_by_role("figure", name="Tasks created per day")).to_be_visible()
    assert await page.locator(".recharts-bar-rectangle").count() >= 2  # a bar for each day

    quotas = page.get_by_role("list", name="Quotas")
    await expect(quotas).to_contain_text("Tasks created: 7 of")
    await expect(
        page.get_by_role("list", name="Plans").locator("[aria-current=true]")
    ).to_contain_text("Pro")
    draft = page.locator("details.invoice").first
    await expect(draft).to_contain_text(f"{now:%Y-%m} · draft")
    await draft.locator("summary").click()
    await expect(draft.get_by_role("table")).to_contain_text("Tasks created")


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/sign-in")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="My teams")).to_be_visible()


async def test_team_settings_roles_and_presence(page: Page, gateway: httpx.AsyncClient) -> None:
    owner = await people.sign_up(gateway, "settings-owner")
    team_id = (
        await gateway.post(
            "/v1/teams", json={"name": "Six Co", "plan": "pro"}, headers=owner["headers"]
        )
    ).json()["id"]
    helpers = [await people.sign_up(gateway, f"helper{i}") for i in range(5)]
    for helper in helpers:
        await people.add_member(gateway, team_id, owner, helper, "member")
    await sign_in(page, owner["email"], people.PASSWORD)
    await page.get_by_role("link", name="Six Co").click()

    # Presence: the owner's own socket is online.
    await page.get_by_role("link", name="Members").click()
    await expect(page.get_by_role("list", name="Online now")).to_contain_text("settings-owner")

    # Six members do not fit the free plan: said in plain words, next to the form.
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("combobox", name="Plan", exact=True).select_option("free")
    await page.get_by_role("button", name="Change plan").click()
    await expect(
        page.get_by_role("form", name="Change the plan").get_by_role("alert")
    ).to_have_text("The team has more members than that plan allows.")
    await page.get_by_label("Team name").fill("Seven Seas")
    await page.get_by_role("button", name="Rename").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Team")).to_contain_text("Seven Seas")

    # A custom role from the permission matrix, kept after a reload.
    await page.get_by_role("link", name="Roles").click()
    await page.get_by_label("Role name").fill("auditor")
    await page.get_by_role("button", name="Create role").click()
    await page.get_by_label("auditor: activity:read").check()
    await page.get_by_role("button", name="Save auditor").click()
    await page.reload()
    await expect(page.get_by_label("auditor: activity:read")).to_be_checked()
    await expect(page.get_by_label("auditor: workspace:read")).to_be_checked()
    await expect(page.get_by_label("viewer: workspace:read")).to_be_disabled()  # built in

    # Ownership goes to a helper: the owner-only sections go with it.
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_label("New owner").select_option(label="helper0")
    await page.get_by_role("button", name="Transfer ownership").click()
    await expect(page.get_by_role("heading", name="Delete the team")).to_have_count(0)


async def test_deleting_a_team_asks_for_its_name(page: Page) -> None:
    await sign_up(page, "Del")
    await page.get_by_label("Team name").fill("Doomed")
    await page.get_by_role("button", name="Create team").click()
    await expect(page.get_by_role("heading", name="Workspaces")).to_be_visible()
    await page.get_by_role("link", name="Settings").click()
    delete = page.get_by_role("button", name="Delete this team")
    await expect(delete).to_be_disabled()
    await page.get_by_label("Type the team's name (Doomed) to confirm").fill("doomed")
    await expect(delete).to_be_disabled()
    await page.get_by_label("Type the team's name (Doomed) to confirm").fill("Doomed")
    await delete.click()
    await expect(page.get_by_role("heading", name="My teams")).to_be_visible()
    await expect(page.get_by_role("link", name="Doomed")).to_have_count(0)


async def test_every_page_fits_a_phone_and_works_from_the_keyboard(page: Page) -> None:
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/sign-up")
    # Sign up from the keyboard alone: Tab between the fields, Enter to submit.
    await page.get_by_label("Name").focus()
    await page.keyboard.type("Kay")
    await page.keyboard.press("Tab")
    await page.keyboard.type(f"kay-{uuid.uuid4().hex[:8]}@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="My teams")).to_be_visible()
    await page.get_by_label("Team name").focus()
    await page.keyboard.type("Pocket Co")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Workspaces")).to_be_visible()
    team = page.url.split("/teams/")[1].split("/")[0]
    for path in ("workspaces", "members", "activity", "usage", "roles", "settings"):
        await page.goto(f"/teams/{team}/{path}")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"/{path} is {width}px wide on a 375px screen"
        # The seven sections are links in the main navigation (reachable by Tab).
        await expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_count(
            7
        )


AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


async def accessibility_problems(page: Page) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => `${v.id}: ${v.nodes.length} x ${v.help} (${v.nodes[0].target})`)"
    )
    return list(result)


async def test_every_page_passes_an_accessibility_audit(
    browser: Browser,  # noqa: F811
    stack: Stack,
) -> None:
    # The audit's script is injected into the page: only this test relaxes the CSP.
    context = await browser.new_context(base_url=stack.public_url("gateway"), bypass_csp=True)
    try:
        page = await context.new_page()
        problems: dict[str, list[str]] = {}
        for path in ("/sign-in", "/sign-up", "/invite/some-token"):
            await page.goto(path)
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            problems[path] = await accessibility_problems(page)
        await sign_up(page, "Audit")
        await page.get_by_label("Team name").fill("Accessible Co")
        await page.get_by_role("button", name="Create team").click()
        await page.get_by_label("Workspace name").fill("Readable")
        await page.get_by_role("button", name="Create workspace").click()
        await expect(page.get_by_role("list", name="Workspaces")).to_contain_text("Readable")
        team = page.url.split("/teams/")[1].split("/")[0]
        for section in ("workspaces", "members", "activity", "usage", "roles", "settings"):
            await page.goto(f"/teams/{team}/{section}")
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            await page.wait_for_timeout(300)  # late lists and charts
            problems[section] = await accessibility_problems(page)
        await page.goto("/teams")
        await expect(page.get_by_role("heading", name="My teams")).to_be_visible()
        problems["teams"] = await accessibility_problems(page)
        assert {k: v for k, v in problems.items() if v} == {}
    finally:
        await context.close()
