"""A real browser for the admin-page tests: Debian's Chromium driven by Playwright (never `playwright install`).

One browser for the whole session, on a thread of its own (Playwright's sync API), so each test's event
loop stays free to run the agent the browser talks to. Each test gets a fresh browser context (cookies).
The fixtures `chromium` and `page` reach every test module through conftest's `pytest_plugins`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.store import enterprises
from agent.store.database import Pool

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
R = TypeVar("R")

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect  # waits for what a click or a navigation leads to: no fixed sleeps
expect.set_options(timeout=10_000)  # as long as the pages' own default (a loaded CI machine)
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")


class Browser:
    """A Chromium on a dedicated thread; `run` calls a function there and awaits its result."""

    def __init__(self) -> None:
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="chromium")
        self.thread.submit(self._start).result()

    def _start(self) -> None:
        self.playwright = sync_api.sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)

    def _stop(self) -> None:
        self.browser.close()
        self.playwright.stop()

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    def close(self) -> None:
        self.thread.submit(self._stop).result()
        self.thread.shutdown()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    browser = Browser()
    yield browser
    browser.close()


@pytest.fixture
async def page(chromium: Browser) -> AsyncIterator[Any]:
    context = await chromium.run(
        lambda: chromium.browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    )
    new = await chromium.run(context.new_page)
    new.set_default_timeout(10_000)
    problems: list[str] = []
    new.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and not m.text.startswith("Failed to load resource") else None
        ),
    )  # statuses are asserted
    new.on("pageerror", lambda e: problems.append(str(e)))
    yield new
    await chromium.run(context.close)
    assert not problems  # no script error, no Content-Security-Policy violation


def click_through(page: Any, target: Any) -> None:
    """Click what leads to another page (a form's button or a link; a selector or a locator) and return once
    that page has loaded.

    After a click Playwright waits only for a navigation the page requested before the click's round trip
    to the renderer ended, and Chromium submits a form from a task of its own: on a loaded machine the click
    can return before the form's navigation exists, and the next step reads, or reloads, the page being left
    (CI saw `Page.reload: Not attached to an active page` after a Retry). A navigation waited for from before
    the click cannot be missed.
    """
    button = page.locator(target) if isinstance(target, str) else target
    with page.expect_navigation():
        button.click()


def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("ADMIN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


async def seed(pool: Pool) -> None:
    await enterprises.put(pool, "100", "Shop")
    await enterprises.put(pool, "200", "Other")
    await pool.execute(
        "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name) VALUES"
        " ('100', '150', 'Anna Petrova'), ('100', '151', 'Boris'), ('100', '152', '')"
        " ON CONFLICT DO NOTHING"
    )
