"""The WebSocket connection: messages, JSON, limits, pings, keepalive, closing."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from flask_duplex.connection import check_close
from tests.support.raw import RawClient, parse_frames
from tests.support.servers import Server


def test_receive_json_and_invalid_json_keeps_connection_open(werkzeug_server: Server) -> None:
    """Bad JSON raises a ValueError in the handler; the connection goes on."""
    with connect(f"{werkzeug_server.url}/json") as ws:
        ws.send('{"a": [1, 2]}')
        assert json.loads(ws.recv(timeout=5)) == {"got": {"a": [1, 2]}}
        ws.send("{not json")
        assert ws.recv(timeout=5).startswith("invalid: message is not valid JSON")
        ws.send("3")
        assert json.loads(ws.recv(timeout=5)) == {"got": 3}


def test_json_nested_too_deep_is_invalid_json_not_a_crash(werkzeug_server: Server) -> None:
    """100,000 nested brackets: receive_json raises InvalidJSON, the connection goes on."""
    with connect(f"{werkzeug_server.url}/json") as ws:
        ws.send("[" * 100_000)
        assert ws.recv(timeout=5).startswith("invalid: message is not valid JSON")
        ws.send("[1]")
        assert json.loads(ws.recv(timeout=5)) == {"got": [1]}


def test_send_rejects_other_types_with_type_error(werkzeug_server: Server) -> None:
    """send(123) raises TypeError naming the type instead of sending str(123)."""
    with connect(f"{werkzeug_server.url}/bad-send") as ws:
        message = ws.recv(timeout=5)
    assert message.startswith("TypeError: send() takes str or bytes-like, not int")


def test_fragmented_messages_are_reassembled(werkzeug_server: Server) -> None:
    """A message sent in fragments reaches the handler whole."""
    with connect(f"{werkzeug_server.url}/echo", compression=None) as ws:
        ws.send(["frag", "ment", "é"])
        assert ws.recv(timeout=5) == "fragmenté"
        ws.send([b"\x01", b"\x02"])
        assert ws.recv(timeout=5) == b"\x01\x02"


def test_concurrent_sends_write_whole_messages(werkzeug_server: Server) -> None:
    """Eight threads sending 50 kB messages at once never interleave them."""
    with connect(f"{werkzeug_server.url}/broadcast-threads?n=8&size=50000", max_size=None) as ws:
        seen: dict[int, list[int]] = {}
        while (message := ws.recv(timeout=10)) != "done":
            tag, index, payload = message.split(":", 2)
            assert payload == "x" * 50000
            seen.setdefault(int(tag), []).append(int(index))
    assert seen == {tag: list(range(20)) for tag in range(8)}


def test_receive_timeout_returns_none(werkzeug_server: Server) -> None:
    """receive(timeout=0.3) gives None after about 0.3 s, and the connection goes on."""
    with connect(f"{werkzeug_server.url}/receive-timeout") as ws:
        report = ws.recv(timeout=5)
        match = re.fullmatch(r"None after (\d\.\d\d)", report)
        assert match, report
        assert 0.25 <= float(match.group(1)) < 1.0
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"


def test_receive_with_zero_timeout_reads_the_socket(werkzeug_server: Server) -> None:
    """A handler polling receive(timeout=0) gets a message at once, not at the reactor's tick."""
    with connect(f"{werkzeug_server.url}/poll") as ws:
        ws.send("warm up")
        assert ws.recv(timeout=5) == "warm up"
        delays = []
        for index in range(10):
            started = time.monotonic()
            ws.send(str(index))
            assert ws.recv(timeout=5) == str(index)
            delays.append(time.monotonic() - started)
        ws.send("stop")
    delays.sort()
    assert delays[5] < 0.02, delays  # The reactor takes a socket back 50 ms after a receive().


def test_message_over_max_size_closes_1009(werkzeug_server: Server) -> None:
    """A message over max_message_size closes the connection with 1009."""
    with connect(f"{werkzeug_server.url}/echo-small") as ws:
        ws.send("x" * 1024)
        assert len(ws.recv(timeout=5)) == 1024
        ws.send("x" * 1025)
        with pytest.raises(ClientClosed):
            ws.recv(timeout=5)
    assert ws.protocol.close_code == 1009


def test_fragments_count_toward_max_size(werkzeug_server: Server) -> None:
    """The limit is on the whole message, not on each fragment."""
    with connect(f"{werkzeug_server.url}/echo-small", compression=None) as ws:
        ws.send(["x" * 600, "x" * 600])
        with pytest.raises(ClientClosed):
            ws.recv(timeout=5)
    assert ws.protocol.close_code == 1009


def test_compression_is_negotiated_and_can_be_turned_off(werkzeug_server: Server) -> None:
    """permessage-deflate is on by default and off where compression=False."""
    with connect(f"{werkzeug_server.url}/echo") as ws:
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
        ws.send("z" * 100000)
        assert ws.recv(timeout=5) == "z" * 100000
    with connect(f"{werkzeug_server.url}/echo-small") as ws:
        assert ws.protocol.extensions == []


