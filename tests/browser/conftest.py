"""The browser and page fixtures (Chromium through Playwright) for the tests in this folder.

Only the folders with page tests load Playwright, so that the engine, server and hub
suites run without it (``make test-deps``).
"""

from tests.support.browser import browser, page

__all__ = ["browser", "page"]
