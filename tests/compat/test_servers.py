"""flask-sock apps on real servers, after the one-line import change.

The app (tests/support/compat_apps.py) is written the way flask-sock users
write theirs; each server kind runs it once for the whole module, as a
subprocess on a free loopback port, and the tests talk to it with the
``websockets`` client or, for byte-exact checks, a raw socket.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Opcode
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from tests.support.raw import RawClient, server_close_exchange
from tests.support.servers import Server, running

SERVER_KINDS = ("werkzeug", "gunicorn-gthread", "gunicorn-gevent")
APP = {"DUPLEX_TEST_APP": "tests.support.compat_apps:app"}


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param, env=APP) as server:
        yield server


def token() -> str:
    return uuid.uuid4().hex[:12]


def closed_by_server(ws: ClientConnection) -> Close:
    """Read until the server's close frame; return it (messages before it are skipped)."""
    deadline = time.monotonic() + 5
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    assert info.value.rcvd is not None, "the server sent no close frame"
    return info.value.rcvd


def tracebacks(server: Server) -> int:
    return server.log().count("Traceback")


# -- the two styles of flask-sock app ------------------------------------------


def test_snake_game_loop_runs_and_ends_quietly_when_the_client_leaves(server: Server) -> None:
    """Sock(app) + `while True: ws.receive()`: moves come back; a client close logs no error."""
    before = tracebacks(server)
    marker = token()
    with connect(f"{server.url}/singleplayer?t={marker}") as ws:
        for move in ("up", "left", "down"):
            ws.send(move)
            assert ws.recv(timeout=5) == move
    assert ws.protocol.close_rcvd is not None
    assert ws.protocol.close_rcvd.code == 1000
    server.wait_for_log(f"disconnected /singleplayer?t={marker}")
    assert tracebacks(server) == before


def test_app_factory_chat_reaches_every_client(server: Server) -> None:
    """Sock() + init_app in create_app(): one client's message reaches both."""
    with connect(f"{server.url}/chat") as ana, connect(f"{server.url}/chat") as bob:
        ana.send("ana")
        assert ana.recv(timeout=5) == "ana joined"
        bob.send("bob")
        assert bob.recv(timeout=5) == "bob joined"
        assert ana.recv(timeout=5) == "bob joined"
        ana.send("hi")
        assert ana.recv(timeout=5) == "ana: hi"
        assert bob.recv(timeout=5) == "ana: hi"


