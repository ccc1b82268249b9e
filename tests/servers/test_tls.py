"""TLS served by the WSGI server itself: wss:// without a proxy in front.

Werkzeug's ``ssl_context``, gunicorn's ``--certfile``, gevent's and eventlet's
certfile options: the connection the engine takes over is then a TLS socket,
whose reads and writes can be "not yet" in ways a plain socket's cannot (a
record that arrived in part, a write that must be repeated).
"""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.frames import Opcode
from websockets.sync.client import connect

from tests.support.raw import client_close_exchange, close_frame, server_close_exchange
from tests.support.servers import Server, running

TLS_SERVERS = ("werkzeug", "gunicorn-gthread", "gunicorn-gevent", "gevent", "eventlet")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module", params=TLS_SERVERS)
def server(
    request: pytest.FixtureRequest, ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("tls")
    issued = ca.issue_cert("127.0.0.1")
    cert, key = folder / "cert.pem", folder / "key.pem"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(cert, append=True)
    issued.private_key_pem.write_to_path(key)
    env = {"DUPLEX_TEST_TLS_CERT": str(cert), "DUPLEX_TEST_TLS_KEY": str(key)}
    with running(request.param, env=env) as server:
        yield server


def wss(server: Server, path: str) -> str:
    return f"wss://127.0.0.1:{server.port}{path}"


def test_echo_over_tls_across_record_sizes(server: Server, client_tls: ssl.SSLContext) -> None:
    """Messages smaller and larger than a TLS record (16 KiB) come back whole."""
    with connect(wss(server, "/echo"), ssl=client_tls) as ws:
        for size in (5, 16_000, 70_000, 300_000):
            ws.send("é" * (size // 2))
            assert ws.recv(timeout=5) == "é" * (size // 2)
            ws.send(bytes(range(256)) * (size // 256 + 1))
            assert ws.recv(timeout=5) == bytes(range(256)) * (size // 256 + 1)
        assert ws.ping().wait(5)


def test_slow_reader_over_tls_gets_every_echo(server: Server, client_tls: ssl.SSLContext) -> None:
    """A client that stops reading fills the TLS socket; the echoes wait and all arrive."""
    # Random bytes: compression must not shrink them below the socket buffers.
    messages = [random.Random(n).randbytes(900_000) for n in range(12)]
    # The client sends everything before it reads anything: the route's inbox
    # holds what the handler, blocked on the full socket, has not read yet.
    with connect(wss(server, "/echo-roomy"), ssl=client_tls, max_queue=1) as ws:
        for message in messages:
            ws.send(message)
        time.sleep(1.0)  # The server's writes now wait on a full socket.
        for message in messages:
            assert ws.recv(timeout=10) == message


def test_reads_and_writes_overlap_over_tls(server: Server, client_tls: ssl.SSLContext) -> None:
    """A server thread streams while the handler receives a stream: all arrive, in order."""
    count, size = 20, 900_000
    # A small receive buffer and a slow reader here make the server's writes
    # wait again and again while it reads.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(("127.0.0.1", server.port))
    url = wss(server, f"/send-while-receiving?count={count}&size={size}")
    with connect(url, sock=sock, ssl=client_tls) as ws:

        def send_all() -> None:
            for index in range(count):
                ws.send(f"{index}:" + "y" * size)
            ws.send("end")

        sender = threading.Thread(target=send_all)
        sender.start()
        try:
            for index in range(count):
                assert ws.recv(timeout=10) == f"{index}:" + "x" * size
                time.sleep(0.02)
            assert ws.recv(timeout=10) == f"received {count}"
        finally:
            sender.join(timeout=10)


def test_close_started_by_server_over_tls_is_clean(
    server: Server, client_tls: ssl.SSLContext
) -> None:
    """The server's close frame arrives through TLS, then the connection ends."""
    frame, rest, elapsed = server_close_exchange(
        server.port, "/close/4001?reason=bye", tls=client_tls
    )
    assert frame.opcode is Opcode.CLOSE
    assert frame.data == struct.pack("!H", 4001) + b"bye"
    assert rest == b""
    assert elapsed < 0.5


def test_close_started_by_client_over_tls_is_clean(
    server: Server, client_tls: ssl.SSLContext
) -> None:
    """The client's close is echoed through TLS, and nothing follows it."""
    rest, _ = client_close_exchange(server.port, "/echo", tls=client_tls)
    assert rest == close_frame(1000, "done")


def test_connections_over_tls_end_without_server_errors(
    server: Server, client_tls: ssl.SSLContext
) -> None:
    """The server's own end of each request (its status line after the close) logs no error."""
    for path in ("/echo", "/close/4001"):
        with connect(wss(server, path), ssl=client_tls) as ws:
            if path == "/echo":
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"
            else:
                with pytest.raises(ClientClosed):
                    ws.recv(timeout=5)
    time.sleep(0.5)
    log = server.log()
    assert "Error on request" not in log  # Werkzeug
    assert "'REMOTE_ADDR'" not in log  # gevent names the request's environ when it fails
    assert "[ERROR]" not in log  # gunicorn


def test_handler_failure_over_tls_reaches_the_client_as_1011(
    server: Server, client_tls: ssl.SSLContext
) -> None:
    """An exception in the handler closes the TLS connection with 1011, not a reset."""
    with connect(wss(server, "/raise"), ssl=client_tls) as ws:
        ws.send("boom")
        with pytest.raises(ClientClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
