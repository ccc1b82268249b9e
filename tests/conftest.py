from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import Server, running


@pytest.fixture(scope="session")
def werkzeug_server() -> Iterator[Server]:
    """The test app on Werkzeug's threaded development server."""
    with running("werkzeug") as server:
        yield server
