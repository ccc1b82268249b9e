"""A connection's life as a hostile or unlucky peer tries it: bounded memory, deadlines, hooks.

Each test runs on a real server process (Werkzeug, gunicorn gthread, gevent
and eventlet workers) and reads what the handlers saw in the server's log.
Memory is the server process's resident size, sampled while the peer misbehaves.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.frames import Close, Frame, Opcode
from websockets.sync.client import connect

from tests.support.raw import RawClient
from tests.support.servers import Server, running

SERVERS = ("werkzeug", "gunicorn-gthread", "gunicorn-gevent", "gunicorn-eventlet")
MB = 2**20


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param) as server:
        yield server


def rss(server: Server) -> int:
    with urllib.request.urlopen(f"{server.http}/stats", timeout=10) as response:
        return int(json.loads(response.read())["rss_kb"]) * 1024


class PeakMemory:
    """Samples the server's resident size in the background; ``growth`` is the peak's rise."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.before = rss(server)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, rss(self._server))
            except OSError:
                pass

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.peak = max(self.peak, rss(self._server))

    @property
    def growth(self) -> int:
        return self.peak - self.before


def flood(sock: socket.socket, data: bytes, seconds: float, limit: int) -> int:
    """Send ``data`` again and again for ``seconds`` or ``limit`` bytes; return bytes sent."""
    sock.settimeout(0.5)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < limit:
        try:
            sock.sendall(data)
        except (TimeoutError, OSError):
            break
        sent += len(data)
    return sent


def reset(client: RawClient) -> None:
    """Vanish: close the client's socket with a TCP reset."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_data_frames_after_the_close_are_dropped_not_queued(server: Server) -> None:
    """A client that floods data after the server's close frame does not grow the server."""
    client = RawClient(server.port, "/close/1000")
    try:
        assert client.read_frame().opcode is Opcode.CLOSE
        frame = Frame(Opcode.BINARY, b"x" * 65536).serialize(mask=True)
        with PeakMemory(server) as memory:
            # Within the server's close_timeout (2 s): it still reads, waiting for our close.
            sent = flood(client.sock, frame * 4, seconds=1.5, limit=1500 * MB)
    finally:
        client.close()
    print(f"data after close: grew {memory.growth / MB:.1f} MB after {sent / MB:.0f} MB sent")
    assert sent > 20 * MB, f"the flood sent only {sent} bytes"
    assert memory.growth < 40 * MB, f"grew {memory.growth / MB:.0f} MB after {sent / MB:.0f} MB"


def test_a_ping_flood_from_a_client_that_never_reads_costs_one_pong(server: Server) -> None:
    """Pings from a client that reads nothing: pongs do not pile up in the server."""
    client = RawClient(server.port, "/lifecycle/busy?seconds=6", rcvbuf=4096)
    try:
        assert client.status == 101
        pings = Frame(Opcode.PING, b"p" * 125).serialize(mask=True) * 500
        with PeakMemory(server) as memory:
            sent = flood(client.sock, pings, seconds=3, limit=200 * MB)
    finally:
        reset(client)
    print(f"ping flood: grew {memory.growth / MB:.1f} MB after {sent / MB:.0f} MB of pings")
    assert sent > 30 * MB, f"the flood sent only {sent} bytes"
    assert memory.growth < 40 * MB, f"grew {memory.growth / MB:.0f} MB after {sent / MB:.0f} MB"


def test_compressed_messages_to_a_busy_handler_are_bounded_in_bytes(server: Server) -> None:
    """Ten clients send 40 compressed 1 MiB messages each to handlers that do not read."""
    message = "a" * MB  # About 1 kB once compressed.
    with ExitStack() as stack, PeakMemory(server) as memory:
        clients = [
            stack.enter_context(
                connect(f"{server.url}/lifecycle/busy?seconds=4", max_size=None, close_timeout=1)
            )
            for _ in range(10)
        ]
        for ws in clients:
            for _ in range(40):
                ws.send(message)
        time.sleep(1.0)  # Give the server time to read (and inflate) what it will.
    print(f"compressed to a busy handler: grew {memory.growth / MB:.1f} MB")
    assert memory.growth < 80 * MB, f"grew {memory.growth / MB:.0f} MB"


def test_a_client_that_closes_and_stops_reading_frees_a_blocked_sender(server: Server) -> None:
    """Within close_timeout of the peer's close, a send() blocked on it raises, hooks run."""
    client = RawClient(server.port, "/lifecycle/stream", rcvbuf=4096)
    mark = len(server.log())
    try:
        client.read_frame()  # The handler streams; we take one frame, then stop reading.
        time.sleep(0.3)  # Let its sends fill the socket.
        client.send_close(1000)
        started = time.monotonic()
        server.wait_for_log("disconnect /lifecycle/stream", timeout=6)
        elapsed = time.monotonic() - started
    finally:
        client.close()
    log = server.log()[mark:]
    assert "stream: send raised 1000" in log
    assert elapsed < 2 + 1.5  # close_timeout is 2 s in the test app.


