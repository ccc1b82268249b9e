"""The browser and page fixtures (Chromium through Playwright), for the site's tests."""

from tests.support.browser import browser, page

__all__ = ["browser", "page"]