def test_compressed_message_is_bounded_after_decompression(werkzeug_server: Server) -> None:
    """A small compressed frame that inflates past the limit closes with 1009."""
    with connect(f"{werkzeug_server.url}/echo", max_size=None) as ws:
        ws.send("a" * (2**20 + 1))  # Compresses to about 1 kB.
        with pytest.raises(ClientClosed):
            ws.recv(timeout=5)
    assert ws.protocol.close_code == 1009


def test_server_ping_gets_pong(werkzeug_server: Server) -> None:
    """ws.ping() returns an event that the client's pong sets."""
    with connect(f"{werkzeug_server.url}/ping") as ws:
        assert ws.recv(timeout=5) == "pong True"


def test_silent_peer_is_closed_by_keepalive_with_1011(werkzeug_server: Server) -> None:
    """A client that never answers pings is closed with 1011; receive() then raises."""
    client = RawClient(werkzeug_server.port, "/keepalive")
    try:
        started = time.monotonic()
        data = client.read_until_eof(timeout=5)
        elapsed = time.monotonic() - started
    finally:
        client.close()
    frames = [frame for frame, _ in parse_frames(data)]
    assert frames[0].opcode is Opcode.PING
    assert frames[-1].opcode is Opcode.CLOSE
    assert frames[-1].data[:2] == (1011).to_bytes(2, "big")
    assert 0.6 < elapsed < 3
    werkzeug_server.wait_for_log("keepalive-route: closed 1011 keepalive ping timeout")


def test_keepalive_keeps_answering_peer_open(werkzeug_server: Server) -> None:
    """A client that answers pings stays connected past several ping intervals."""
    with connect(f"{werkzeug_server.url}/keepalive", ping_interval=None) as ws:
        time.sleep(1.5)
        ws.send("alive")
        assert ws.recv(timeout=5) == "alive"


def test_invalid_utf8_closes_1007(werkzeug_server: Server) -> None:
    """A text frame that is not UTF-8 fails the connection with 1007."""
    client = RawClient(werkzeug_server.port, "/echo")
    try:
        client.send_frame(Opcode.TEXT, b"\xff\xfe")
        frames = [frame for frame, _ in parse_frames(client.read_until_eof())]
    finally:
        client.close()
    assert frames[-1].opcode is Opcode.CLOSE
    assert frames[-1].data[:2] == (1007).to_bytes(2, "big")


def test_unmasked_client_frame_closes_1002(werkzeug_server: Server) -> None:
    """A protocol violation fails the connection with 1002."""
    client = RawClient(werkzeug_server.port, "/echo")
    try:
        client.sock.sendall(b"\x81\x02hi")  # Not masked.
        frames = [frame for frame, _ in parse_frames(client.read_until_eof())]
    finally:
        client.close()
    assert frames[-1].data[:2] == (1002).to_bytes(2, "big")


def test_frames_sent_with_the_handshake_are_not_lost(werkzeug_server: Server) -> None:
    """A message sent right behind the request head, in the same write, is echoed."""
    client = RawClient.__new__(RawClient)
    client.sock = socket.create_connection(("127.0.0.1", werkzeug_server.port), timeout=5)
    head = (
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    client.sock.sendall(head + Frame(Opcode.TEXT, b"early").serialize(mask=True))
    client.head, client.buffer = client._read_head()
    try:
        frame = client.read_frame()
    finally:
        client.close()
    assert frame.data == b"early"


def test_handler_threads_stay_at_one_per_connection(werkzeug_server: Server) -> None:
    """200 open connections cost at most one thread each plus a constant."""

    def stats() -> dict[str, int]:
        with urllib.request.urlopen(f"{werkzeug_server.http}/stats", timeout=5) as response:
            return dict(json.loads(response.read()))

    deadline = time.monotonic() + 10
    while (before := stats())["connections"] and time.monotonic() < deadline:
        time.sleep(0.1)  # Handlers of earlier tests may still be finishing.
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(connect(f"{werkzeug_server.url}/echo", ping_interval=None))
            for _ in range(200)
        ]
        for ws in clients[::20]:
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
        during = stats()
    assert during["connections"] - before["connections"] == 200
    # Each connection holds its request thread; the stats request adds one.
    added = during["threads"] - before["threads"]
    print(f"threads before {before['threads']}, with 200 connections {during['threads']}")
    assert added <= 200 + 2


@pytest.mark.parametrize(
    ("code", "reason"), [(999, ""), (1005, ""), (1006, ""), (5000, ""), (1000, "x" * 124)]
)
def test_close_refuses_codes_and_reasons_that_cannot_be_sent(code: int, reason: str) -> None:
    """close() with a reserved code or an over-long reason raises ValueError."""
    with pytest.raises(ValueError):
        check_close(code, reason)


@pytest.mark.parametrize(
    ("code", "ending"),
    [
        (1000, "ended quietly after close 1000"),
        (1001, "ended quietly after close 1001"),
        (4001, "raised 4001"),
    ],
)
def test_iterating_ends_quietly_on_a_normal_close_and_raises_on_others(
    werkzeug_server: Server, code: int, ending: str
) -> None:
    """``for message in ws`` stops on 1000 and 1001, and raises ConnectionClosed on 4001."""
    tag = f"close-{code}"
    with connect(f"{werkzeug_server.url}/iterate/{tag}") as ws:
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv(timeout=5) == text
        ws.close(code)
    werkzeug_server.wait_for_log(f"iterate {tag}: {ending}")