def test_a_pending_ping_fails_when_the_connection_ends(server: Server) -> None:
    """ping().wait() raises ConnectionClosed once the connection ended, not at its timeout."""
    client = RawClient(server.port, "/lifecycle/ping-release")
    mark = len(server.log())
    try:
        assert client.read_frame().opcode is Opcode.PING  # Not answered.
        client.send_close(1000)
        client.read_until_eof(timeout=3)
        server.wait_for_log("ping-release:", timeout=3)
    finally:
        client.close()
    line = next(li for li in server.log()[mark:].splitlines() if li.startswith("ping-release:"))
    assert line.startswith("ping-release: raised 1000"), line


def test_keepalive_spares_a_client_we_are_not_reading(server: Server) -> None:
    """Our full inbox never gets a live peer closed 1011, and its close keeps its code."""
    mark = len(server.log())
    url = f"{server.url}/lifecycle/slow-reader?seconds=2"
    with connect(url, compression=None, ping_interval=None, close_timeout=10) as ws:
        for _ in range(40):
            ws.send(b"m" * 65536)  # 2.5 MiB: more than the inbox holds (1 MiB).
        ws.close(4000, "bye")
    assert ws.close_code == 4000
    server.wait_for_log("slow-reader:", timeout=5)
    assert "slow-reader: 40 messages, then closed 4000" in server.log()[mark:]


def test_receive_timeout_holds_while_a_send_waits_on_the_peer(server: Server) -> None:
    """receive(timeout=0.5) returns in time while another thread's send() is blocked."""
    client = RawClient(server.port, "/lifecycle/receive-while-sending", rcvbuf=4096)
    mark = len(server.log())

    def lines() -> list[str]:
        log = server.log()[mark:].splitlines()
        return [line for line in log if line.startswith("receive-while-sending:")]

    try:
        ping = Frame(Opcode.PING, b"hi").serialize(mask=True)
        deadline = time.monotonic() + 5
        # Pings keep the handler's receive() busy; their pongs cannot go out.
        while len(lines()) < 3 and time.monotonic() < deadline:
            client.sock.sendall(ping)
            time.sleep(0.1)
    finally:
        reset(client)
    reports = lines()
    assert len(reports) == 3, reports
    for report in reports:
        assert report.startswith("receive-while-sending: None after "), report
        assert float(report.rsplit(" ", 1)[1].rstrip("s")) < 1.0, report


def test_a_peer_vanishing_as_the_handler_returns_is_not_a_flask_error(server: Server) -> None:
    """The close after the handler returns meets a reset socket: no traceback, no error signal."""
    mark = len(server.log())
    client = RawClient(server.port, "/lifecycle/vanish?seconds=1")
    try:
        frame = Frame(Opcode.BINARY, b"v" * 65536).serialize(mask=True)
        client.sock.settimeout(5)
        for _ in range(40):  # More than the inbox holds: the server stops reading.
            client.sock.sendall(frame)
    finally:
        reset(client)
    server.wait_for_log("disconnect /lifecycle/vanish", timeout=8)
    log = server.log()[mark:]
    assert "Traceback" not in log, log
    assert "Exception on" not in log, log


def test_a_failing_hook_does_not_stop_the_others(server: Server) -> None:
    """Each on_connect and on_disconnect hook runs; a failing one is logged with the route."""
    mark = len(server.log())
    with connect(f"{server.url}/lifecycle/hooks") as ws, pytest.raises(ClientClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    server.wait_for_log("disconnect /lifecycle/hooks", timeout=5)
    log = server.log()[mark:]
    assert "second connect hook ran" in log
    assert "first connect hook failed on purpose" in log
    assert "first disconnect hook failed on purpose" in log
    assert log.count("on route /lifecycle/hooks") == 2, log
    assert "hooks: handler saw 1011" in log


def test_send_raises_when_its_message_was_dropped(server: Server) -> None:
    """A send() queued behind a write that fails raises ConnectionClosed instead of returning."""
    mark = len(server.log())
    client = RawClient(server.port, "/lifecycle/send-truth", rcvbuf=4096)
    try:
        server.wait_for_log("send-truth: sending second", timeout=5)
    finally:
        reset(client)
    server.wait_for_log("send-truth: second", timeout=5)
    line = next(
        li for li in server.log()[mark:].splitlines() if li.startswith("send-truth: second ")
    )
    assert line.startswith("send-truth: second raised"), line


def test_close_all_closes_every_connection_with_the_code(server: Server) -> None:
    """duplex.close_all(4002, ...) closes each open connection; their handlers end."""
    with ExitStack() as stack:
        clients = [stack.enter_context(connect(f"{server.url}/lifecycle/echo")) for _ in range(3)]
        for ws in clients:
            ws.send("here")
            assert ws.recv(timeout=5) == "here"
        form = urllib.parse.urlencode({"code": "4002", "reason": "maintenance", "timeout": "5"})
        with urllib.request.urlopen(
            f"{server.http}/close-all", data=form.encode(), timeout=10
        ) as response:
            assert json.loads(response.read()) == {"still_open": 0}
        for ws in clients:
            with pytest.raises(ClientClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd == Close(4002, "maintenance")
