"""The demo app's front page, from ``make demo`` and ``make demo-cluster``, in Chromium."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.demo import Demo, running_demo


@pytest.fixture(scope="module", params=["demo", "demo-cluster"])
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    with running_demo(request.param) as demo:
        yield demo


def test_front_page_links_to_both_apps(demo: Demo, page: Page) -> None:
    """/ shows the demo and links to /chat/ and /snake/."""
    page.goto(demo.url + "/")
    expect(page.locator("a[href='/chat/']")).to_be_visible()
    expect(page.locator("a[href='/snake/']")).to_be_visible()


def test_favicon_is_served(demo: Demo) -> None:
    """The page's icon and /favicon.ico answer."""
    with urllib.request.urlopen(demo.url + "/favicon.ico", timeout=5) as response:
        assert response.status == 200
        assert b"<svg" in response.read()


def test_the_database_lives_in_data_dir(demo: Demo) -> None:
    """DATA_DIR holds the SQLite database, created on start."""
    assert (demo.data_dir / "demo.sqlite3").exists()


def test_ctrl_c_stops_every_process(demo: Demo) -> None:
    """Stopping the make target leaves nothing listening (redis-server included)."""
    assert demo.process is not None
    demo.stop()
    assert demo.process.poll() is not None
    with pytest.raises(OSError):
        urllib.request.urlopen(demo.url + "/", timeout=2)
    demo.start()  # For the tests after this one in the module.
