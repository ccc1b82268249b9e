"""Every supported WSGI server: handshake, echo, clean closes, resets, logs, costs.

Each server runs the test app as a real subprocess on a free loopback port,
started the way its users start it (see tests/support/serve.py).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.sync.client import connect

from tests.support.raw import (
    RawClient,
    client_close_exchange,
    close_frame,
    parse_frames,
    server_close_exchange,
)
from tests.support.serve import SERVERS
from tests.support.servers import Server, running

# Servers that log each request, and so must log the upgrade as 101.
LOGGING = {"werkzeug", "gevent", "eventlet"} | {
    name for name in SERVERS if name.startswith(("gunicorn", "uwsgi"))
}
GREEN = {"gevent", "eventlet", "gunicorn-gevent", "gunicorn-eventlet", "uwsgi-gevent"}


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param) as server:
        yield server


def stats(server: Server) -> dict[str, int]:
    with urllib.request.urlopen(f"{server.http}/stats", timeout=5) as response:
        return dict(json.loads(response.read()))


def test_handshake_and_echo_text_and_binary(server: Server) -> None:
    """The upgrade succeeds; text and binary messages come back unchanged."""
    with connect(f"{server.url}/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(bytes(range(256)) * 300)
        assert ws.recv(timeout=5) == bytes(range(256)) * 300


def test_close_started_by_server_is_clean_and_fast(server: Server) -> None:
    """Server closes: one close frame, then TCP closes, nothing in between."""
    frame, rest, elapsed = server_close_exchange(server.port, "/close/4001?reason=bye")
    assert frame.opcode is Opcode.CLOSE
    assert frame.data == struct.pack("!H", 4001) + b"bye"
    assert rest == b""
    assert elapsed < 0.5


def test_close_started_by_client_is_clean_and_fast(server: Server) -> None:
    """Client closes: the server echoes the close frame, sends nothing more, closes TCP."""
    rest, elapsed = client_close_exchange(server.port, "/echo")
    assert rest == close_frame(1000, "done")
    assert elapsed < 0.5


def test_client_vanishing_mid_message_leaves_the_worker_healthy(server: Server) -> None:
    """A TCP reset in the middle of a frame ends that connection only."""
    for _ in range(3):
        client = RawClient(server.port, "/echo")
        assert client.status == 101
        # A masked text frame header announcing 1000 bytes, then 10 of them.
        client.sock.sendall(b"\x81\xfe\x03\xe8" + b"mask" + b"x" * 10)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sock.close()  # RST
    time.sleep(0.2)
    with connect(f"{server.url}/echo") as ws:
        ws.send("next")
        assert ws.recv(timeout=5) == "next"
    deadline = time.monotonic() + 5
    while stats(server)["connections"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(server)["connections"] == 0
    assert "Traceback" not in server.log()


def test_pings_and_close_answered_while_the_handler_sleeps(server: Server) -> None:
    """A busy handler delays neither pongs nor the closing handshake, on every server."""
    with connect(f"{server.url}/sleep?seconds=2") as ws:
        assert ws.ping().wait(1)
        started = time.monotonic()
        ws.close()
        assert time.monotonic() - started < 0.5
    assert ws.protocol.close_code == 1000
    # When the handler wakes up, its next send finds the connection closed.
    server.wait_for_log("sleep-route: closed 1000")


def test_pings_answered_while_the_handler_is_busy_after_a_receive(server: Server) -> None:
    """After receive() returns, the server reads again at once: a ping then gets its pong."""
    with connect(f"{server.url}/receive-then-sleep?seconds=3") as ws:
        ws.send("go")
        time.sleep(0.2)  # receive() has returned; the handler sleeps.
        assert ws.ping().wait(1)


def test_access_log_shows_101(server: Server) -> None:
    """The server's access log records the upgrade with status 101."""
    if server.name not in LOGGING:
        pytest.skip(f"{server.name} keeps no access log")
    with connect(f"{server.url}/echo?marker=log101") as ws:
        ws.send("x")
        ws.recv(timeout=5)
    log = server.wait_for_log("marker=log101")
    line = next(line for line in log.splitlines() if "marker=log101" in line)
    assert re.search(r'" 101 |\(HTTP/1\.1 101\)', line), line  # uWSGI: "(HTTP/1.1 101)"


