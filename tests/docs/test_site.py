"""The documentation site builds strictly, works offline, and a reader finds things in it.

The site is built into a temporary folder (as ``make docs`` builds it into
site/) and served on 127.0.0.1 by a thread of the test, since the search runs
in a web worker that a page opened from a file cannot start. Chromium takes a
screenshot of the front page and of an API page; they go to the folder named by
``DUPLEX_DOCS_SCREENSHOTS`` if it is set, else to the test's temporary folder.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

import flask_duplex

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).with_name("mkdocs")
# A resource a page would fetch from elsewhere: a script, a style sheet, a font, an image.
EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built with mkdocs --strict as make docs builds it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over http on a free loopback port; stopped after the module."""
    handler = functools.partial(_Quiet, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DUPLEX_DOCS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_no_page_loads_anything_from_elsewhere(site: Path) -> None:
    """Every page works offline: no script, style, font or image from another host."""
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    offenders = [str(p.relative_to(site)) for p in pages if EXTERNAL.search(p.read_text())]
    assert not offenders
    assert "fonts.googleapis.com" not in (site / "index.html").read_text()


def test_front_page_shows_the_version_and_the_guides(
    page: Page, served: str, screenshots: Path
) -> None:
    """The quickstart is the front page; the header names the package's version."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{served}/index.html")
    expect(page.locator("h1")).to_contain_text("Quickstart")
    expect(page.locator("header")).to_contain_text(f"Flask-Duplex {flask_duplex.__version__}")
    nav = page.locator("nav.md-nav--primary")
    for title in ("Testing", "Deployment, per server", "API reference", "Changelog"):
        expect(nav.get_by_text(title, exact=True).first).to_be_attached()
    page.screenshot(path=str(screenshots / "docs-front-page.png"))


def test_api_page_renders_signatures_and_links(page: Page, served: str, screenshots: Path) -> None:
    """An API page shows the docstrings, with the roles turned into links."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{served}/api/duplex.html#flask_duplex.Duplex.route")
    route = page.locator("[id='flask_duplex.Duplex.route']")
    expect(route).to_be_visible()
    expect(page.locator("a[href='#flask_duplex.Duplex.init_app']").first).to_be_attached()
    assert ":meth:" not in page.content()
    page.screenshot(path=str(screenshots / "docs-api-duplex.png"))


@pytest.mark.parametrize(
    ("query", "page_name"),
    [
        ("gevent gunicorn", "deployment.html"),
        ("test a route", "testing.html"),
        ("broadcast background task", "rooms.html"),
    ],
)
def test_search_finds_the_page(page: Page, served: str, query: str, page_name: str) -> None:
    """What a new user looks for is among the first results of the site's search."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{served}/index.html")
    search = page.locator("input.md-search__input")
    search.click()
    results = page.locator(".md-search-result__item a")
    # The index loads in a web worker; what is typed before it is ready finds nothing
    # until the next keystroke, so type again until results come.
    for _ in range(20):
        search.fill("")
        search.press_sequentially(query)
        try:
            results.first.wait_for(state="visible", timeout=500)
            break
        except PlaywrightTimeoutError:
            continue
    expect(results.first).to_be_visible()
    links = [results.nth(i).get_attribute("href") or "" for i in range(min(3, results.count()))]
    assert any(page_name in link for link in links), links
