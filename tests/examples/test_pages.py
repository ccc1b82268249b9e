"""The demo's pages and their code: links that follow the app, one way to load the client.

Most tests build the app with ``create_app()`` in this process and read the
HTML it serves, mounted under a prefix as a proxy that serves the app from a
sub-path would (``SCRIPT_NAME``); one serves it so mounted on Werkzeug and
follows its links in Chromium. The last ones read the static ES modules:
``data-testid`` attributes are for the tests, never for the pages' own logic.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.support.servers import ROOT, Server, running

DEMO = str(ROOT / "examples" / "demo")
if DEMO not in sys.path:  # The demo is an app run from its folder, not an installed package.
    sys.path.insert(0, DEMO)

from duplex_demo import create_app  # noqa: E402

STATIC = ROOT / "examples" / "demo" / "duplex_demo" / "static"
TEMPLATES = ROOT / "examples" / "demo" / "duplex_demo" / "templates"
PAGES = {"chat": "/chat/", "snake": "/snake/"}
PREFIX = "/mounted"  # Where tests.support.demo_mounted mounts the app, for the served test.


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    data = tmp_path / "data"
    return create_app({"DATA_DIR": str(data), "DATABASE": str(data / "demo.sqlite3")})


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text of each script."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def urls(self) -> list[str]:
        """Every URL in the page: links, files, sockets, and the import map's."""
        found = [
            value
            for _, attributes in self.tags
            for name, value in attributes.items()
            if name in ("href", "src", "action", "data-socket")
        ]
        for attributes, text in self.scripts:
            if attributes.get("type") == "importmap":
                found += json.loads(text)["imports"].values()
        return found

    def links(self) -> list[str]:
        return [attributes["href"] for tag, attributes in self.tags if tag == "a"]

    def socket(self) -> str:
        (socket,) = [a["data-socket"] for _, a in self.tags if "data-socket" in a]
        return socket


def mounted(app: Flask, path: str) -> Tags:
    """The page at ``path`` of ``app`` mounted under ``PREFIX``."""
    response = app.test_client().get(path, base_url=f"http://localhost{PREFIX}")
    assert response.status_code == 200, path
    return Tags(response.get_data(as_text=True))


def test_every_link_and_socket_url_follows_where_the_app_is_mounted(app: Flask) -> None:
    """Under a prefix, every URL of every page (links, files, sockets) is under that prefix."""
    for path in ("/", *PAGES.values()):
        page = mounted(app, path)
        outside = [url for url in page.urls() if not url.startswith(PREFIX + "/")]
        assert not outside, f"{path} has URLs outside {PREFIX}/: {outside}"
    home = mounted(app, "/")
    assert {PREFIX + "/chat/", PREFIX + "/snake/"} <= set(home.links())
    for name, path in PAGES.items():
        page = mounted(app, path)
        assert page.socket() == f"{PREFIX}/{name}/ws"
        assert {PREFIX + "/", PREFIX + "/chat/", PREFIX + "/snake/"} <= set(page.links())


def test_both_pages_load_the_browser_client_the_same_way(app: Flask) -> None:
    """Chat and snake: the import map names the client, one static module each, no inline code."""
    client_url = f"{PREFIX}/_duplex/duplex.js"
    for name, path in PAGES.items():
        scripts = [
            (attributes.get("type"), attributes.get("src"), text.strip())
            for attributes, text in mounted(app, path).scripts
        ]
        assert [(kind, src) for kind, src, _ in scripts] == [
            ("importmap", None),
            ("module", f"{PREFIX}/static/{name}/{name}.js"),
        ], scripts
        assert json.loads(scripts[0][2]) == {"imports": {"flask-duplex": client_url}}
        assert scripts[1][2] == "", f"{path} runs inline code"
        module = (STATIC / name / f"{name}.js").read_text()
        assert re.search(r'^import \{ connect \} from "flask-duplex";$', module, re.M), name


def modules() -> Iterator[tuple[Path, str]]:
    for path in sorted(STATIC.rglob("*.js")):
        yield path, path.read_text()


