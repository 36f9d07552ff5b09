"""The browser fixture: Playwright on Debian's Chromium (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from agenthq_common.testing.browser import CHROMIUM_ARGS, ensure_chromium


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
