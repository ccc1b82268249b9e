"""Chromium, driven by Playwright, for tests that load the pages of an app under test.

The browser is Debian's Chromium at ``/usr/bin/chromium`` (``make test`` installs
it with apt), never one that Playwright downloads. One browser serves the whole
test module; each test gets a fresh context (its own cookies and storage) and
page. (Not one per session: Playwright's sync API keeps an asyncio loop running
on the main thread while it is started, which would break later tests that
run their own loop.)

Pages always come from the app under test, served by a real server started with
:func:`tests.support.servers.running`, so that WebSockets are same-origin::

    def test_chat(page: Page, werkzeug_server: Server) -> None:
        page.goto(f"{werkzeug_server.http}/chat")
        expect(page.locator("#state")).to_have_text("online")

Wait with ``expect(...)`` or ``page.wait_for_function(...)``, never a sleep.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "WAIT_MS", "browser", "page"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # Tests run as root, where Chromium's sandbox cannot start.
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Nothing but the app under test: no update checks, no sync, no first-run calls.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The default deadline of a Playwright action or expect(): well under a test's
# budget of about 20 s, long enough for a busy 2-core machine.
WAIT_MS = 10_000

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser tests need {CHROMIUM}: run `make test`, which installs it, "
            "or as root: apt-get install chromium fonts-dejavu-core"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A new page in a context of its own; its console and errors are printed after the test."""
    context = browser.new_context(viewport={"width": 800, "height": 600})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    lines: list[str] = []
    tab.on("console", lambda message: lines.append(f"console.{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: lines.append(f"uncaught: {error}"))
    try:
        yield tab
    finally:
        context.close()
        if lines:  # Pytest shows it for a failed test only.
            print("page log:", *lines, sep="\n  ")