def test_echo_text_and_binary(server: Server) -> None:
    """A route defined before init_app echoes text as text and bytes as bytes."""
    with connect(f"{server.url}/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(bytes(range(256)))
        assert ws.recv(timeout=5) == bytes(range(256))


def test_blueprint_route_given_as_bp(server: Server) -> None:
    """sock.route(path, bp=tools) serves under the blueprint's prefix, with URL arguments."""
    with connect(f"{server.url}/tools/reverse/abc") as ws:
        assert ws.recv(timeout=5) == "cba"
        ws.send("xyz")
        assert ws.recv(timeout=5) == "zyx"


def test_route_keyword_arguments_go_to_flask(server: Server) -> None:
    """defaults= and endpoint= reach Flask's route: the handler gets the default."""
    with connect(f"{server.url}/greet") as ws:
        assert ws.recv(timeout=5) == "hello world"


# -- receive(timeout) ------------------------------------------------------------


def test_clock_sends_on_receive_timeout_and_still_hears_the_client(server: Server) -> None:
    """A clock built on receive(timeout) ticks when it gets None, echoes, and stops."""
    started = time.monotonic()
    with connect(f"{server.url}/clock?interval=0.2") as ws:
        assert [ws.recv(timeout=5) for _ in range(3)] == ["tick 1", "tick 2", "tick 3"]
        assert time.monotonic() - started >= 3 * 0.2
        ws.send("hi")
        deadline = time.monotonic() + 5
        while (message := ws.recv(timeout=max(0.01, deadline - time.monotonic()))) != "echo hi":
            assert str(message).startswith("tick "), message
        ws.send("stop")
        assert closed_by_server(ws).code == 1000


def test_receive_timeout_returns_none_then_the_next_message(server: Server) -> None:
    """receive(timeout=0.3) returns None after 0.3 s; a later receive gets the message."""
    with connect(f"{server.url}/receive-timeout") as ws:
        first = str(ws.recv(timeout=5))
        value, _, waited = first.partition(" after ")
        assert value == "None"
        assert 0.3 <= float(waited) < 3
        ws.send("late")
        assert ws.recv(timeout=5) == "'late'"


# -- closing ---------------------------------------------------------------------


def test_close_reason_and_message_are_the_code_and_text_on_the_wire(server: Server) -> None:
    """ws.close(4001, "bye"): one close frame 4001 "bye", then nothing (no stray HTTP)."""
    frame, rest, _ = server_close_exchange(server.port, "/close/4001?message=bye")
    assert frame.opcode is Opcode.CLOSE
    assert Close.parse(bytes(frame.data)) == Close(4001, "bye")
    assert rest == b""


def test_close_without_arguments_is_1000(server: Server) -> None:
    """ws.close() sends 1000 with no text, as flask-sock does."""
    with connect(f"{server.url}/close") as ws:
        assert closed_by_server(ws) == Close(1000, "")


def test_connected_is_true_until_the_server_closes(server: Server) -> None:
    """ws.connected is True while open and False right after ws.close()."""
    marker = token()
    with connect(f"{server.url}/connected?token={marker}") as ws:
        assert ws.recv(timeout=5) == "connected=True"
        ws.send("close me")
        assert closed_by_server(ws) == Close(4001, "done")
    server.wait_for_log(f"connected-route {marker}: after close connected=False")


def test_client_close_raises_connection_closed_with_reason_and_message(server: Server) -> None:
    """The client closes with 4002 "gone": the handler sees .reason/.message; no error logged."""
    before = tracebacks(server)
    marker = token()
    with connect(f"{server.url}/watch?token={marker}") as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        ws.close(4002, "gone")
    server.wait_for_log(f"watch-route {marker}: reason=4002 message='gone' connected=False")
    server.wait_for_log(f"disconnected /watch?token={marker}")
    assert tracebacks(server) == before


def test_handler_exception_closes_with_1011_and_is_logged(server: Server) -> None:
    """An exception in a handler: close code 1011 for the client, a traceback in the log."""
    with connect(f"{server.url}/raise") as ws:
        ws.send("go")
        assert closed_by_server(ws).code == 1011
    server.wait_for_log("boom in sock handler")


# -- SOCK_SERVER_OPTIONS ---------------------------------------------------------


def test_server_options_ping_interval_sends_pings(server: Server) -> None:
    """SOCK_SERVER_OPTIONS ping_interval=0.5: a ping comes within a second or two, not 20."""
    client = RawClient(server.port, "/echo")
    try:
        assert client.status == 101
        started = time.monotonic()
        frame = client.read_frame(timeout=3)
        while frame.opcode is not Opcode.PING:
            frame = client.read_frame(timeout=max(0.1, started + 3 - time.monotonic()))
        assert time.monotonic() - started < 3
    finally:
        client.close()


def test_server_options_max_message_size_closes_with_1009(server: Server) -> None:
    """SOCK_SERVER_OPTIONS max_message_size=1024: 1000 bytes echo, 2000 bytes close with 1009."""
    with connect(f"{server.url}/echo") as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=5) == "x" * 1000
        ws.send("x" * 2000)
        assert closed_by_server(ws).code == 1009


def test_server_options_subprotocols_are_negotiated(server: Server) -> None:
    """SOCK_SERVER_OPTIONS subprotocols: the one the client shares is chosen, server order first."""
    offered = [Subprotocol("nope"), Subprotocol("chat.v1")]
    with connect(f"{server.url}/proto", subprotocols=offered) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.recv(timeout=5) == "chat.v1"
    both = [Subprotocol("chat.v1"), Subprotocol("chat.v2")]
    with connect(f"{server.url}/proto", subprotocols=both) as ws:
        assert ws.subprotocol == "chat.v2"


def test_unmapped_server_option_is_logged_once(server: Server) -> None:
    """receive_bytes has no equivalent: one warning for the app, however many connections."""
    for index in range(2):
        with connect(f"{server.url}/echo") as ws:
            ws.send(str(index))
            assert ws.recv(timeout=5) == str(index)
    log = server.wait_for_log("ignores SOCK_SERVER_OPTIONS 'receive_bytes'")
    assert log.count("ignores SOCK_SERVER_OPTIONS") == 1


# -- Flask-Duplex defaults and features ------------------------------------------


def test_cross_origin_browser_is_refused_and_same_origin_accepted(server: Server) -> None:
    """The origin check flask-sock lacked: another site's page gets 403, the app's own page 101."""
    with (
        pytest.raises(InvalidStatus) as info,
        connect(f"{server.url}/echo", origin=Origin("https://evil.example")),
    ):
        pass
    assert info.value.response.status_code == 403
    with connect(f"{server.url}/echo", origin=Origin(server.http)) as ws:
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"


def test_sock_route_joins_a_room_that_duplex_broadcast_reaches(server: Server) -> None:
    """ws.join() on a Sock route; sock.duplex.broadcast() from an HTTP view reaches it."""
    room = token()
    with connect(f"{server.url}/room/{room}") as ws:
        assert ws.recv(timeout=5) == "joined"
        body = urllib.parse.urlencode({"text": "announcement", "to": room}).encode()
        with urllib.request.urlopen(f"{server.http}/announce", data=body, timeout=5) as response:
            assert response.status == 204
        assert ws.recv(timeout=5) == "announcement"
        ws.send("from the client")
        assert ws.recv(timeout=5) == "from the client"