def test_server_stays_healthy_for_many_connections_in_a_row(server: Server) -> None:
    """Thirty connections one after another all work: nothing leaks or wedges."""
    for index in range(30):
        with connect(f"{server.url}/echo") as ws:
            ws.send(str(index))
            assert ws.recv(timeout=5) == str(index)


def test_green_servers_spend_no_os_thread_per_connection(server: Server) -> None:
    """Under gevent and eventlet, 50 connections cost greenlets, not OS threads."""
    if server.name not in GREEN:
        pytest.skip("a threaded server")
    before = stats(server)
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(connect(f"{server.url}/echo", ping_interval=None))
            for _ in range(50)
        ]
        for ws in clients:
            ws.send("x")
        for ws in clients:
            assert ws.recv(timeout=5) == "x"
        during = stats(server)
    assert during["connections"] - before["connections"] == 50
    assert during["os_threads"] - before["os_threads"] <= 2


def test_sync_worker_warns_once_naming_better_workers(server: Server) -> None:
    """gunicorn's sync worker works, and logs one warning naming gthread and gevent."""
    if server.name != "gunicorn-sync":
        pytest.skip("only gunicorn's sync worker warns")
    for _ in range(2):
        with connect(f"{server.url}/echo") as ws:
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
    log = server.wait_for_log("sync worker")
    assert log.count("sync worker serves one connection at a time") == 1
    assert "-k gthread" in log and "-k gevent" in log


def test_unsupported_server_gets_501_and_one_log_line() -> None:
    """wsgiref cannot hand over its socket: a clear 501, and one line naming servers."""
    with running("wsgiref") as server:
        for _ in range(2):
            client = RawClient(server.port, "/echo")
            try:
                assert client.status == 501
                assert b"cannot serve WebSocket" in client.read_until_eof()
            finally:
                client.close()
        log = server.wait_for_log("supported servers")
    assert log.count("cannot serve WebSockets on the WSGI server") == 1
    assert "WSGIServer" in log and "gunicorn" in log and "werkzeug" in log


@pytest.mark.parametrize("name", ["gunicorn-gthread", "gunicorn-gevent", "gunicorn-eventlet"])
def test_gunicorn_worker_timeout_spares_long_connections(name: str) -> None:
    """With --timeout 2, a connection open for 5 s survives: the worker keeps its heartbeat.

    (2 s, not 1: gunicorn's own workers beat about once a second, so a 1 s
    timeout can kill an idle worker with no WebSocket in it at all.)
    """
    with running(name, {"DUPLEX_TEST_GUNICORN_TIMEOUT": "2"}) as server:
        with connect(f"{server.url}/echo") as ws:
            time.sleep(5)
            ws.send("still here")
            assert ws.recv(timeout=5) == "still here"
        assert "WORKER TIMEOUT" not in server.log()


def test_failure_right_after_the_handshake_is_the_last_thing_on_the_wire(server: Server) -> None:
    """Invalid UTF-8 sent at once: a 1007 close frame, then nothing (not the server's own reply)."""
    for _ in range(20):
        client = RawClient(server.port, "/echo")
        try:
            client.send_frame(Opcode.TEXT, b"\x80\xbf")
            rest = client.read_until_eof(timeout=3)
        finally:
            client.close()
        frames = parse_frames(rest)
        assert [frame.opcode for frame, _ in frames] == [Opcode.CLOSE], rest[:80]
        assert frames[0][0].data[:2] == (1007).to_bytes(2, "big")
        assert frames[0][1] == len(rest), rest[:80]


def test_the_engine_serves_the_connection(server: Server) -> None:
    """Compression is negotiated and an oversized message closes 1009: the engine, on every server.

    (uWSGI's own WebSocket functions negotiate no extension and have no such
    limit: on uWSGI this shows that the engine, not they, serves the socket.)
    """
    with connect(f"{server.url}/echo") as ws:
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
    with connect(f"{server.url}/echo-small") as ws:
        ws.send("x" * 1025)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert ws.protocol.close_code == 1009
