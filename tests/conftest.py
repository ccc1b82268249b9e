from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import Server, running

# The browser and page fixtures, for tests that drive Chromium.
pytest_plugins = ["tests.support.browser"]


@pytest.fixture(scope="session")
def werkzeug_server() -> Iterator[Server]:
    """The test app on Werkzeug's threaded development server."""
    with running("werkzeug") as server:
        yield server