def test_the_pages_code_selects_no_element_by_test_id() -> None:
    """No static module looks an element up by data-testid: ids and classes are for the code."""
    found = [
        f"{path.relative_to(STATIC)}: {line.strip()}"
        for path, text in modules()
        for line in text.splitlines()
        # A selector, an attribute read, a dataset read; setting one on a new element is fine.
        if re.search(r"\[data-testid|data-testid[\"']\)|dataset\.testid(?!\s*=[^=])", line)
    ]
    assert not found, found


def test_the_pages_expose_nothing_on_window_for_tests() -> None:
    """No page code or template sets a global on window (the snake's window.snake was one)."""
    sources = [*modules(), *((p, p.read_text()) for p in sorted(TEMPLATES.rglob("*.html")))]
    found = [
        f"{path.name}: {line.strip()}"
        for path, text in sources
        for line in text.splitlines()
        if re.search(r"\bwindow\.\w+\s*=(?!=)", line)
    ]
    assert not found, found


def test_one_colour_hash_for_both_pages() -> None:
    """Names and players get their colour from one shared module, static/colors.js."""
    hashing = [path.name for path, text in modules() if re.search(r"c(odePoint|harCode)At", text)]
    assert hashing == ["colors.js"], hashing
    for name in PAGES:
        module = (STATIC / name / f"{name}.js").read_text()
        assert re.search(r'^import \{ hueOf \} from "\.\./colors\.js";$', module, re.M), name


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo on Werkzeug, mounted under PREFIX (tests.support.demo_mounted)."""
    env = {"DUPLEX_TEST_APP": "tests.support.demo_mounted:app"}
    env["DUPLEX_DEMO_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    with running("werkzeug", env) as server:
        yield server


def test_mounted_under_a_prefix_the_pages_link_and_connect_there(
    served: Server, page: Page
) -> None:
    """Served under /mounted: from the front page to the chat and the snake, both go online."""
    page.goto(f"{served.http}{PREFIX}/")
    page.locator("main").get_by_role("link", name=re.compile("^Chat")).click()
    expect(page).to_have_url(f"{served.http}{PREFIX}/chat/")
    expect(page.get_by_test_id("status")).to_have_text("online")
    page.get_by_test_id("name").fill("ana")
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("online").get_by_test_id("user")).to_have_text(["ana"])

    page.locator("header").get_by_role("link", name="Snake").click()
    expect(page).to_have_url(f"{served.http}{PREFIX}/snake/")
    expect(page.get_by_test_id("board")).to_have_attribute("data-worker", re.compile(r"^\d+$"))
    page.get_by_test_id("name").fill("ana")
    page.get_by_test_id("solo").click()
    expect(page.get_by_test_id("players").get_by_test_id("player")).to_have_text(["ana"])


# Strings one character apart: two names, and connection ids of one server process
# (a prefix of the process, then a counter).
ONE_APART = [
    ("ana", "anb"),
    ("bob1", "bob2"),
    ("5f0e9c1ab2d34e7f1", "5f0e9c1ab2d34e7f2"),
    ("5f0e9c1ab2d34e7f2", "5f0e9c1ab2d34e7f3"),
    ("5f0e9c1ab2d34e7ff", "5f0e9c1ab2d34e7f10"),
]


def test_names_one_character_apart_get_colours_far_apart(served: Server, page: Page) -> None:
    """One shared hash puts "bob1" and "bob2", or two players of one worker, 30+ degrees apart."""
    page.goto(f"{served.http}{PREFIX}/")
    hues = page.evaluate(
        """async ([url, pairs]) => {
            const { hueOf } = await import(url);
            return pairs.map(([a, b]) => [hueOf(a), hueOf(b), hueOf(a)]);
        }""",
        [f"{PREFIX}/static/colors.js", ONE_APART],
    )
    for (first, second), (hue, other, again) in zip(ONE_APART, hues, strict=True):
        assert hue == again and 0 <= hue < 360  # The same string, the same colour.
        apart = min(abs(hue - other), 360 - abs(hue - other))
        assert apart >= 30, f"{first} and {second}: hues {hue} and {other}"
