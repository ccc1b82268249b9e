"""One upgrade request: until the handler uses the connection, it can answer with HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.raw import RawClient
from tests.support.servers import Server, running


@pytest.fixture(scope="module", params=["werkzeug", "gunicorn-gevent"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param) as server:
        yield server


def test_a_decorator_that_aborts_gives_the_client_its_status(server: Server) -> None:
    """@login_required calling abort(401) before the handler runs: the client gets 401, not 101."""
    with pytest.raises(InvalidStatus) as rejected:
        connect(f"{server.url}/rt/members-only").close()
    assert rejected.value.response.status_code == 401


def test_a_decorator_that_redirects_sends_the_redirect(server: Server) -> None:
    """A decorator returning redirect(...) instead of calling the handler: the client gets 302."""
    client = RawClient(server.port, "/rt/members-or-login")  # Raw: websockets follows redirects.
    try:
        assert client.status == 302
        headers = client.head.decode("latin-1").lower()
        assert "\r\nlocation: /login-page" in headers, headers
    finally:
        client.close()


def test_the_same_routes_accept_a_logged_in_client(server: Server) -> None:
    """With the session cookie, both decorated routes accept and the handler runs."""
    with urllib.request.urlopen(f"{server.http}/login/ana", timeout=5) as login:
        cookie = login.headers["Set-Cookie"].split(";")[0]
    for path in ("/rt/members-only", "/rt/members-or-login"):
        with connect(f"{server.url}{path}", additional_headers={"Cookie": cookie}) as ws:
            assert ws.recv(timeout=5) == "welcome ana"


def test_an_exception_before_accepting_is_an_ordinary_500(server: Server) -> None:
    """A handler that raises before using the connection: a 500, logged as a view's would be."""
    with pytest.raises(InvalidStatus) as rejected:
        connect(f"{server.url}/rt/broken-before-accept").close()
    assert rejected.value.response.status_code == 500
    server.wait_for_log("failed before using the connection")
